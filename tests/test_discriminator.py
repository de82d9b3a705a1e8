"""Table 1's direct use of a discriminator: D of an official StyleGAN2-ADA pickle and the zoo's,
read by one code path as a frozen backbone (single vector, or Eq. 2's multi features)."""
from __future__ import annotations

import sys

import pytest
import torch

from paper_fixtures import write_network_pickle, write_stylegan_repo
from sqsp.config import preset
from sqsp.discriminator import DiscriminatorBackbone
from sqsp.evaluate import extract_features
from sqsp.generators.official import REPO_ENV
from sqsp.zoo import load_discriminator

MODULES = ("dnnlib", "torch_utils", "training", "training.networks")


@pytest.fixture
def official(tmp_path, monkeypatch):
    repo = write_stylegan_repo(tmp_path / "stylegan2-ada-pytorch")
    pkl = write_network_pickle(tmp_path / "checkpoints" / "network-snapshot-000100.pkl", repo)
    monkeypatch.delenv(REPO_ENV, raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the loader adds the checkout; undo it afterwards
    yield repo, pkl
    for m in MODULES:
        sys.modules.pop(m, None)


def test_official_discriminator_single_and_eq2_multi_features(official):
    repo, pkl = official
    D = load_discriminator(str(pkl), stylegan_repo=str(repo))
    assert type(D).__module__ == "training.networks" and not any(p.requires_grad for p in D.parameters())
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    single = extract_features(DiscriminatorBackbone(D, "single"), images, device="cpu")
    multi = extract_features(DiscriminatorBackbone(D, "multi"), images, device="cpu")
    assert single.shape == (6, 16)                  # b4.fc's output: the epilogue's width
    assert multi.shape == (6, 4 + 8 + 16 + 16)      # pooled b32 (16 px), b16 (8 px), b8 (4 px) outputs, then b4.fc
    assert torch.equal(multi[:, -16:], single)
    # the pieces are the blocks' outputs x of (x, img), on images mapped to [-1, 1]
    x = images.float() / 255 * 2 - 1
    with torch.no_grad():
        h, img = D.b32(None, x)
        first = h.mean(dim=(2, 3))
        h, img = D.b16(h, img)
    assert torch.allclose(multi[:, :4], first, atol=1e-5)
    assert torch.allclose(multi[:, 4:12], h.mean(dim=(2, 3)), atol=1e-5)
    assert D.b4.mbstd.group_size is None            # statistics over the whole batch, as the authors set it


def test_direct_use_of_an_official_discriminator_with_the_paper_probe(official, tmp_path):
    from test_data import write_cifar10
    from sqsp.train import train
    repo, pkl = official
    write_cifar10(tmp_path / "data", n_per_batch=8, n_test=10)
    cfg = preset("paper-cifar10", {"data_root": str(tmp_path / "data"), "generator": str(pkl), "stylegan_repo": str(repo),
                                   "method": "discriminator", "disc_features": "multi", "probe_epochs": 2,
                                   "device": "cpu"})
    assert (cfg.probe, cfg.probe_lr, cfg.probe_batch_size) == ("paper", 30.0, 256)
    m = train(cfg)
    assert m["done"] and m["feature_dim"] == 44 and 0 <= m["probe_acc"] <= 100 and 0 <= m["knn_acc"] <= 100
