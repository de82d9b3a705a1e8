"""What a user sees of a study, and what Ray's own tools see of it: a compact console with a
progress count, the trials a --dry-run lists, and the hyperparameters that vary between trials in
Ray's param_space (ResultGrid's DataFrame, TensorBoard's HParams read from the event files)."""
from __future__ import annotations

import json

import glob
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sqsp import results
from sqsp.config import ConfigError, preset
from sqsp.tune import Study, logger_callbacks, parse_loggers, study_main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "steps=3", "--set", "batch_size=16", "--set", "generator=random:stylegan@16", "--set", "probe=none",
        "--set", "eval_init=false", "--set", "eval_mmd=false"]


def _hparams(event_file: str) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata
    acc = EventAccumulator(event_file)
    acc.Reload()
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    info = metadata.parse_session_start_info_plugin_data(content)
    out = {}
    for k, v in info.hparams.items():
        kind = v.WhichOneof("kind")
        out[k] = getattr(v, kind)
    return out


@pytest.mark.slow
def test_a_study_prints_a_line_per_trial_and_ray_sees_its_hyperparameters(tmp_path):
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_USAGE_STATS_ENABLED": "0"}
    # every row its own Ray trial: Ray's tools see each row's hyperparameters (rows sharing a generator
    # stream run as one Ray trial, whose config is its group; tests/test_share_generator.py)
    out = subprocess.run([sys.executable, "studies/ablation.py", "--storage", str(tmp_path), "--seeds", "1",
                          "--status-every", "2", "--share-generator", "off", *TINY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    # stdout is the table alone (`> table.md`); Ray's banner and hints are behind --verbose
    assert out.stdout.startswith("| row |") and "[sqsp]" not in out.stdout, out.stdout[:2000]
    assert "Configuration for experiment" not in out.stdout + out.stderr and "tensorboard --logdir" not in out.stdout
    before_table = out.stderr.splitlines()
    assert len(before_table) < 60, "\n".join(before_table)
    status = [line for line in out.stderr.splitlines() if " running, " in line and "/6 ended" in line]
    assert status and any("a seed 0" in line for line in status), out.stderr  # the running trials, while they run
    ended = [line for line in out.stderr.splitlines() if line.startswith("[sqsp] ") and "/6 " in line
             and line not in status]
    assert sorted(line.split()[1] for line in ended) == [f"{i}/6" for i in range(1, 7)], out.stderr
    assert {line.split()[2] for line in ended} == set("abcdef") and all("completed" in x for x in ended), ended

    study = tmp_path / "ablation"
    from ray.tune import ExperimentAnalysis, ResultGrid
    df = ResultGrid(ExperimentAnalysis(str(study))).get_dataframe()
    by_row = df.set_index("config/row")
    for col in ("config/sim_weight", "config/var_weight", "config/cov_weight", "config/syn_ratio",
                "config/squeeze", "config/syn_augment"):
        assert col in df, sorted(df.columns)
    assert (by_row.loc["d", "config/cov_weight"], by_row.loc["e", "config/cov_weight"]) == (0.0, 1.0)
    assert "config/batch_size" not in df  # what every trial shares stays out (study.json holds it)

    trials = results.read_trials(str(study)).set_index("row")
    history = results.read_history(str(study))
    import json
    runs = json.loads(trials.attrs["sqsp"]["sqsp_runs"])
    assert len(runs) == 1 and (trials["run_id"] == runs[0]["run_id"]).all() and runs[0]["ended_at"]
    for tid, row in zip(trials["trial_id"], trials.index):
        (event_file,) = glob.glob(str(study / f"{tid}-*" / "events.out.tfevents.*"))
        hp = _hparams(event_file)
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        acc = EventAccumulator(event_file)
        acc.Reload()  # TensorBoard's x-axis is the optimiser step, not Ray's report count
        steps = [e.step for e in acc.Scalars("ray/tune/loss")]
        assert steps == list(history.loc[history["trial_id"] == tid, "step"]) and steps[-1] == 3
        cfg = trials.loc[row]
        assert {k: hp[k] for k in ("sim_weight", "var_weight", "cov_weight", "syn_ratio")} == \
            {k: float(cfg[k]) for k in ("sim_weight", "var_weight", "cov_weight", "syn_ratio")}, (row, hp)
        assert hp["row"] == row and hp["squeeze"] == bool(cfg["squeeze"])
    # what produced each trial, recorded where it ran
    assert set(trials["numpy_version"]) == {np.__version__}
    assert set(trials["cuda_version"].fillna("none")) == {torch.version.cuda or "none"}
    assert trials["device_name"].str.len().min() > 0 and trials["sklearn_version"].notna().all()
    assert trials["generator_sha256"].isna().all()  # an untrained random: generator has no file


def test_dry_run_lists_the_trials_without_ray_and_seeds_default_to_the_studys(capsys, tmp_path, monkeypatch):
    from studies.ablation import STUDY
    ran = []  # a dry run never reaches run_study (nor Ray), whatever Ray other tests keep running
    monkeypatch.setattr("sqsp.tune.cli.run_study", lambda *a, **k: ran.append(1))
    assert study_main(STUDY, ["--dry-run", "--storage", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "18 trials" in text and "varying squeeze, syn_augment, sim_weight, var_weight, cov_weight, syn_ratio" in text
    trial_lines = [line for line in text.splitlines() if " seed " in line]
    assert len(trial_lines) == 18 and "cov_weight=0.0" in [x for x in trial_lines if x.split()[0] == "d"][0]
    assert not ran and not (tmp_path / "ablation").exists()

    declared = Study(name="declared", preset="smoke", seeds=(10, 11), grid=[{"row": "a"}, {"row": "b", "sim_weight": 5.0}])
    assert study_main(declared, ["--dry-run"]) == 0
    seeds = [int(x.split("seed")[1].split()[0]) for x in capsys.readouterr().out.splitlines() if " seed " in x]
    assert seeds == [10, 11, 10, 11]
    assert study_main(declared, ["--dry-run", "--seeds", "2"]) == 0  # a count, when the user asks for one
    assert [int(x.split("seed")[1].split()[0]) for x in capsys.readouterr().out.splitlines() if " seed " in x] == \
        [0, 1, 0, 1]


def test_help_lists_presets_and_a_bad_preset_names_the_choices(capsys):
    from studies.ablation import STUDY
    with pytest.raises(SystemExit):
        study_main(STUDY, ["--help"])
    help_text = capsys.readouterr().out
    assert "smoke" in help_text and "paper-cifar10" in help_text and "--dry-run" in help_text
    with pytest.raises(SystemExit) as e:
        study_main(STUDY, ["--preset", "nope", "--dry-run"])
    assert e.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_settings_a_method_ignores_are_refused_with_the_reason(capsys):
    with pytest.raises(ConfigError, match=r"syn_augment=False would do nothing \(method='vicreg' ignores it"):
        preset("smoke", {"method": "vicreg", "syn_augment": False})
    with pytest.raises(ConfigError, match="SimSiam's loss .* has no weights"):
        preset("smoke", {"method": "simsiam", "cov_weight": 2.0})
    with pytest.raises(ConfigError, match="eval_mmd=True would do nothing .*probe='none'"):
        preset("smoke", {"probe": "none", "eval_mmd": True})
    with pytest.raises(ConfigError, match="vc_side='student' would do nothing"):
        preset("smoke", {"method": "vicreg", "vc_side": "student"})
    # what a preset sets, or what a method reads, passes: crop_min crops VICReg's views
    assert preset("smoke", {"method": "vicreg", "crop_min": 0.5}).crop_min == 0.5
    assert preset("smoke", {"probe": "none"}).eval_mmd  # the preset's eval_mmd: not the user's setting
    # a study-wide --set: refused when no trial reads it, kept when some do
    from studies.ssl_baselines import STUDY
    assert study_main(STUDY, ["--dry-run", "--seeds", "1", "--set", "vc_side=student"]) == 0
    capsys.readouterr()
    assert study_main(STUDY, ["--dry-run", "--set", "latent_weight=2"]) == 2
    assert "latent_weight=2.0 would do nothing in any trial of study 'ssl_baselines'" in capsys.readouterr().err
    rowwise = Study(name="rowwise", preset="smoke", grid=[{"row": "s", "method": "simsiam", "sim_weight": 5.0}])
    assert study_main(rowwise, ["--dry-run"]) == 2
    assert "row 's' seed 0: sim_weight=5.0 would do nothing" in capsys.readouterr().err


def test_loggers_flag():
    assert parse_loggers("tensorboard") == ("tensorboard",) and parse_loggers("none") == ()
    with pytest.raises(ConfigError, match="allowed: a comma-separated list of tensorboard, mlflow, wandb"):
        parse_loggers("neptune")
    names = [type(c).__name__ for c in logger_callbacks(("tensorboard",), "s")]
    assert names == ["CSVLoggerCallback", "JsonLoggerCallback", "TensorBoardLogger"]
    import importlib.util
    for name, package in (("mlflow", "mlflow"), ("wandb", "wandb")):
        if importlib.util.find_spec(package) is None:
            with pytest.raises(ConfigError, match=f"--loggers {name} needs the {package} package.*pip install"):
                logger_callbacks((name,), "s")


def test_a_checkpoint_files_sha256_is_recorded(tmp_path):
    import hashlib
    from sqsp.provenance import generator_sha256
    f = tmp_path / "g.pkl"
    f.write_bytes(b"not really a network" * 100)
    cfg = preset("smoke", {"generator": "random:stylegan@16"}).replace(generator=str(f))
    assert generator_sha256(cfg) == hashlib.sha256(f.read_bytes()).hexdigest()


def test_dry_run_refuses_a_block_the_generator_here_lacks(capsys):
    """What the run would refuse (a block the untrained 16-px StyleGAN does not have), the dry
    run refuses too, without Ray; a generator not here yet is left to the run."""
    study = Study(name="blocks_here", preset="smoke", seeds=(0,), grid=[{"row": "r", "generator": "random:stylegan@16"}])
    assert study_main(study, ["--dry-run", "--set", "generator_blocks=b32"]) == 2
    assert "has no block ['b32']; it has ['b4', 'b8', 'b16']" in capsys.readouterr().err
    assert study_main(study, ["--dry-run", "--set", "generator_blocks=b16"]) == 0


def test_provenance_of_a_trial_that_never_loads_torch_does_not_import_it():
    """A stand-in trial (it sleeps instead of training) records the CPU it ran on without
    importing torch: that import would be 2 s of CPU in every fresh trial worker."""
    import subprocess
    import sys
    script = ("import json, sys\nfrom sqsp.config import preset\nfrom sqsp.provenance import trial_provenance\n"
              "p = trial_provenance(preset('smoke', ['generator=random:stylegan@16']))\n"
              "print(json.dumps([p, 'torch' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    prov, imported = json.loads(out)
    assert not imported and prov["cuda_version"] is None and prov["device_name"] and prov["numpy_version"]
