"""The loss functions against independent NumPy transcriptions of the paper's formulas."""
import numpy as np
import pytest
import torch

from sqsp import losses


def np_variance(z, gamma=1.0, eps=1e-4):  # Eq. 9
    n = z.shape[0]
    var = ((z - z.mean(0)) ** 2).sum(0) / (n - 1)
    return np.mean(np.maximum(0.0, gamma - np.sqrt(var + eps)))


def np_covariance(z):  # Eq. 10
    n, d = z.shape
    c = z - z.mean(0)
    cov = c.T @ c / (n - 1)
    total = 0.0
    for i in range(d):
        for j in range(d):
            if i != j:
                total += cov[i, j] ** 2
    return total / d


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(32, 8)) * rng.uniform(0.1, 2.0, size=8)  # some dims below, some above γ=1
    b = a @ rng.normal(size=(8, 8)) * 0.3 + 1.0
    return a, b


def test_invariance_is_mse(batch):
    a, b = batch
    got = losses.invariance_loss(torch.tensor(a), torch.tensor(b)).item()
    assert got == pytest.approx(np.mean((a - b) ** 2), rel=1e-6)


def test_variance_matches_eq9(batch):
    a, b = batch
    for z in (a, b, a * 0.01):
        assert losses.variance_loss(torch.tensor(z)).item() == pytest.approx(np_variance(z), rel=1e-5)


def test_variance_is_zero_above_gamma_and_one_for_constant():
    assert losses.variance_loss(torch.randn(256, 4) * 5).item() == 0.0
    assert losses.variance_loss(torch.ones(16, 4)).item() == pytest.approx(1 - np.sqrt(1e-4), rel=1e-6)


def test_covariance_matches_eq10(batch):
    a, b = batch
    for z in (a, b):
        assert losses.covariance_loss(torch.tensor(z)).item() == pytest.approx(np_covariance(z), rel=1e-5)


def test_covariance_zero_for_uncorrelated_dimensions():
    # each dimension is non-zero on its own quarter of the batch with mean zero there:
    # the off-diagonal covariances are exactly -mean_i*mean_j*n/(n-1) = 0
    z = torch.zeros(64, 4, dtype=torch.float64)
    for j in range(4):
        z[16 * j:16 * (j + 1), j] = torch.tensor([1.0, -1.0] * 8, dtype=torch.float64)
    assert losses.covariance_loss(z).item() == pytest.approx(0.0, abs=1e-12)
    z[:, 1] = z[:, 0]  # two identical dimensions are penalised
    assert losses.covariance_loss(z).item() == pytest.approx(np_covariance(z.numpy()), rel=1e-6)
    assert losses.covariance_loss(z).item() > 0


def test_vicreg_terms_sides_and_weights(batch):
    a, b = (torch.tensor(x) for x in batch)
    both = losses.vicreg_terms(a, b, "both")
    stu = losses.vicreg_terms(a, b, "student")
    tea = losses.vicreg_terms(a, b, "teacher")
    assert both["var"].item() == pytest.approx(stu["var"].item() + tea["var"].item())
    assert both["cov"].item() == pytest.approx(np_covariance(batch[0]) + np_covariance(batch[1]), rel=1e-5)
    total = losses.weighted(both, 25.0, 25.0, 1.0).item()
    expected = 25 * np.mean((batch[0] - batch[1]) ** 2) + 25 * (np_variance(batch[0]) + np_variance(batch[1])) \
        + np_covariance(batch[0]) + np_covariance(batch[1])
    assert total == pytest.approx(expected, rel=1e-5)


def test_simsiam_loss_is_negative_cosine_with_stop_gradient():
    p1, z2, p2, z1 = (torch.randn(8, 5, requires_grad=True) for _ in range(4))
    loss = losses.simsiam_loss(p1, z2, p2, z1)
    def cos(p, z):
        p, z = p.detach().numpy(), z.detach().numpy()
        return np.mean(np.sum(p * z, 1) / np.linalg.norm(p, axis=1) / np.linalg.norm(z, axis=1))
    assert loss.item() == pytest.approx(-0.5 * cos(p1, z2) - 0.5 * cos(p2, z1), rel=1e-5)
    loss.backward()
    assert z1.grad is None and z2.grad is None and p1.grad is not None


def test_collapse_signals_separate_collapse_from_spread():
    healthy = torch.randn(256, 64)
    constant = torch.ones(256, 64) + 1e-4 * torch.randn(256, 64)
    tiny = 1e-3 * torch.randn(256, 64)  # collapsed in scale, not in direction
    assert losses.feature_std(healthy).item() == pytest.approx(1.0, abs=0.05)
    assert losses.feature_std(constant).item() < 1e-3 and losses.feature_std(tiny).item() < 2e-3
    assert losses.normalized_std(healthy).item() > 0.8
    assert losses.normalized_std(constant).item() < 0.01
    assert losses.normalized_std(tiny).item() > 0.8  # why the scale-dependent signal is needed for MSE
