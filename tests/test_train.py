"""The training loop: resume is exact, reports carry the collapse signal, every method runs."""
import math
import os
import shutil

import pytest
import torch

from sqsp import record
from sqsp.config import preset
from sqsp.generators import build_architecture
from sqsp.train import CHECKPOINT_FILE, TrainingDiverged, train

TINY = {"dataset": "digits", "batch_size": 128, "student_width": 0.125, "projector_dim": 64, "squeeze_width": 64, "teacher_dim": 64,
        "projector_depth": 2, "epochs": 2, "steps": 0, "warmup_steps": 0, "eval_every": 0, "checkpoint_every": 1, "knn_k": 10, "probe": "none",
        "generator": "random:stylegan@16", "precision": "fp32", "channels_last": False, "base_lr": 0.2}


@pytest.fixture(scope="module")
def gen():
    return build_architecture("stylegan", resolution=16, seed=0)


def tiny(**kw):
    return preset("smoke", {**TINY, **kw})


@pytest.mark.slow
def test_resume_from_checkpoint_is_bit_for_bit(gen, tmp_path):
    cfg = tiny()
    saved = {}

    def keep(metrics, ckpt):
        if ckpt:
            shutil.copytree(ckpt, tmp_path / f"epoch{metrics['epoch']}")
        saved[metrics["epoch"]] = metrics

    full = train(cfg, keep, generator=gen)
    assert sorted(saved) == [1, 2] and full["done"] is True
    final_full = torch.load(tmp_path / "epoch2" / CHECKPOINT_FILE, weights_only=True)

    resumed_reports = []
    again = train(cfg, lambda m, c: (resumed_reports.append(m), c and shutil.copytree(c, tmp_path / "resumed")),
                  resume_from=str(tmp_path / "epoch1"), generator=gen)
    assert [m["epoch"] for m in resumed_reports] == [2]  # nothing repeated, nothing lost
    final_resumed = torch.load(tmp_path / "resumed" / CHECKPOINT_FILE, weights_only=True)
    for part in ("student", "teacher"):
        for k, v in final_full[part].items():
            assert torch.equal(v, final_resumed[part][k]), (part, k)
    assert again["loss"] == full["loss"] and again["knn_acc"] == full["knn_acc"]


@pytest.mark.slow
def test_untrained_backbone_is_evaluated_without_changing_the_run(gen, tmp_path):
    """eval_init reports the step-0 backbone's accuracy with every report (so the final row
    has it), draws no random numbers, and survives a resume."""
    with_init, reports = tiny(probe="fast", eval_init=True), []
    m = train(with_init, lambda r, c: (reports.append(r), c and r["epoch"] == 1 and shutil.copytree(c, tmp_path / "e1")),
              generator=gen)
    plain = train(tiny(probe="fast", eval_init=False), generator=gen)
    assert m["loss"] == plain["loss"] and m["probe_acc"] == plain["probe_acc"] and "init_probe_acc" not in plain
    assert 0 < m["init_probe_acc"] <= 100 and 0 < m["init_knn_acc"] <= 100
    assert all(r["init_probe_acc"] == m["init_probe_acc"] for r in reports)
    resumed = train(with_init, resume_from=str(tmp_path / "e1"), generator=gen)
    assert resumed["init_probe_acc"] == m["init_probe_acc"] and resumed["loss"] == m["loss"]


def test_student_initialisation_depends_on_the_seed_not_on_the_generator():
    """Rows of a study that differ in generator (or use none) must start from the same student,
    else a generator comparison is confounded by initialisation."""
    from sqsp.train import build_run
    def backbone(**kw):
        return build_run(tiny(**kw)).student.backbone.state_dict()
    ref = backbone(generator="random:stylegan@16")
    for other in (backbone(generator="random:dcgan@16"), backbone(method="vicreg", syn_ratio=0.0)):
        assert all(torch.equal(ref[k], other[k]) for k in ref)
    assert not all(torch.equal(ref[k], v) for k, v in backbone(generator="random:stylegan@16", seed=1).items())


