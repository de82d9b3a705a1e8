"""The study declarations beyond the ablation, their tables and Fig. 6 (no Ray run: the
study machinery itself is exercised in test_tune.py; here, what each study asks for)."""
from __future__ import annotations

import importlib

import pandas as pd
import pytest

from analysis.plots import fid_figure
from analysis.tables import fid_accuracy_correlation, format_table, generators_table
from sqsp import results, zoo
from sqsp.config import preset
from sqsp.results import TrialRecord
from sqsp.tune import base_config, expand, study_metadata


def configs(name: str, overrides=()):
    study = importlib.import_module(f"studies.{name}").STUDY
    return study, {(row, c.seed): c for row, c in expand(study, base_config(study, list(overrides)))}


def test_generators_study_covers_every_zoo_entry_once():
    study, cfgs = configs("generators")
    rows = {r for r, _ in cfgs}
    control = "untrained stylegan (control)"
    assert rows - {control} == set(zoo.zoo_names()) - {f"{r.name}@{r.steps}" for r in zoo.DEFAULT_RUNS}
    # squeeze and span (α from the preset), as Fig. 6's curve; --set syn_ratio=1.0 for Table 7's squeeze
    assert all(c.generator == r and c.syn_ratio == 0.5 for (r, _), c in cfgs.items() if r != control)
    assert cfgs[(control, 0)].generator == "random:stylegan@16"
    assert len(cfgs) == len(rows) * 3
    _, squeeze = configs("generators", ["syn_ratio=1.0"])
    assert {c.syn_ratio for c in squeeze.values()} == {1.0}


def test_blocks_and_ssl_studies_ask_for_what_the_paper_compares():
    _, blocks = configs("blocks")  # appendix Table 6's groups; b64-b128 exists at STL-10's 128 px only
    assert [c.generator_blocks for (r, s), c in blocks.items() if s == 0] == ["b4-b8", "b16-b32", "b64-b128", "all"]
    from sqsp.train import unavailable
    assert [unavailable(c) for (r, s), c in blocks.items() if s == 0] == [
        None, None, "generator 'stylegan-digits-m' (16 px) has no block of group b64-b128", None]
    _, ssl = configs("ssl_baselines")
    by_row = {r: c for (r, s), c in ssl.items() if s == 0}
    assert (by_row["real-vicreg"].method, by_row["real-vicreg"].syn_batch) == ("vicreg", 0)
    assert by_row["syn-simsiam"].real_batch == 0 and by_row["syn+real-simsiam"].syn_ratio == 0.5
    assert (by_row["syn-squeeze"].method, by_row["syn-squeeze"].syn_ratio) == ("distill", 1.0)
    assert by_row["syn+real-squeeze-and-span"].syn_ratio == 0.5
    assert len(by_row) == 8


# a generators study's results, written by the test: accuracy falls as FID rises
FIDS = {"g@40": 90.0, "g@400": 50.0, "g": 12.0, "dcgan": 15.0}
ACC = {"g@40": [60.0, 62.0], "g@400": [70.0, 74.0], "g": [85.0, 87.0], "dcgan": [80.0, 78.0]}


def write_generators(folder, extractor=lambda row: "classifier-digits-m", quality=None):
    recs = []
    for row, accs in ACC.items():
        for seed, acc in enumerate(accs):
            cfg = preset("smoke", {"seed": seed, "syn_ratio": 1.0}).to_dict() | {"generator": row}
            last = {"training_iteration": 1, "step": 84, "probe_acc": acc, "knn_acc": acc - 3, "done": True,
                    "collapsed": False, "init_probe_acc": 55.0, "generator_fid": FIDS[row],
                    "generator_fid_extractor": extractor(row), "generator_arch": "dcgan" if row == "dcgan" else "stylegan",
                    "generator_step": int(row.partition("@")[2] or 2000), **(quality or {}).get(row, {})}
            recs.append(TrialRecord(f"t{len(recs):02d}", cfg, row, [last]))
    study = importlib.import_module("studies.generators").STUDY
    results.write_study(str(folder), "generators", recs, metadata=study_metadata(study))
    return pd.read_parquet(folder / "trials.parquet")


