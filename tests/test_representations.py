"""Fig. 2: the three representations of generated images from a tiny zoo (its StyleGAN, its
discriminator, its classifier), labelled, embedded by the real umap-learn, written to Parquet
through sqsp/results.py, and drawn and measured by analysis/ from the file alone."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.plots import representations_figure
from analysis.tables import cluster_scores, format_representations, representations_table
from sqsp import zoo
from sqsp.config import preset
from sqsp.representations import FILE, gan_representations, load_discriminator, load_labeller
from sqsp.results import read_table, write_table

pytestmark = pytest.mark.xdist_group("representations")  # one xdist worker: its module fixture is built once

MAIN = zoo.DEFAULT_RUNS[0].name  # the zoo's main StyleGAN, named for the zoo's dataset


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    """The main StyleGAN run of the zoo, 4 steps, and the classifier, in a folder of the test's."""
    directory = tmp_path_factory.mktemp("zoo")
    zoo.build(directory, runs=zoo.DEFAULT_RUNS[:1], steps=4, fid_samples=80, quality_samples=80, classifier_epochs=1, progress=False,
              workers=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SQSP_ZOO_DIR", str(directory))
        yield directory


def test_three_representations_of_the_same_images(tiny_zoo):
    cpu = torch.device("cpu")
    gen = zoo.load_generator(MAIN)
    labeller = load_labeller(None, MAIN, device=cpu)
    assert labeller.info["classifier"] == zoo.CLASSIFIER and labeller.info["classifier_dataset"] == zoo.DATASET
    disc = load_discriminator(MAIN, device=cpu)
    labels, reps = gan_representations(gen, labeller, 30, seed=3, discriminator=disc)
    assert labels.shape == (30,) and labels.dtype == np.int64 and set(labels) <= set(range(10))
    assert set(reps) == {"discriminator", "latent", "generator"}
    assert reps["latent"].shape == (30, gen.w_dim)
    assert reps["generator"].shape == (30, sum(b.channels for b in gen.blocks))  # Eq. 4: every block, pooled
    assert reps["discriminator"].shape[0] == 30 and np.isfinite(reps["discriminator"]).all()
    again_labels, again = gan_representations(gen, labeller, 30, seed=3, discriminator=disc)
    assert (again_labels == labels).all() and all(np.array_equal(again[k], reps[k]) for k in reps)
    # the latent is the w that made the image: the same z through the mapping network gives it
    z, c = gen.sample_inputs(30, cpu, torch.Generator().manual_seed(3))
    assert np.allclose(gen(z, c, blocks=[]).w.numpy(), reps["latent"], atol=1e-6)
    # without a discriminator there is no first panel
    assert set(gan_representations(gen, labeller, 30, seed=3)[1]) == {"latent", "generator"}


def test_a_users_exported_classifier_labels_and_bad_ones_are_refused(tiny_zoo, tmp_path):
    class Brightness(torch.nn.Module):  # class 1 for bright images, 0 for dark
        def forward(self, x):
            m = x.mean(dim=(1, 2, 3))
            return torch.stack([-m, m], dim=1)

    path = tmp_path / "clf.pt2"
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(Brightness(), (torch.zeros(2, 3, 16, 16),), dynamic_shapes=({0: batch},)),
                      str(path))
    lab = load_labeller(str(path), "random:stylegan@16", device=torch.device("cpu"))
    assert lab.predict(torch.stack([torch.full((3, 16, 16), -0.9), torch.full((3, 16, 16), 0.9)])).tolist() == [0, 1]
    with pytest.raises(ValueError, match="not a zoo entry.*--classifier"):
        load_labeller(None, "random:stylegan@16", device=torch.device("cpu"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_labeller(str(tmp_path / "nope.pt2"), MAIN, device=torch.device("cpu"))
    (tmp_path / "clf.pkl").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown file type '.pkl'"):
        load_labeller(str(tmp_path / "clf.pkl"), MAIN, device=torch.device("cpu"))


def test_cluster_scores_tell_class_clusters_from_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 40)
    centres = rng.normal(size=(5, 2)) * 10
    clustered = centres[labels] + rng.normal(size=(200, 2)) * 0.5
    knn, sil = cluster_scores(clustered, labels)
    assert knn > 95 and sil > 0.6
    knn, sil = cluster_scores(rng.normal(size=(200, 2)), labels)
    assert knn < 40 and abs(sil) < 0.1  # chance is 20%


def fake_frame(seeds=(0, 1), n=100):
    """Class-clustered 'generator' points, structureless 'latent' ones, as representations.parquet holds."""
    rng = np.random.default_rng(1)
    rows = []
    for seed in seeds:
        labels = rng.integers(0, 4, n)
        for rep, spread in (("latent", None), ("generator", 0.3)):
            pts = rng.normal(size=(n, 2)) if spread is None else np.eye(4)[labels][:, :2] * 5 + \
                rng.normal(size=(n, 2)) * spread + labels[:, None]
            feats = np.concatenate([pts, rng.normal(size=(n, 3))], 1).astype(np.float32)
            rows.append(pd.DataFrame({"seed": seed, "representation": rep, "sample": np.arange(n), "label": labels,
                                      "umap_x": pts[:, 0], "umap_y": pts[:, 1], "dim": 5, "features": list(feats)}))
    return pd.concat(rows, ignore_index=True)


def test_analysis_measures_and_draws_fig2_from_parquet_alone(tmp_path, capsys):
    info = {"generator": "g", "classifier": "classifier-digits", "classifier_dataset": "digits",
            "classifier_test_accuracy": 0.95, "missing": {"discriminator": "no discriminator"}}
    write_table(fake_frame(), str(tmp_path / "representations"), FILE, kind="representations", info=info)
    df, back = read_table(str(tmp_path / "representations"), FILE)
    assert back == info and isinstance(df["features"].iloc[0], np.ndarray)
    from sqsp.results import ResultsError, read_trials
    with pytest.raises(ResultsError, match="representations file, not its trials file"):
        read_trials(str(tmp_path / "representations" / FILE))
    table = representations_table(df, back).set_index("representation")
    assert list(table.index) == ["latent", "generator"] and (table["n"] == 2).all()
    assert table.loc["generator", "knn2d_mean"] > 90 > 50 > table.loc["latent", "knn2d_mean"]
    assert table.loc["generator", "silhouette_mean"] > 0.3 > table.loc["latent", "silhouette_mean"]
    md = format_representations(representations_table(df, back))
    assert "| (b) | generator features (Eq. 4) | 5 |" in md and "class-clustered (2c) |" in md
    assert "test accuracy 95.0%" in md and "discriminator panel missing: no discriminator" in md
    paths = representations_figure(df, back, tmp_path / "representations" / "fig2")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"

    from analysis import plots, tables
    for cli, expect in ((tables.main, "kNN acc. in 2-D (UMAP)"), (plots.main, "fig2.pdf")):  # the command lines
        assert cli([str(tmp_path / "representations")]) == 0 and expect in capsys.readouterr().out


@pytest.mark.slow
def test_command_line_writes_the_file_and_refuses_bad_input(tiny_zoo, tmp_path, capsys):
    """The entry point end to end, with the real umap-learn (one seed, few images)."""
    from sqsp.representations import main
    with pytest.raises(SystemExit):
        main(["--samples", "5", "--storage", str(tmp_path)])
    assert "--samples 5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--set", "generator=random:stylegan@16", "--storage", str(tmp_path)])
    assert "not a zoo entry" in capsys.readouterr().err and not (tmp_path / "representations").exists()
    folder = main(["--seeds", "1", "--samples", "60", "--storage", str(tmp_path)])
    df, info = read_table(folder, FILE)
    assert set(df["representation"]) == {"discriminator", "latent", "generator"} and len(df) == 180
    assert info["generator"] == MAIN and info["classifier"] == zoo.CLASSIFIER
    assert np.isfinite(df[["umap_x", "umap_y"]].to_numpy()).all()
    table = representations_table(df, info)
    assert len(table) == 3 and table["knn2d_mean"].between(0, 100).all()
    assert preset("smoke").generator == info["generator"]  # the smoke preset's generator by default