@pytest.mark.slow
def test_domain_gap_mmd_is_reported_without_changing_the_run(gen):
    """Table 5's measure at the end of a run: finite, from its own latent stream (the training
    latents do not move), so the run is the same with or without it."""
    with_mmd = train(tiny(probe="fast", eval_init=False, eval_mmd=True), generator=gen)
    plain = train(tiny(probe="fast", eval_init=False, eval_mmd=False), generator=gen)
    assert math.isfinite(with_mmd["mmd_syn_real"]) and "mmd_syn_real" not in plain
    assert with_mmd["loss"] == plain["loss"] and with_mmd["probe_acc"] == plain["probe_acc"]
    from sqsp.synthetic import SyntheticSource
    src = SyntheticSource(gen, None, "features", torch.device("cpu"), seed=5)
    before = src.rng.get_state()
    a, b = src.sample_images(7, seed=3), src.sample_images(7, seed=3)
    assert a.dtype == torch.uint8 and a.shape == (7, 3, 16, 16) and torch.equal(a, b)
    assert torch.equal(src.rng.get_state(), before)


@pytest.mark.slow
def test_validation_split_reports_a_signal_every_epoch_and_changes_nothing_else(gen):
    """val_fraction: every report carries the validation kNN (epochs between evaluations too),
    the final one the validation probe, from the validation images alone; the test metrics and
    the trajectory are those of the same run without it. progress is step / total steps."""
    reports = []
    small = {"dataset": "digits", "epochs": 2, "probe": "fast", "eval_init": True}  # 10 steps an epoch
    with_val = train(tiny(**small, val_fraction=0.2), lambda m, c: reports.append(m), generator=gen)
    plain = train(tiny(**small), generator=gen)
    assert [r["epoch"] for r in reports] == [1, 2]
    assert [r["progress"] for r in reports] == [0.5, 1.0]
    assert all(0 < r["val_knn_acc"] <= 100 for r in reports) and "knn_acc" not in reports[0]  # eval_every=0
    assert "val_probe_acc" not in reports[0] and 0 < with_val["val_probe_acc"] <= 100
    assert 0 < with_val["init_val_probe_acc"] <= 100  # the untrained backbone, on the same split
    for k in ("loss", "student_std", "knn_acc", "probe_acc", "init_probe_acc"):
        assert with_val[k] == plain[k], k
    assert "val_knn_acc" not in plain and "val_probe_acc" not in plain
    # the selection metric is not the test metric computed twice: another split, another probe
    assert with_val["val_probe_acc"] != with_val["probe_acc"]
    _follow_the_record(reports)


def _follow_the_record(reports: list[dict]) -> None:
    """Every key train() reports is declared in sqsp/record.py (a metric, with its type and the
    reports it comes with, or one of the families named there), so results.py can type it."""
    declared = {m.name: m for m in record.METRICS}
    families = ("init_", "raw_", "generator_")
    for i, r in enumerate(reports):
        last = i == len(reports) - 1
        assert bool(r.get(record.DONE)) == last
        for k, v in r.items():
            if k in declared:
                m = declared[k]
                assert isinstance(v, m.kind) or (m.kind is float and type(v) is int), (k, v)
                assert last or m.when != "final", f"{k} is declared final but came with report {i + 1}"
            else:
                assert k == record.DONE or k.startswith(families) or "@" in k, f"{k} is not declared in sqsp/record.py"


def test_auto_precision_never_picks_emulated_bf16_on_cpu():
    from sqsp.device import amp_dtype, cpu_has_native_bf16
    cpu = torch.device("cpu")
    assert amp_dtype("auto", cpu) == (torch.bfloat16 if cpu_has_native_bf16() else None)
    assert amp_dtype("fp32", cpu) is None
    if not cpu_has_native_bf16():  # asked for explicitly it runs, with a warning that says why it is slow
        with pytest.warns(RuntimeWarning, match="emulated"):
            assert amp_dtype("bf16", cpu) == torch.bfloat16


def test_checkpoint_from_another_config_is_refused(gen, tmp_path):
    def keep(metrics, ckpt):
        if ckpt and not (tmp_path / "c").exists():
            shutil.copytree(ckpt, tmp_path / "c")
    train(tiny(steps=2), keep, generator=gen)
    with pytest.raises(ValueError, match="different config.*sim_weight"):
        train(tiny(steps=2, sim_weight=1.0), resume_from=str(tmp_path / "c"), generator=gen)


def test_reports_carry_every_term_and_no_nan(gen):
    reports = []
    train(tiny(epochs=1, probe="fast"), lambda m, c: reports.append(m), generator=gen)
    (m,) = reports
    for k in ("loss", "loss_sim", "loss_var", "loss_cov", "loss_real", "lr", "student_std", "teacher_std",
              "knn_acc", "probe_acc", "img_per_s", "collapsed", "step", "epoch"):
        assert k in m, k
    assert all(math.isfinite(v) for v in m.values() if isinstance(v, float))
    _follow_the_record(reports)