def test_each_study_declares_its_table_once_and_its_files_carry_it():
    """analysis/ keeps no list of studies: the table a study file declares goes into its
    Parquet metadata (what run_study writes), and Table.of reads back the same table."""
    from pathlib import Path
    from analysis.tables import Table
    names = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "studies").glob("*.py"))
    declared = {}
    for name in names:
        study = getattr(importlib.import_module(f"studies.{name}"), "STUDY", None)
        if study is None:  # Fig. 2 and appendix Fig. 1 write tables of their own kind
            continue
        trials = pd.DataFrame()
        trials.attrs["sqsp"] = study_metadata(study)
        assert Table.of(trials) == study.table, name
        declared[name] = study.table.build.__name__
    assert declared["ablation"] == "ablation_table" and declared["loss_weights"] == "search_table"
    assert len(declared) >= 8 and len(set(declared.values())) == len(declared)  # each its own table
    forged = pd.DataFrame()  # a file naming something else runs nothing
    forged.attrs["sqsp"] = {"sqsp_table": '{"build": "json"}'}
    with pytest.raises(ValueError, match="not a table of analysis/tables.py; allowed: .*'ablation_table'"):
        Table.of(forged)


def test_generators_table_reports_fid_and_its_correlation_with_accuracy(tmp_path):
    trials = write_generators(tmp_path / "generators")
    table = generators_table(trials)
    assert list(table["row"]) == list(ACC)  # the study's order, not alphabetical
    assert table.set_index("row").loc["g@400", "generator_fid"] == 50.0
    assert table.set_index("row").loc["g", "probe_mean"] == 86.0
    rho, n = fid_accuracy_correlation(table)
    assert n == 4 and rho == pytest.approx(-1.0)  # ranks: FID 90 > 50 > 15 > 12, accuracy 61 < 72 < 79 < 86
    md = format_table(table)
    assert "| g@400 | stylegan |  | 400 | 50.00 | classifier-digits-m | 72.00 ± 2.83 (n=2) | +17.00 ± 2.83 (n=2) |" in md
    assert "Spearman ρ(FID, probe) over 4 generators = -1.00" in md

    import subprocess
    import sys
    from pathlib import Path
    cli = subprocess.run([sys.executable, "analysis/tables.py", str(tmp_path / "generators")], capture_output=True,
                         text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert cli.returncode == 0 and "| row | architecture | cond. | GAN step | FID |" in cli.stdout  # the declared table

    # squeeze and span (the study's default, Fig. 6): Table 7's squeeze figures are not set beside it
    mixed = generators_table(trials.assign(syn_ratio=0.5))
    assert mixed["paper (Table 7)"].isna().all() and "reports squeeze (α = 1)" in format_table(mixed)

    png = fid_figure(trials, tmp_path / "fig6.png")
    assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"


def test_generators_table_shows_the_quality_measures_trials_recorded(tmp_path):
    q = {row: {"generator_confidence": 0.5 + i / 10, "generator_largest_class": 0.3, "generator_precision": 0.7,
               "generator_recall": 0.4, "generator_class_match": float("nan"), "generator_probe": 0.6}
         for i, row in enumerate(ACC)}
    md = format_table(generators_table(write_generators(tmp_path / "generators", quality=q)))
    assert "| FID extractor | conf. | top class | P | R | G probe | linear probe |" in md  # no class match: unconditional
    assert "| g@400 | stylegan |  | 400 | 50.00 | classifier-digits-m | 0.60 | 0.30 | 0.70 | 0.40 | 0.60 | 72.00" in md


def test_fids_from_different_extractors_are_not_compared(tmp_path):
    trials = write_generators(tmp_path / "generators", extractor=lambda r: "inception" if r == "g" else "classifier-digits-m")
    assert fid_accuracy_correlation(generators_table(trials)) is None
    with pytest.raises(ValueError, match="different extractors"):
        fid_figure(trials, tmp_path / "fig6.png")


def test_loss_weight_search_selects_on_validation_stops_early_and_confirms():
    study = importlib.import_module("studies.loss_weights").STUDY
    assert set(study.search_space) == {"sim_weight", "var_weight", "cov_weight", "syn_ratio"}  # λ, μ, ν, α
    assert type(study.search.searcher).__name__ == "OptunaSearch" and (study.metric, study.mode) == ("val_probe_acc", "max")
    assert (study.scheduler.metric, study.scheduler._time_attr) == ("val_knn_acc", "progress")  # a per-epoch signal
    assert type(study.stopper).__name__ == "CollapseStopper"
    assert study.search.confirm_top == 3 and set(study.search.confirm_seeds).isdisjoint(study.seeds)
    corners = expand(study, base_config(study, []))  # the ends of every range are validated configs
    assert {c.var_weight for _, c in corners} == {1.0, 100.0} and {c.syn_ratio for _, c in corners} == {0.25, 1.0}
    assert {c.val_fraction for _, c in corners} == {0.2}


def write_search(folder, study):
    """A searched study's results as run_study writes them: 12 search trials on seed 0 (the
    validation probe rises with λ alone; the test probe is highest where validation is not),
    2 stopped early, 1 diverged, and the best 2 re-run on seeds 1, 2, 3."""
    from sqsp.tune import study_metadata
    recs, lams = [], [1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 11.0, 15.0, 20.0, 30.0, 45.0, 70.0]
    for i, lam in enumerate(lams):
        values = {"sim_weight": lam, "var_weight": 5.0 + (7 * i) % 11, "cov_weight": 0.1 + (3 * i % 5) / 5,
                  "syn_ratio": 0.25 + 0.125 * (i % 7)}
        cfg = preset("smoke", {**values, "val_fraction": 0.2}).to_dict()
        if i in (3, 7):    # stopped early by ASHA: the signal at a quarter of the run, no probe
            reports = [{"training_iteration": 1, "step": 42, "progress": 0.25, "val_knn_acc": 40.0, "done": True}]
        elif i == 11:      # diverged
            reports = [{"training_iteration": 1, "diverged": True, "error": "TrainingDiverged: nan", "done": True}]
        else:
            val = 60.0 + lam / 2 if i != 9 else 40.0
            reports = [{"training_iteration": 1, "step": 168, "progress": 1.0, "val_knn_acc": val - 10,
                        "val_probe_acc": val, "probe_acc": 99.0 if i == 0 else val - 2, "knn_acc": val - 5,
                        "done": True, "final": True, "collapsed": False}]
        recs.append(TrialRecord(f"s{i:02d}", cfg, None, reports, phase="search", number=i))
    for source, means in (("s10", 70.0), ("s08", 75.0)):   # s10 was best on seed 0, s08 is better on average
        for seed in (1, 2, 3):
            values = {k: recs[int(source[1:])].config[k] for k in ("sim_weight", "var_weight", "cov_weight", "syn_ratio")}
            cfg = preset("smoke", {**values, "val_fraction": 0.2, "seed": seed}).to_dict()
            last = {"training_iteration": 1, "step": 168, "progress": 1.0, "val_probe_acc": means + seed,
                    "probe_acc": means + seed - 3, "knn_acc": means - 9, "done": True, "final": True, "collapsed": False}
            recs.append(TrialRecord(f"c{source}{seed}", cfg, source, [last], phase="confirm", confirms=source,
                                    number=seed - 1))
    results.write_study(str(folder), "loss_weights", recs, metadata=study_metadata(study))
    return results.read_trials(str(folder))


def test_search_tables_rank_on_validation_and_report_test_apart(tmp_path):
    from analysis.tables import confirm_table, search_report, search_table
    study = importlib.import_module("studies.loss_weights").STUDY
    trials = write_search(tmp_path / "loss_weights", study)
    assert trials.attrs["sqsp"]["sqsp_metric"] == "val_probe_acc"  # recorded in the file, read back
    table = search_table(trials, tuple(study.search_space))
    # by validation: s00 has the best test probe (99) and ranks by its validation probe (60.75)
    assert list(table["trial_id"][:3]) == ["s10", "s08", "s06"] and list(table["trial_id"][7:9]) == ["s00", "s09"]
    assert list(table["trial_id"][-3:]) == ["s03", "s07", "s11"]  # no validation probe: last
    assert list(table["status"][-3:]) == ["stopped", "stopped", "diverged"]
    confirm = confirm_table(trials, tuple(study.search_space))
    assert list(confirm["confirms"]) == ["s08", "s10"]  # by the mean over seeds 1-3, not by the search's seed 0
    first = confirm.iloc[0]
    assert first["val_probe_acc_mean"] == 77.0 and first["val_probe_acc_std"] == 1.0 and first["val_probe_acc_n"] == 3
    assert first["probe_acc_mean"] == 74.0 and first["search_value"] == 70.0 and first["seeds"] == "1,2,3"
    md = search_report(trials, tuple(study.search_space))
    assert "| rank | search trial | λ sim_weight | μ var_weight | ν cov_weight | α syn_ratio | val probe (selection) | " \
           "test probe (reported) |" in md
    assert "| 1 | s08 | 20 | 6 | 0.9 | 0.375 |" in md and "77.00 ± 1.00 (n=3) | 74.00 ± 1.00 (n=3)" in md
    assert "val probe (selection)" in md.split("Search trials")[1] and "2 stopped early" in md
    assert "test = the test split, probe fitted on all training images, reported only, never used for selection" in md
    assert "val = the validation split (20% of the training images" in md
    import subprocess
    import sys
    from pathlib import Path
    cli = subprocess.run([sys.executable, "analysis/tables.py", str(tmp_path / "loss_weights")], capture_output=True,
                         text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert cli.returncode == 0 and "Confirmation: the 2 best search trials re-run on seeds 1,2,3" in cli.stdout
    assert "s11: TrainingDiverged: nan" in cli.stdout


def test_search_figures_rebuild_the_optuna_study_from_parquet(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from analysis.plots import search_figures, search_study
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances
    study = importlib.import_module("studies.loss_weights").STUDY
    trials = write_search(tmp_path / "loss_weights", study)
    rebuilt = search_study(trials)
    assert [t.user_attrs["trial_id"] for t in rebuilt.trials] == [f"s{i:02d}" for i in range(12)]  # proposal order
    assert [t.state.name for t in rebuilt.trials].count("COMPLETE") == 9
    assert {t.user_attrs["trial_id"]: t.state.name for t in rebuilt.trials if t.state.name != "COMPLETE"} == \
        {"s03": "PRUNED", "s07": "PRUNED", "s11": "FAIL"}
    assert rebuilt.best_trial.user_attrs["trial_id"] == "s10" and rebuilt.best_value == 82.5
    assert rebuilt.trials[0].distributions["sim_weight"].log and rebuilt.trials[0].distributions["syn_ratio"].step == 0.125
    importances = get_param_importances(rebuilt, evaluator=FanovaImportanceEvaluator(seed=0))
    assert max(importances, key=importances.get) == "sim_weight"  # the only value that moves the probe (bar s09)
    paths = search_figures(trials, tmp_path / "figs")
    assert [p.name for p in paths] == ["history.png", "importances.png"]
    assert all(p.stat().st_size > 5000 and p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    cli = subprocess.run([sys.executable, "analysis/plots.py", str(tmp_path / "loss_weights")], capture_output=True,
                         text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert cli.returncode == 0 and (tmp_path / "loss_weights" / "importances.png").exists(), cli.stderr
    flat = trials.assign(val_probe_acc=trials["val_probe_acc"].where(trials["val_probe_acc"].isna(), 50.0))
    assert [p.name for p in search_figures(flat, tmp_path / "flat")] == ["history.png"]  # nothing varies: no importances
    with pytest.raises(ValueError, match="no search space"):
        search_study(write_generators(tmp_path / "generators"))


def test_no_study_file_shadows_a_module_it_imports():
    """``python studies/x.py`` puts studies/ first on sys.path: a study named like a standard
    module (ssl.py did) breaks every import of that module, Ray's included."""
    import sys
    from pathlib import Path
    names = {p.stem for p in (Path(__file__).resolve().parents[1] / "studies").glob("*.py")}
    assert not names & set(sys.stdlib_module_names), names & set(sys.stdlib_module_names)
    assert not names & {"ray", "torch", "optuna", "pandas", "numpy", "sqsp", "analysis", "studies"}


def test_domain_gap_study_and_its_mmd_column(tmp_path):
    study, cfgs = configs("domain_gap")
    assert (study.metric, study.mode) == ("mmd_syn_real", "min")
    assert all(c.eval_mmd and c.syn_batch > 0 for c in cfgs.values())  # every row has synthetic images to compare
    mmd = {"syn-squeeze": [0.04, 0.06], "syn+real-squeeze-and-span": [0.01, 0.005]}
    recs = []
    for row, vals in mmd.items():
        for seed, v in enumerate(vals):
            cfg = cfgs[(row, seed)].to_dict()
            last = {"training_iteration": 1, "step": 84, "probe_acc": 90.0, "knn_acc": 80.0, "done": True,
                    "collapsed": False, "mmd_syn_real": v}
            recs.append(TrialRecord(f"t{len(recs)}", cfg, row, [last]))
    results.write_study(str(tmp_path / "domain_gap"), "domain_gap", recs)
    from analysis.tables import domain_gap_table
    table = domain_gap_table(pd.read_parquet(tmp_path / "domain_gap" / "trials.parquet"))
    by_row = table.set_index("row")
    assert by_row.loc["syn-squeeze", "mmd_mean"] == pytest.approx(0.05)
    assert by_row.loc["syn+real-squeeze-and-span", "mmd_std"] == pytest.approx(0.0035355, rel=1e-4)
    md = format_table(table)
    assert "| syn-squeeze | distill | 1.00 | 90.00 ± 0.00 (n=2) | 80.00 ± 0.00 (n=2) | 0.0500 ± 0.0141 (n=2) |" in md


def test_knowledge_source_study_has_all_ten_rows_of_table_1():
    _, cfgs = configs("knowledge_source")
    by_row = {r: c for (r, s), c in cfgs.items() if s == 0}
    assert sorted(by_row) == sorted([f"{s}-{h}" for s in ("latent", "feature") for h in ("vanilla", "squeeze", "squeeze-and-span")]
                                    + ["discriminator-single", "discriminator-multi", "latent-encoding-syn",
                                       "latent-encoding-syn+real"])
    enc, enc_real = by_row["latent-encoding-syn"], by_row["latent-encoding-syn+real"]
    assert (enc.method, enc.teacher_source, enc.syn_augment, enc.syn_ratio) == ("encode", "w", False, 1.0)
    assert (enc_real.method, enc_real.syn_ratio) == ("encode", 0.5)  # the authors' encode_w_syn_real: α = 0.5
    assert (by_row["discriminator-multi"].method, by_row["discriminator-multi"].disc_features) == ("discriminator", "multi")
    assert {by_row[f"latent-{h}"].teacher_source for h in ("vanilla", "squeeze", "squeeze-and-span")} == {"w"}
    v = by_row["latent-vanilla"]
    assert (v.squeeze, v.var_weight, v.cov_weight, v.syn_augment, v.syn_ratio) == (False, 0.0, 0.0, True, 1.0)
    assert by_row["feature-squeeze-and-span"].syn_ratio == 0.5 and by_row["feature-squeeze"].cov_weight == 1.0


# ---------------------------------------------------------------------------------------------
# a study's settings never set the scale: the paper presets run appendix Table 2 in every trial
# ---------------------------------------------------------------------------------------------
# Appendix Table 2, typed from the appendix (not read from sqsp.config, which is what is tested)
TABLE2 = {  # aug, batch, epochs, base_lr, weight decay, scale; λ, μ, ν, α
    "paper-cifar10": ("mocov2-noblur", 512, 800, 0.03, 5e-4, 32, 25.0, 25.0, 1.0, 0.5),
    "paper-cifar100": ("mocov2-noblur", 512, 800, 0.03, 5e-4, 32, 10.0, 10.0, 1.0, 0.5),
    "paper-stl10": ("mocov2", 512, 200, 0.05, 1e-4, 64, 25.0, 25.0, 1.0, 0.5),
    "paper-imagenet100": ("mocov2", 256, 100, 0.05, 1e-4, 96, 25.0, 25.0, 1.0, 0.5),
    "paper-imagenet": ("mocov2", 256, 100, 0.05, 1e-4, 96, 25.0, 25.0, 1.0, 0.5),
}
TABLE2_SCALE = ("aug_preset", "batch_size", "epochs", "base_lr", "weight_decay", "image_size")
TABLE2_WEIGHTS = ("sim_weight", "var_weight", "cov_weight", "syn_ratio")


def all_studies():
    """Every Ray Tune study (studies/representations.py and layer_similarity.py are one-process
    figures with no Study: they take the preset and --set as given)."""
    from pathlib import Path
    names = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "studies").glob("*.py"))
    modules = [importlib.import_module(f"studies.{n}") for n in names]
    studies = [m.STUDY for m in modules if hasattr(m, "STUDY")]
    assert len(studies) >= 8 and {"cross_dataset", "knowledge_source"} <= {s.name for s in studies}, names
    return studies


def paper_trials(study, preset_name, tmp_path):
    """Every trial of ``study`` at ``preset_name``, as a user runs it (only --data-root given)."""
    from sqsp.config import PRESETS, ConfigError
    study = dataclasses_replace(study, preset=preset_name)
    user = [f"data_root={tmp_path}"]
    if "transfer_datasets" in study.overrides and PRESETS[preset_name]["dataset"] == "imagefolder":
        # cross_dataset's 'auto' pairs exist for CIFAR and STL-10 only; an ImageNet run names its targets
        with pytest.raises(ConfigError, match="transfer_datasets='auto': no dataset is paired"):
            expand(study, base_config(study, user))
        user.append("transfer_datasets=cifar10")
    trials = expand(study, base_config(study, user))
    assert trials, study.name
    return trials


def declared_fields(study, row) -> set[str]:
    """What a study compares in a row: its row's, its overrides', its grid's and search space's fields."""
    swept = set(study.search_space) | (set(study.grid) if isinstance(study.grid, dict) else set())
    return set((study.rows or {}).get(row, {})) | swept | set(study.overrides) | {"seed"}


@pytest.mark.parametrize("preset_name", sorted(TABLE2))
def test_every_study_on_every_paper_preset_runs_appendix_table2(preset_name, tmp_path):
    from sqsp.config import PRESETS, SCALE_FIELDS, TrainConfig
    from sqsp.presets import method_scale
    for study in all_studies():
        for row, cfg in paper_trials(study, preset_name, tmp_path):
            values = cfg.to_dict()
            where = f"{study.name} row {row} on {preset_name}"
            if cfg.method in ("distill", "vicreg", "discriminator"):  # encode and SimSiam: their own scripts' lines
                assert tuple(values[k] for k in TABLE2_SCALE) == TABLE2[preset_name][:6], where
            for k, want in zip(TABLE2_WEIGHTS, TABLE2[preset_name][6:]):
                if k not in declared_fields(study, row) and cfg.method == "distill":
                    assert values[k] == want, (where, k)
            # the scale is the preset's line for the trial's method, and nothing else
            expected_preset = {**TrainConfig().to_dict(), **PRESETS[preset_name],
                               **method_scale(preset_name, cfg.method), "data_root": str(tmp_path)}
            leaked = {k: (values[k], expected_preset[k]) for k in SCALE_FIELDS
                      if k not in declared_fields(study, row) and values[k] != expected_preset[k]}
            assert not leaked, (where, leaked)


def authors_mismatches(study, preset_name, trials) -> list[str]:
    """Every setting of ``trials`` that differs from the authors' table (sqsp/authors.py), where
    the table lists no reason; the fields a row declares are what its study compares."""
    from sqsp import authors
    out = []
    for row, cfg in trials:
        values = cfg.to_dict()
        for name, (want, source, _why) in authors.expected(preset_name, cfg.method).items():
            if name not in declared_fields(study, row) and values[name] != want:
                out.append(f"{study.name} row {row} ({cfg.method}) at {preset_name}: {name}={values[name]!r}, "
                           f"the authors' {want!r} ({source})")
    return out


@pytest.mark.parametrize("preset_name", sorted(TABLE2))
def test_every_trial_of_every_study_runs_the_authors_settings_or_a_listed_difference(preset_name, tmp_path):
    from sqsp import authors
    checked = 0
    for study in all_studies():
        trials = paper_trials(study, preset_name, tmp_path)
        assert not authors_mismatches(study, preset_name, trials)
        checked += sum(len(authors.expected(preset_name, c.method)) for _, c in trials)
    if preset_name in authors.SETTINGS:  # the authors ran no ImageNet script: nothing to compare there
        assert checked > 1000, checked
        # the check can fail: one trial off the authors' line, a difference without a listed reason
        study = next(s for s in all_studies() if s.name == "ssl_baselines")
        trials = paper_trials(study, preset_name, tmp_path)
        row, simsiam = next((r, c) for r, c in trials if c.method == "simsiam")
        bad = authors_mismatches(study, preset_name, [(row, simsiam.replace(projector_depth=5, fix_pred_lr=False))])
        assert len(bad) == 2 and "projector_depth=5, the authors' " in bad[0] and "--num-proj-layers=" in bad[0]
        assert "fix_pred_lr=False" in bad[1]
        # a listed difference is compared with sqsp's value: the authors' own value would now fail
        row, distill = next((r, c) for r, c in trials if c.method == "distill")
        assert distill.aug_granularity == "sample" and authors.SETTINGS[preset_name]["distill"]["aug_granularity"][0] == \
            "batch"
        assert authors_mismatches(study, preset_name, [(row, distill.replace(aug_granularity="batch"))])
    else:
        assert checked == 0


def test_readme_lists_every_deliberate_difference_from_the_authors():
    from pathlib import Path

    from sqsp import authors
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = authors.difference_rows()
    assert rows and all(why for *_, why in rows)
    for field, ours, why in {(f, o, w) for _p, _m, f, _a, o, w in rows}:
        methods = sorted({m for _p, m, f, _a, o, w in rows if f == field})
        line = f"| {field} | {', '.join(methods)} | "
        assert line in readme and why in readme, (line, why)


def dataclasses_replace(study, **kw):
    import dataclasses
    return dataclasses.replace(study, **kw)


def test_a_study_that_sets_the_scale_is_refused_when_declared():
    from sqsp.config import ConfigError
    from sqsp.tune import Study
    with pytest.raises(ConfigError, match=r"study 'x': its overrides set base_lr=0.2, which sets the scale"):
        Study(name="x", grid=[{"row": "a"}], overrides={"base_lr": 0.2})
    with pytest.raises(ConfigError, match=r"its rows set batch_size=64, image_size=16"):
        Study(name="x", grid=[{"row": "a", "method": "vicreg", "batch_size": 64, "image_size": 16}])
    with pytest.raises(ConfigError, match="overrides set generator='stylegan-digits-m'"):
        Study(name="x", grid=[{"row": "a"}], overrides={"generator": "stylegan-digits-m"})
    with pytest.raises(ConfigError, match=r"grid sets scale field\(s\) \['epochs'\] to one value"):
        Study(name="x", grid={"epochs": [10], "syn_ratio": [0.5, 1.0]})
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) \['lr'\]"):
        Study(name="x", grid=[{"row": "a", "lr": 0.1}])
    # what a study compares is declared freely: rows of generators, loss weights; sweeps of any field
    Study(name="ok", grid=[{"row": "g", "generator": "dcgan-digits-m", "sim_weight": 1.0, "var_weight": 0.0}],
          overrides={"syn_ratio": 1.0, "eval_mmd": True})
    Study(name="lr", grid={"base_lr": [0.1, 0.2]})


def test_checkpoint_rows_are_named_by_run_and_kimg_in_training_order(tmp_path):
    from sqsp.checkpoints import find_checkpoints
    from sqsp.config import ConfigError
    for p in ("runs/00000-c10/network-snapshot-000200.pkl", "runs/00000-c10/network-snapshot-000040.pkl",
              "runs/00001-c10/network-snapshot-000040.pkl", "runs/00000-c10/log.txt"):
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_bytes(b"")
    found = find_checkpoints("runs/*/network-snapshot-*.pkl", tmp_path)
    assert [(c.label, c.step) for c in found] == [("00000-c10@40", 40), ("00000-c10@200", 200), ("00001-c10@40", 40)]
    assert found[1].path == str(tmp_path / "runs" / "00000-c10" / "network-snapshot-000200.pkl")
    with pytest.raises(ConfigError, match="matches no file"):
        find_checkpoints("runs/*/*.safetensors", tmp_path)


def test_cross_dataset_study_and_its_table_beside_the_papers(tmp_path):
    import dataclasses
    study = importlib.import_module("studies.cross_dataset").STUDY
    assert study.overrides["transfer_datasets"] == "auto"
    from sqsp.config import TRANSFER_PAIRS
    _, auto = configs("cross_dataset")  # the embedded default probes the other digits dataset
    assert {c.transfer_targets for c in auto.values()} == {TRANSFER_PAIRS[preset("smoke").dataset]} == {("digits",)}
    _, cfgs = configs("cross_dataset", ["transfer_datasets=digits"])  # every row, every seed probes the target
    by_row = {r: c for (r, s), c in cfgs.items() if s == 0}
    assert {r: c.method for r, c in by_row.items()} == {"syn+real-simsiam": "simsiam", "syn+real-vicreg": "vicreg",
                                                       "syn+real-squeeze-and-span": "distill"}
    assert all(c.transfer_targets == ("digits",) and 0 < c.syn_ratio < 1 for c in cfgs.values())
    paper = dataclasses.replace(study, preset="paper-cifar10")  # auto: the paper's pairs
    assert {c.transfer_targets for _, c in expand(paper, base_config(paper, [f"data_root={tmp_path}"]))} == \
        {("cifar100", "stl10")}

    def write(source, targets, folder):
        recs = []
        for row, base in (("syn+real-vicreg", 50.0), ("syn+real-squeeze-and-span", 60.0)):
            for seed in (0, 1):
                cfg = preset("smoke", {"seed": seed}).to_dict() | {"dataset": source, "method": "distill"}
                last = {"training_iteration": 1, "step": 84, "probe_acc": 90.0, "knn_acc": 80.0, "done": True,
                        "collapsed": False, **{f"probe_acc@{t}": base + i + seed for i, t in enumerate(targets)}}
                recs.append(TrialRecord(f"t{len(recs)}", cfg, row, [last], row_index=len(recs) // 2))
        results.write_study(str(folder), "cross_dataset", recs)
        return pd.read_parquet(folder / "trials.parquet")

    from analysis.tables import cross_dataset_table
    md = format_table(cross_dataset_table(write("cifar10", ("cifar100", "stl10"), tmp_path / "c10")))
    head, _, vicreg, sqsp = md.splitlines()[:4]
    assert "| linear probe (cifar10) |" in head and "| linear probe → cifar100 | linear probe → stl10 |" in head
    assert head.endswith("| paper CIFAR-10 → CIFAR-100 | paper CIFAR-10 → STL-10 |")
    assert "| 50.50 ± 0.71 (n=2) | 51.50 ± 0.71 (n=2) |" in vicreg and vicreg.endswith("| 54.19 | 80.56 |")
    assert sqsp.startswith("| syn+real-squeeze-and-span |") and sqsp.endswith("| 58.93 | 82.22 |")
    # a dataset the paper did not pretrain on: the paper's CIFAR-10 pairs stand beside it, named as such
    md = format_table(cross_dataset_table(write("digits", ("digits",), tmp_path / "dg")))
    assert "| linear probe → digits | collapsed | failed | paper CIFAR-10 → CIFAR-100 |" in md.splitlines()[0]


def test_baseline_rows_run_at_their_own_scale_on_the_paper_presets(tmp_path):
    """The row's method picks its line: Table 1's encoder at encode.py's scale, Table 2's SimSiam
    with its own projector, the cross-dataset VICReg at vicreg.py's 25/25 on CIFAR-100."""
    ks = importlib.import_module("studies.knowledge_source").STUDY
    by_row = {r: c for r, c in paper_trials(ks, "paper-cifar10", tmp_path) if c.seed == 0}
    for row in ("latent-encoding-syn", "latent-encoding-syn+real"):
        e = by_row[row]
        assert (e.batch_size, e.lr, e.projector_depth, e.lpips_net, e.epochs) == (128, 0.005, 2, "alex", 800), row
    assert (by_row["feature-squeeze"].batch_size, by_row["feature-squeeze"].lr) == (512, 0.06)
    assert by_row["feature-squeeze"].vc_side == "student"
    # the user's --set still sizes every row
    paper = dataclasses_replace(ks, preset="paper-cifar10")
    small = {r: c for r, c in expand(paper, base_config(paper, [f"data_root={tmp_path}", "batch_size=64"]))
             if c.seed == 0}
    assert small["latent-encoding-syn"].batch_size == 64 and small["feature-squeeze"].batch_size == 64
    cross = importlib.import_module("studies.cross_dataset").STUDY
    rows = {r: c for r, c in paper_trials(cross, "paper-cifar100", tmp_path) if c.seed == 0}
    assert (rows["syn+real-vicreg"].sim_weight, rows["syn+real-vicreg"].var_weight) == (25.0, 25.0)
    assert rows["syn+real-squeeze-and-span"].sim_weight == 10.0
    assert (rows["syn+real-simsiam"].projector_depth, rows["syn+real-simsiam"].fix_pred_lr) == (2, True)
    stl = {r: c for r, c in paper_trials(cross, "paper-stl10", tmp_path) if c.seed == 0}
    assert stl["syn+real-simsiam"].projector_depth == 3 and stl["syn+real-vicreg"].projector_depth == 5
