"""Appendix Fig. 1: the layers compared (generator blocks / convolutions, student stem and
stages / residual blocks), the CKA matrices, the students taken from a checkpoint or a study,
and the table and figure analysis/ makes from the Parquet file alone."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from analysis.plots import layer_similarity_figure
from analysis.tables import cka_matrices, format_layer_similarity, layer_similarity_table
from sqsp import results
from sqsp.config import preset
from sqsp.generators import build_architecture
from sqsp.layer_similarity import (FILE, cka_rows, generator_layers, layer_features, similarity_frame,
                                   student_layers, students_from_study)
from sqsp.models import build_backbone
from sqsp.train import CHECKPOINT_FILE, load_backbone, train

pytestmark = pytest.mark.xdist_group("layer_similarity")  # one xdist worker: its module fixture is built once

TINY = {"batch_size": 64, "student_width": 0.125, "projector_dim": 32, "squeeze_width": 32, "teacher_dim": 32,
        "projector_depth": 2, "steps": 2, "eval_every": 0, "probe": "none", "generator": "random:stylegan@16",
        "precision": "fp32", "channels_last": False, "eval_init": False, "eval_mmd": False}


def test_layers_of_the_generator_and_the_student():
    gen = build_architecture("stylegan", resolution=16, seed=0)
    assert generator_layers(gen, "blocks") == [(b.name, b.module) for b in gen.blocks]
    convs = [m for _, m in generator_layers(gen, "layers")]
    # every modulated conv, once; not the ToRGB layers (image channels), not b4's block again
    assert convs == ["synthesis.b4.conv1", "synthesis.b8.conv0", "synthesis.b8.conv1", "synthesis.b16.conv0",
                     "synthesis.b16.conv1"]
    assert [m for _, m in generator_layers(build_architecture("dcgan", resolution=16, seed=0), "layers")]
    bb = build_backbone("resnet18-cifar", 0.125, (0.5,) * 3, (0.5,) * 3)
    assert [label for label, _ in student_layers(bb, "blocks", 16)] == \
        ["stem", "stage1 (16px)", "stage2 (8px)", "stage3 (4px)", "stage4 (2px)"]
    assert len(student_layers(bb, "layers", 16)) == 9  # stem + 8 basic blocks
    tv = build_backbone("resnet18", 1.0, (0.5,) * 3, (0.5,) * 3)
    assert [m for _, m in student_layers(tv, "blocks", 64)] == ["1.maxpool", "1.layer1.1", "1.layer2.1", "1.layer3.1",
                                                                "1.layer4.1"]
    with pytest.raises(ValueError, match="granularity='convs'"):
        generator_layers(gen, "convs")


def test_cka_matrices_are_symmetric_with_unit_diagonal_and_features_are_the_layers_outputs():
    gen = build_architecture("stylegan", resolution=16, seed=0)
    bb = build_backbone("resnet18-cifar", 0.125, (0.5,) * 3, (0.5,) * 3)
    g, s = layer_features(gen, bb, 16, 40, seed=0)
    assert list(g) == ["b4", "b8", "b16"] and all(v.shape == (40, c.channels) for v, c in zip(g.values(), gen.blocks))
    # the generator's block features are Eq. 4's pooled outputs of the same latents
    z, c = gen.sample_inputs(40, "cpu", torch.Generator().manual_seed(0))
    assert np.allclose(g["b8"], gen(z, c).features["b8"].mean(dim=(2, 3)).numpy(), atol=1e-6)
    rows = cka_rows(g, s, seed=0)
    import pandas as pd
    df = pd.DataFrame(rows)
    mats = cka_matrices(df)
    assert list(mats) == ["generator", "student", "generator-student"]
    assert mats["generator-student"].shape == (3, 5)
    for panel in ("generator", "student"):
        m = mats[panel].to_numpy()
        assert np.allclose(np.diag(m), 1.0) and np.allclose(m, m.T) and ((m >= -1e-9) & (m <= 1 + 1e-9)).all()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny student trained by train(), its checkpoint kept as the studies keep theirs."""
    folder = tmp_path_factory.mktemp("ckpt")

    def keep(metrics, ckpt):
        if ckpt:
            shutil.copy2(f"{ckpt}/{CHECKPOINT_FILE}", folder / CHECKPOINT_FILE)
    cfg = preset("smoke", TINY)
    train(cfg, keep)
    return folder, cfg


def test_student_from_a_checkpoint_and_from_a_study_row(trained, tmp_path):
    folder, cfg = trained
    backbone, back = load_backbone(str(folder))
    assert back == cfg and not backbone.training and not any(p.requires_grad for p in backbone.parameters())
    state = torch.load(folder / CHECKPOINT_FILE, weights_only=True)["student"]
    assert torch.equal(backbone.state_dict()["1.stem.0.weight"], state["backbone.1.stem.0.weight"])

    recs = [results.TrialRecord("t0", cfg.to_dict(), "e", [{"training_iteration": 1, "step": 2, "done": True,
                                                            "final": True, "collapsed": False}],
                                checkpoint=str(folder)),
            results.TrialRecord("t1", cfg.replace(seed=1).to_dict(), "e", [], error="RuntimeError: died")]
    results.write_study(str(tmp_path / "ablation"), "ablation", recs)
    assert students_from_study(str(tmp_path / "ablation"), "e", None) == [str(folder)]  # the failed trial is not one
    with pytest.raises(LookupError, match=r"no finished trial of row 'f'.*rows: \['e'\]"):
        students_from_study(str(tmp_path / "ablation"), "f", None)
    with pytest.raises(LookupError, match="with seeds"):
        students_from_study(str(tmp_path / "ablation"), "e", [1])


def test_command_line_table_and_figure(trained, tmp_path, capsys):
    from sqsp.layer_similarity import main
    folder, _ = trained
    with pytest.raises(SystemExit):
        main(["--from", str(tmp_path), "--storage", str(tmp_path)])
    assert "--from needs --row" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tmp_path / "nothing"), "--storage", str(tmp_path)])
    assert "no training checkpoint" in capsys.readouterr().err
    out = main(["--checkpoint", str(folder), "--samples", "50", "--storage", str(tmp_path)])
    df, info = results.read_table(out, FILE)
    assert set(df["panel"]) == {"generator", "student", "generator-student"} and info["granularity"] == "blocks"
    assert info["generator"] == "random:stylegan@16" and info["checkpoints"] == [str(folder)]
    table = layer_similarity_table(df, info).set_index("panel")
    assert table.loc["generator", "layers"] == "3" and table.loc["generator-student", "layers"] == "3 × 5"
    assert 0 <= table.loc["student", "mean_mean"] <= 1 and 0 <= table.loc["generator", "share_mean"] <= 100
    md = format_layer_similarity(layer_similarity_table(df, info))
    assert "| generator | 3 |" in md and "most pairs < 0.80 |" in md and "most similar generator layer" in md
    paths = layer_similarity_figure(df, info, tmp_path / "fig1_cka")
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    df2, _ = similarity_frame([str(folder)], 50, "blocks")  # deterministic: the same latents, the same student
    assert np.allclose(df2["cka"], df["cka"])
