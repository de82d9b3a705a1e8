"""Fréchet distance against closed forms, its numerical guards, and the extractors."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from sqsp import fid


def test_closed_form_two_gaussians():
    # Diagonal covariances commute, so Tr((S1 S2)^1/2) = sum sqrt(a_i b_i) and
    # FID = |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0
    assert fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, abs=1e-9)
    # a rotated, non-diagonal pair: FID is invariant under a common rotation
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    got = fid.frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, abs=1e-6)


def test_samples_from_two_gaussians_approach_the_closed_form():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200_000, 2)) * [1.0, 2.0]
    y = rng.normal(size=(200_000, 2)) * [3.0, 2.0] + [2.0, 0.0]
    r = fid.fid_from_features(x, y, extractor="identity", reference="y")
    assert r.value == pytest.approx(4 + (1 - 3) ** 2, rel=0.02)
    assert (r.extractor, r.n_samples, r.n_reference) == ("identity", 200_000, 200_000)


def test_identical_sets_give_zero():
    feats = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert fid.fid_from_features(feats, feats.clone(), extractor="x", reference="x").value == pytest.approx(0, abs=1e-6)


def test_agrees_with_the_matrix_square_root_of_the_reference_implementations():
    # pytorch-fid / clean-fid: Tr(sqrtm(S1 S2)) by scipy's Schur method, on well-conditioned covariances
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(400, 30)), rng.normal(size=(300, 30)) @ rng.normal(size=(30, 30)) + 0.5
    (m1, s1), (m2, s2) = fid.gaussian_stats(x), fid.gaussian_stats(y)
    reference = (m1 - m2) @ (m1 - m2) + np.trace(s1 + s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert fid.frechet_distance(m1, s1, m2, s2) == pytest.approx(reference, rel=1e-9)


def test_singular_covariances_are_exact(recwarn):
    # fewer samples than dimensions: rank-deficient covariances (a complex, ill-posed sqrtm);
    # the trace equals the nuclear norm of the centred features' cross product, scaled
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 40)), rng.normal(size=(7, 40))
    xc, yc = x - x.mean(0), y - y.mean(0)
    nuclear = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt(4 * 6)
    assert fid.trace_sqrt_product(*(fid.gaussian_stats(f)[1] for f in (x, y))) == pytest.approx(nuclear, rel=1e-9)
    # dead features (zero covariance), exactly, without a warning reaching the caller
    zero = np.zeros((4, 4))
    assert fid.frechet_distance(np.zeros(4), zero, np.ones(4), zero) == pytest.approx(4.0, abs=1e-12)
    half_dead = np.diag([1.0, 0.0])
    assert fid.frechet_distance(np.zeros(2), half_dead, np.zeros(2), 4 * half_dead) == pytest.approx(1.0, abs=1e-12)
    assert not recwarn.list


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="N >= 2"):
        fid.gaussian_stats(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="shape mismatch"):
        fid.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="not finite"):
        fid.frechet_distance(np.zeros(2), np.diag([1.0, np.nan]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="not positive semi-definite.*-1"):
        fid.frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


def test_classifier_extractor_round_trip_and_hash(tmp_path):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.arange(64) % 4
    model = fid.train_classifier(images, labels, num_classes=4, epochs=1, batch_size=32)
    sha = fid.save_classifier(model, tmp_path / "c.safetensors")
    ext = fid.load_classifier_extractor(tmp_path / "c.safetensors", name="classifier-test", expected_sha256=sha)
    feats = fid.image_features(ext, images)
    assert feats.shape == (64, 64) and torch.allclose(feats, model.features(fid.to_model_range(images)))
    # other resolutions are resized to the classifier's
    assert ext(torch.zeros(2, 3, 32, 32)).shape == (2, 64)
    with pytest.raises(ValueError, match="sha256"):
        fid.load_classifier_extractor(tmp_path / "c.safetensors", name="c", expected_sha256="0" * 64)


def test_inception_needs_weights_in_the_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    with pytest.raises(FileNotFoundError, match="does not download.*classifier"):
        fid.load_inception_extractor()