def test_divergence_raises(gen):
    with pytest.raises(TrainingDiverged, match="loss became"):
        train(tiny(steps=3, base_lr=1e12, syn_ratio=1.0), generator=gen)


@pytest.mark.parametrize("over", [
    {"method": "vicreg", "syn_ratio": 0.0},
    {"method": "vicreg", "syn_ratio": 0.5},
    {"method": "simsiam", "syn_ratio": 1.0},
    {"teacher_source": "w"},
    {"squeeze": False, "syn_augment": False, "var_weight": 0.0, "cov_weight": 0.0, "syn_ratio": 1.0},
    pytest.param({"aug_granularity": "batch", "generator_blocks": "b4-b8", "precision": "bf16"},
                 marks=pytest.mark.filterwarnings("ignore:precision='bf16' on a CPU")),
])
def test_every_variant_runs(gen, over):
    m = train(tiny(steps=2, batch_size=32, probe="fast", **over), generator=gen)
    assert m["done"] and math.isfinite(m["loss"]) and 0 <= m["probe_acc"] <= 100


def test_unknown_block_lists_the_real_ones(gen):
    with pytest.raises(ValueError, match=r"no block \['b32'\]; it has \['b4', 'b8', 'b16'\]"):
        train(tiny(generator_blocks="b16,b32"), generator=gen)
    with pytest.raises(ValueError, match=r"no block of group 'b64-b128' \['b64', 'b128'\]; it has \['b4', 'b8', 'b16'\]"):
        train(tiny(generator_blocks="b64-b128"), generator=gen)
    from sqsp.train import build_run  # a group takes the blocks of it the generator has (appendix Table 6)
    run = build_run(tiny(generator_blocks="b16-b32"), generator=gen)
    assert [b.name for b in run.synthetic.blocks] == ["b16"] and run.generator_info["generator_blocks_read"] == "b16"


