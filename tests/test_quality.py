"""The sample-quality measures against their definitions, written out point by point."""
import math

import numpy as np
import pytest
import torch

from sqsp import quality


def _brute(real: np.ndarray, fake: np.ndarray, pr_k: int, dc_k: int) -> dict[str, float]:
    def dist(a, b):
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))

    def radius(points, i, k):  # distance to the k-th nearest other point
        return sorted(dist(points[i], points[j]) for j in range(len(points)) if j != i)[k - 1]

    r_pr = [radius(real, i, pr_k) for i in range(len(real))]
    r_dc = [radius(real, i, dc_k) for i in range(len(real))]
    f_pr = [radius(fake, j, pr_k) for j in range(len(fake))]
    precision = np.mean([any(dist(f, r) <= r_pr[i] for i, r in enumerate(real)) for f in fake])
    recall = np.mean([any(dist(r, f) <= f_pr[j] for j, f in enumerate(fake)) for r in real])
    density = np.mean([sum(dist(f, r) <= r_dc[i] for i, r in enumerate(real)) for f in fake]) / dc_k
    coverage = np.mean([min(dist(r, f) for f in fake) <= r_dc[i] for i, r in enumerate(real)])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("shift", [0.0, 0.7, 3.0])
def test_manifold_measures_match_their_definitions(shift):
    g = np.random.default_rng(1)
    real = g.normal(size=(40, 3))
    fake = g.normal(size=(55, 3)) * 1.3 + shift
    want = _brute(real, fake, 3, 5)
    got = quality.manifold_measures(torch.tensor(real), torch.tensor(fake), chunk=7)  # chunks cross the sets
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    if shift == 3.0:  # far apart: nothing of one set falls in the other's balls
        assert got["precision"] < 0.2 and got["coverage"] < 0.2


def test_identical_sets_score_full_precision_and_recall():
    x = torch.randn(60, 4, generator=torch.Generator().manual_seed(0))
    got = quality.manifold_measures(x, x.clone())
    assert got["precision"] == 1.0 and got["recall"] == 1.0 and got["coverage"] == 1.0


def test_classifier_measures():
    logits = torch.tensor([[4.0, 0, 0], [0, 4.0, 0], [0, 4.0, 0], [0, 0, 0.1]])
    m = quality.classifier_measures(logits, drawn=torch.tensor([0, 1, 2, 2]))
    p = torch.softmax(logits.double(), 1).max(1).values.mean().item()
    assert m["confidence"] == pytest.approx(p)
    assert m["class_shares"] == (0.25, 0.5, 0.25) and m["largest_class"] == 0.5
    assert m["class_match"] == 0.75
    assert math.isnan(quality.classifier_measures(logits)["class_match"])


def test_probe_separates_informative_from_noise_features():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(3, (600,), generator=g)
    informative = torch.nn.functional.one_hot(labels, 3).double() * 3 + torch.randn(600, 3, generator=g, dtype=torch.float64)
    assert quality.probe_accuracy(informative, labels) > 0.9
    assert quality.probe_accuracy(torch.randn(600, 3, generator=g, dtype=torch.float64), labels) < 0.55


def test_failures_name_the_missed_targets():
    q = {"confidence": 0.9, "largest_class": 0.2, "precision": 0.7, "recall": 0.6, "probe": 0.8, "class_match": None}
    assert quality.failures(q, conditional=False) == ["largest_class>0.15"]
    assert quality.failures(q, conditional=True) == ["largest_class>0.15", "class_match<0.85"]


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="N > k"):
        quality.manifold_measures(torch.randn(4, 2), torch.randn(20, 2))
    with pytest.raises(ValueError, match="dimension"):
        quality.manifold_measures(torch.randn(20, 2), torch.randn(20, 3))
