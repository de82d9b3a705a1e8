"""The training loop: resume is exact, reports carry the collapse signal, every method runs."""
import math
import os
import shutil

import pytest
import torch

from sqsp.config import preset
from sqsp.generators import build_architecture
from sqsp.train import CHECKPOINT_FILE, TrainingDiverged, train

TINY = {"batch_size": 128, "student_width": 0.125, "projector_dim": 64, "squeeze_width": 64, "teacher_dim": 64,
        "projector_depth": 2, "epochs": 2, "eval_every": 1, "checkpoint_every": 1, "knn_k": 10,
        "generator": "random:stylegan@16", "precision": "fp32"}


@pytest.fixture(scope="module")
def gen():
    return build_architecture("stylegan", resolution=16, seed=0)


def tiny(**kw):
    return preset("smoke", {**TINY, **kw})


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


def test_checkpoint_from_another_config_is_refused(gen, tmp_path):
    def keep(metrics, ckpt):
        if ckpt and not (tmp_path / "c").exists():
            shutil.copytree(ckpt, tmp_path / "c")
    train(tiny(epochs=1), keep, generator=gen)
    with pytest.raises(ValueError, match="different config.*sim_weight"):
        train(tiny(epochs=1, sim_weight=1.0), resume_from=str(tmp_path / "c"), generator=gen)


def test_reports_carry_every_term_and_no_nan(gen):
    reports = []
    train(tiny(epochs=1), lambda m, c: reports.append(m), generator=gen)
    (m,) = reports
    for k in ("loss", "loss_sim", "loss_var", "loss_cov", "loss_real", "lr", "student_std", "teacher_std",
              "knn_acc", "probe_acc", "img_per_s", "collapsed", "step", "epoch"):
        assert k in m, k
    assert all(math.isfinite(v) for v in m.values() if isinstance(v, float))


def test_divergence_raises(gen):
    with pytest.raises(TrainingDiverged, match="loss became"):
        train(tiny(epochs=1, base_lr=1e12, syn_ratio=1.0), generator=gen)


@pytest.mark.parametrize("over", [
    {"method": "vicreg", "syn_ratio": 0.0},
    {"method": "vicreg", "syn_ratio": 0.5},
    {"method": "simsiam", "syn_ratio": 1.0},
    {"teacher_source": "w"},
    {"squeeze": False, "syn_augment": False, "var_weight": 0.0, "cov_weight": 0.0, "syn_ratio": 1.0},
    {"aug_granularity": "batch", "generator_blocks": "b4-b8", "precision": "bf16"},
])
def test_every_variant_runs(gen, over):
    m = train(tiny(epochs=1, **over), generator=gen)
    assert m["done"] and math.isfinite(m["loss"]) and 0 <= m["probe_acc"] <= 100


def test_unknown_block_lists_the_real_ones(gen):
    with pytest.raises(ValueError, match=r"no block\(s\) \['b32'\].*\['b4', 'b8', 'b16'\]"):
        train(tiny(generator_blocks="b16-b32"), generator=gen)