@pytest.mark.slow
def test_command_line_prints_user_errors_as_one_line(tmp_path, capsys, monkeypatch):
    """A wrong data layout, a seed out of range, a missing checkpoint: one line, exit 2, no
    traceback (SQSP_DEBUG=1 shows it); nothing is trained."""
    import subprocess
    import sys
    from pathlib import Path
    from sqsp.train import main
    cases = [(["--set", "dataset=cifar10", "--set", f"data_root={tmp_path}"],
              "python -m sqsp.train: error: cifar10: folder "),
             (["--set", "seed=1e25"],
              "python -m sqsp.train: error: seed=10000000000000000905969664 is out of range; allowed: 0..4294967295"),
             (["--set", "device=cuda:0"] if not torch.cuda.is_available() else ["--set", "base_lr=inf"], "error: "),
             (["--resume-from", str(tmp_path)], f"--resume-from {tmp_path}: no state.pt there"),
             (["--set", "data_root=x"], "data_root='x' is given, but dataset='digits-m'")]
    for argv, says in cases:
        capsys.readouterr()
        assert main(["--set", f"generator={TINY['generator']}", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith(says) or says in err, err
        assert "Traceback" not in err
    # the layout error keeps the expected tree under its first line; as a user runs it:
    root = Path(__file__).resolve().parents[1]
    argv = [sys.executable, "-m", "sqsp.train", *cases[0][0]]
    out = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith(cases[0][1]) and "Traceback" not in out.stderr, out.stderr
    assert "data_batch_1 ... data_batch_5" in out.stderr
    debug = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "SQSP_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "DatasetLayoutError" in debug.stderr


@pytest.mark.slow
def test_transfer_probes_report_per_dataset_and_match_the_own_probe_on_the_same_data(gen):
    """Appendix Table 5's path: the final backbone probed on another dataset. Probed on its own
    dataset, the numbers must equal the run's own probe (same features, same labels)."""
    own = tiny().dataset
    m = train(tiny(steps=3, probe="fast", eval_init=True, transfer_datasets=own), generator=gen)
    assert m[f"probe_acc@{own}"] == m["probe_acc"] and m[f"knn_acc@{own}"] == m["knn_acc"]
    assert m[f"init_probe_acc@{own}"] == m["init_probe_acc"]  # the untrained floor of the transfer too


def test_simsiam_head_is_the_authors_and_its_predictor_keeps_its_lr(gen):
    """src/models/simsiam.py: Linear-BN-ReLU x (layers - 1), the output Linear (bias frozen) and
    BatchNorm1d(affine=False); --fix-pred-lr: the predictor's lr stays while the rest decays."""
    from torch import nn

    from sqsp.train import build_run, train_step
    run = build_run(tiny(method="simsiam", projector_depth=2, fix_pred_lr=True, epochs=0, steps=4), generator=gen)
    head = run.student.projector
    assert [type(m) for m in head] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d]
    assert not head[-1].affine and not head[-2].bias.requires_grad and head[0].bias is None
    predictor_group = run.optimizer.param_groups[1]["params"]
    assert {id(p) for p in predictor_group} == {id(p) for p in run.student.predictor.parameters()}
    for _ in range(3):
        train_step(run)
    lrs = [g["lr"] for g in run.optimizer.param_groups]
    assert lrs[1] == pytest.approx(run.config.lr) and lrs[0] < 0.5 * run.config.lr  # cosine at step 3 of 4
    plain = build_run(tiny(method="simsiam", projector_depth=2, epochs=0, steps=4), generator=gen)
    assert len(plain.optimizer.param_groups) == 1


def test_torchvision_init_zeroes_every_residual_branch_at_the_paper_presets(tmp_path):
    """The authors' backbones (torchvision's ResNet, zero_init_residual=True): each block starts
    as the identity; the smoke preset keeps PyTorch's default init."""
    from sqsp.data import channel_stats
    from sqsp.models import _BasicBlock, build_backbone
    for name, last_bn in (("paper-cifar10", "bn2"), ("paper-stl10", "bn2"), ("paper-imagenet", "bn3")):
        cfg = preset(name, {"data_root": str(tmp_path)})
        assert cfg.student_init == "torchvision", name
        net = build_backbone(cfg.student, cfg.student_width, (0.5,) * 3, (0.5,) * 3, init=cfg.student_init)[1]
        blocks = [m for m in net.modules() if isinstance(m, _BasicBlock) or hasattr(m, last_bn)]
        assert len(blocks) >= 8 and all(torch.all(getattr(b, last_bn).weight == 0) for b in blocks), name
    smoke = preset("smoke")
    net = build_backbone(smoke.student, smoke.student_width, *channel_stats(smoke.dataset), init=smoke.student_init)
    assert smoke.student_init == "pytorch" and all(torch.all(b.bn2.weight == 1) for b in net.modules()
                                                   if isinstance(b, _BasicBlock))
    x = torch.rand(2, 3, 32, 32)
    zero = build_backbone("resnet18-cifar", 0.125, (0.5,) * 3, (0.5,) * 3, init="torchvision")[1]
    stem = zero.stem(x)  # a zero-init residual network's blocks pass the stem's output through (stride aside)
    assert torch.allclose(zero.layers[0](stem), torch.relu(stem))


@pytest.mark.parametrize("method", ["vicreg", "simsiam"])
def test_synthetic_images_can_be_augmented_once_per_batch_by_every_method(gen, method):
    """The authors' code draws one crop/jitter/flip per synthetic batch for every method; sqsp
    offers it (aug_granularity='batch') beside the per-sample default, and it changes the views."""
    from sqsp.train import build_run, compute_loss
    losses = {}
    for gran in ("sample", "batch"):
        run = build_run(tiny(method=method, aug_granularity=gran, epochs=0, steps=1), generator=gen)
        assert run.config.aug_granularity == gran
        losses[gran] = compute_loss(run)["loss"].item()
    assert math.isfinite(losses["batch"]) and losses["batch"] != losses["sample"]
    assert preset("smoke").aug_granularity == "sample"


@pytest.mark.slow
def test_paper_probe_reports_the_last_and_the_best_of_its_evaluations(gen):
    m = train(tiny(steps=2, epochs=0, probe="paper", probe_epochs=6, probe_lr=1.0), generator=gen)
    assert 0 < m["probe_acc"] <= m["probe_acc_best"] <= 100
    assert "probe_acc_best" not in train(tiny(steps=2, epochs=0, probe="fast"), generator=gen)  # one fit: no best
    assert "probe_acc_best" in record.METRIC_NAMES
