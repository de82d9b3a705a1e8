"""Evaluation: kNN, linear probes, MMD and CKA against hand-built cases and NumPy formulas."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sqsp.evaluate as ev
from sqsp.data import load_split
from sqsp.evaluate import (extract_features, knn_accuracy, linear_cka, linear_probe_fast, linear_probe_paper,
                           mmd2)


def clusters(n_per_class, num_classes=10, dim=32, noise=0.05, seed=0):
    """Points around fixed class centres (the same for every seed; the seed draws the noise)."""
    centers = F.normalize(torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(123)), dim=1)
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    g = torch.Generator().manual_seed(seed)
    feats = centers[labels] + noise * torch.randn(len(labels), dim, generator=g)
    return feats, labels


class FrozenPixels(nn.Module):
    """Eval-mode BN (a fixed per-channel affine map) then the flattened pixels: linearly
    separable enough on digits for a 2-epoch probe, and with BN statistics to keep frozen."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(3)
        self.bn.running_mean.fill_(0.3)
        self.bn.running_var.fill_(0.2)

    def forward(self, x):
        return self.bn(x).flatten(1)


class TinyConv(nn.Module):
    """A fixed random conv + BN + ReLU + 2x2 average pool: 4·width features."""

    def __init__(self, width=32, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.bn.running_mean.fill_(0.3)   # non-default stats, so a BN update would show
        self.bn.running_var.fill_(0.2)

    def forward(self, x):
        return F.adaptive_avg_pool2d(F.relu(self.bn(self.conv(x))), 2).flatten(1)


@pytest.fixture(scope="module")
def digits16():
    return load_split("digits", None, "train", 16), load_split("digits", None, "test", 16)


# ---------------------------------------------------------------------------------------------
# features

def test_extract_features_batches_eval_mode_and_restores_modes():
    net = TinyConv()
    net.train()
    net.bn.eval()                                           # a mixed-mode model must come back as it was
    stats = net.bn.running_mean.clone()
    images = torch.randint(0, 256, (37, 3, 8, 8), dtype=torch.uint8)
    feats = extract_features(net, images, device="cpu", batch_size=10)
    assert feats.dtype == torch.float32 and feats.shape == (37, 128) and feats.device.type == "cpu"
    assert net.training and not net.bn.training and net.conv.training
    assert torch.equal(net.bn.running_mean, stats)
    net.eval()
    with torch.no_grad():
        ref = net(images.float() / 255)
    assert torch.allclose(feats, ref, atol=1e-6)
    cl = extract_features(net, images, device="cpu", channels_last=True)
    assert torch.allclose(cl, ref, atol=1e-5)
    bf16 = extract_features(net, images, device="cpu", amp_dtype=torch.bfloat16)
    assert bf16.dtype == torch.float32 and torch.allclose(bf16, ref, atol=0.05)
    with pytest.raises(TypeError, match="uint8"):
        extract_features(net, images.float(), device="cpu")


# ---------------------------------------------------------------------------------------------
# kNN

def knn_numpy(train_f, train_y, test_f, num_classes, k, t):
    """The authors' knn_predict transcribed: one-hot labels weighted by exp(sim/t), summed."""
    a = train_f / np.linalg.norm(train_f, axis=1, keepdims=True)
    b = test_f / np.linalg.norm(test_f, axis=1, keepdims=True)
    sim = b @ a.T
    idx = np.argsort(-sim, axis=1)[:, :k]
    w = np.exp(np.take_along_axis(sim, idx, axis=1) / t)
    one_hot = np.eye(num_classes)[train_y[idx]]              # (B, K, C)
    return (one_hot * w[..., None]).sum(axis=1).argmax(axis=1)


def test_knn_separable_clusters_score_100_and_shuffled_labels_near_chance():
    train_f, train_y = clusters(30)
    test_f, test_y = clusters(10, seed=1)
    assert knn_accuracy(train_f, train_y, test_f, test_y, num_classes=10, k=20) == 100.0
    shuffled = train_y[torch.randperm(len(train_y), generator=torch.Generator().manual_seed(0))]
    assert knn_accuracy(train_f, shuffled, test_f, test_y, num_classes=10, k=20) < 30.0


def test_knn_k_is_clipped_and_unlabelled_bank_entries_dropped():
    train_f, train_y = clusters(3, num_classes=4, noise=1.0)
    test_f, test_y = clusters(5, num_classes=4, noise=1.0, seed=1)
    full = knn_accuracy(train_f, train_y, test_f, test_y, num_classes=4, k=len(train_y))
    assert knn_accuracy(train_f, train_y, test_f, test_y, num_classes=4, k=10**6) == full
    extra = torch.cat([train_f, 5 * test_f])                 # unlabelled copies of the queries
    extra_y = torch.cat([train_y, torch.full((len(test_y),), -1)])
    assert knn_accuracy(extra, extra_y, test_f, test_y, num_classes=4, k=5) == \
        knn_accuracy(train_f, train_y, test_f, test_y, num_classes=4, k=5)


def test_knn_votes_are_similarity_weighted():
    # one very similar neighbour of class 0 against two mediocre ones of class 1:
    # a plain majority says 1, exp(sim/0.1) weighting says 0.
    bank = torch.tensor([[1.0, 0.1], [0.5, 1.0], [0.5, -1.0]])
    query = torch.tensor([[1.0, 0.0]])
    labels = torch.tensor([0, 1, 1])
    assert knn_accuracy(bank, labels, query, torch.tensor([0]), num_classes=2, k=3, t=0.1) == 100.0
    assert knn_accuracy(bank, labels, query, torch.tensor([1]), num_classes=2, k=3, t=100.0) == 100.0


def test_knn_matches_numpy_transcription_across_chunks(monkeypatch):
    g = torch.Generator().manual_seed(3)
    train_f, test_f = torch.randn(120, 6, generator=g), torch.randn(50, 6, generator=g)
    train_y, test_y = torch.randint(0, 5, (120,), generator=g), torch.randint(0, 5, (50,), generator=g)
    monkeypatch.setattr(ev, "_SIM_ELEMENTS", 7 * 120)        # 7 queries per chunk
    for k, t in ((7, 0.1), (30, 0.5), (1, 0.07)):
        pred = knn_numpy(train_f.numpy(), train_y.numpy(), test_f.numpy(), 5, k, t)
        expected = 100.0 * np.mean(pred == test_y.numpy())
        assert knn_accuracy(train_f, train_y, test_f, test_y, num_classes=5, k=k, t=t) == pytest.approx(expected)


def test_knn_leaves_out_the_querys_own_group(monkeypatch):
    """The validation monitor: a split as both bank and queries, an entry of the query's own group
    (itself, or the same digit scan on another background) never votes. Checked against the numpy
    transcription on the bank without that group, query by query, across chunks."""
    g = torch.Generator().manual_seed(4)
    feats, labels = torch.randn(60, 5, generator=g), torch.randint(0, 3, (60,), generator=g)
    groups = torch.arange(60) // 2                       # pairs, as digits-m's two backgrounds per scan
    monkeypatch.setattr(ev, "_SIM_ELEMENTS", 4 * 60)     # 4 queries per chunk
    for k, t in ((5, 0.1), (58, 0.5)):
        pred = [knn_numpy(feats[groups != groups[i]].numpy(), labels[groups != groups[i]].numpy(),
                          feats[i:i + 1].numpy(), 3, k, t)[0] for i in range(60)]
        expected = 100.0 * np.mean(np.array(pred) == labels.numpy())
        got = knn_accuracy(feats, labels, feats, labels, num_classes=3, k=k, t=t, train_groups=groups, test_groups=groups)
        assert got == pytest.approx(expected)
    # without the groups each query finds itself (and its twin) first: perfect, and meaningless
    twins = torch.cat([feats[::2], feats[::2] + 1e-3])
    twin_y, twin_g = torch.cat([labels[::2], labels[::2]]), torch.cat([torch.arange(30), torch.arange(30)])
    assert knn_accuracy(twins, twin_y, twins, twin_y, num_classes=3, k=1) == 100.0
    assert knn_accuracy(twins, twin_y, twins, twin_y, num_classes=3, k=1, train_groups=twin_g, test_groups=twin_g) < 70
    with pytest.raises(ValueError, match="both"):
        knn_accuracy(feats, labels, feats, labels, num_classes=3, train_groups=groups)


# ---------------------------------------------------------------------------------------------
# linear probes

def test_fast_probe_separable_vs_random():
    train_f, train_y = clusters(30, noise=0.1)
    test_f, test_y = clusters(20, noise=0.1, seed=1)
    assert linear_probe_fast(train_f, train_y, test_f, test_y) >= 95.0
    g = torch.Generator().manual_seed(0)
    rnd_train, rnd_test = torch.randn(300, 32, generator=g), torch.randn(200, 32, generator=g)
    acc = linear_probe_fast(rnd_train, train_y, rnd_test, test_y)
    assert acc < 25.0
    assert linear_probe_fast(rnd_train, train_y, rnd_test, test_y, seed=0) == acc


def test_paper_probe_beats_chance_and_leaves_backbone_alone(digits16):
    train, test = digits16
    net = FrozenPixels()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng_before = torch.get_rng_state()
    acc = linear_probe_paper(net, train, test, device="cpu", epochs=2, lr=1.0, batch_size=128)
    assert acc > 45.0, acc                                    # chance is 10 %; ~65 % measured
    assert net.training and net.bn.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())   # BN stats frozen
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_paper_probe_is_deterministic_given_seed(digits16):
    train, test = digits16
    small = type(train)(train.images[:300], train.labels[:300], 10, "digits")
    kw = dict(device="cpu", epochs=1, lr=1.0, batch_size=64)
    torch.manual_seed(1)
    a = linear_probe_paper(FrozenPixels(), small, test, seed=5, **kw)
    torch.manual_seed(2)                                      # the caller's RNG state must not matter
    b = linear_probe_paper(FrozenPixels(), small, test, seed=5, **kw)
    assert a == b


def test_paper_probe_records_every_evaluation_the_authors_make_and_returns_the_last(digits16):
    """eval_classification.py evaluates after epoch 0, every 5th epoch and the last, and keeps the
    best (best_acc1): both numbers are recorded, the last is what the probe returns."""
    train, test = digits16
    small = type(train)(train.images[:300], train.labels[:300], 10, "digits")
    kw = dict(device="cpu", epochs=12, lr=1.0, batch_size=128, seed=3)
    evaluations: list = []
    last = linear_probe_paper(FrozenPixels(), small, test, evaluations=evaluations, **kw)
    assert [e for e, _ in evaluations] == [0, 4, 9, 11] and evaluations[-1][1] == last
    assert linear_probe_paper(FrozenPixels(), small, test, **kw) == last  # recording changes nothing
    assert max(a for _, a in evaluations) >= last and all(10 < a <= 100 for _, a in evaluations)


def test_paper_probe_on_random_labels_stays_near_chance(digits16):
    train, test = digits16
    shuffled = train.labels[torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(0))]
    train = type(train)(train.images, shuffled, train.num_classes, train.name)
    acc = linear_probe_paper(FrozenPixels(), train, test, device="cpu", epochs=1, lr=1.0, batch_size=128)
    assert acc < 22.0


def test_lars_rescales_each_gradient_by_its_trust_ratio():
    """apex LARC(trust_coefficient=0.001, clip=False), the authors' STL-10 probe, against its formula."""
    from sqsp.lars import lars_scale_
    g = torch.Generator().manual_seed(0)
    w = nn.Parameter(torch.randn(10, 7, generator=g, dtype=torch.float64))
    zero = nn.Parameter(torch.zeros(10, dtype=torch.float64))         # the probe's bias at its first step
    still = nn.Parameter(torch.randn(3, dtype=torch.float64))          # a zero gradient
    w.grad = torch.randn(10, 7, generator=g, dtype=torch.float64)
    zero.grad = torch.randn(10, generator=g, dtype=torch.float64)
    still.grad = torch.zeros(3, dtype=torch.float64)
    g_w, g_zero, wd = w.grad.numpy().copy(), zero.grad.clone(), 0.01
    lars_scale_([w, zero, still], weight_decay=wd, trust=1e-3)
    wn, gn = np.linalg.norm(w.detach().numpy()), np.linalg.norm(g_w)
    expected = (g_w + wd * w.detach().numpy()) * 1e-3 * wn / (gn + wd * wn + 1e-8)
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-12)
    assert torch.equal(zero.grad, g_zero) and torch.equal(still.grad, torch.zeros(3, dtype=torch.float64))
    # one SGD step (momentum 0, its own weight decay 0) then moves w by lr * the rescaled gradient
    before = w.detach().clone()
    torch.optim.SGD([w], lr=1.6).step()
    np.testing.assert_allclose((before - w.detach()).numpy(), 1.6 * expected, rtol=1e-9, atol=1e-15)


def test_paper_probe_under_lars_at_the_stl10_setting_learns(digits16):
    """The STL-10 script's probe: LARS, base lr 0.1 at batch 4096 (lr 1.6), 90 epochs; here one
    batch is the whole split, so 90 steps (the trust ratio 0.001 moves the weights slowly)."""
    train, test = digits16
    acc = linear_probe_paper(FrozenPixels(), train, test, device="cpu", epochs=90, lr=0.1, batch_size=4096,
                             optimizer="lars")
    assert acc > 45.0, acc  # chance is 10 %; 69 % measured
    with pytest.raises(ValueError, match="optimizer='adam' is not allowed"):
        linear_probe_paper(FrozenPixels(), train, test, device="cpu", epochs=1, lr=0.1, optimizer="adam")


# ---------------------------------------------------------------------------------------------
# MMD and CKA

def mmd2_numpy(x, y):
    d = x.shape[1]

    def k(a, b):
        return (a @ b.T / d + 1) ** 3
    m, n = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2 * k(x, y).mean())


def test_mmd2_same_vs_shifted_and_numpy_agreement(monkeypatch):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 16, generator=g, dtype=torch.float64)
    y = torch.randn(300, 16, generator=g, dtype=torch.float64)
    same = mmd2(x, y, standardise=False)
    shifted = mmd2(x, y + 0.5, standardise=False)
    assert abs(same) < 0.02 and shifted > 0.5, (same, shifted)
    assert same == pytest.approx(mmd2_numpy(x.numpy(), y.numpy()), rel=1e-9, abs=1e-12)
    assert shifted == pytest.approx(mmd2_numpy(x.numpy(), y.numpy() + 0.5), rel=1e-9)
    monkeypatch.setattr(ev, "_KERNEL_ELEMENTS", 1000)        # blocks of 2-3 rows
    assert mmd2(x, y + 0.5, standardise=False) == pytest.approx(shifted, rel=1e-12)
    with pytest.raises(ValueError, match="rbf"):
        mmd2(x, y, kernel="rbf")


def test_mmd2_standardised_is_the_formula_on_pooled_z_scores_and_scale_free():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 8, generator=g, dtype=torch.float64)
    y = torch.randn(200, 8, generator=g, dtype=torch.float64) * 1.5 + 0.3
    pooled = np.concatenate([x.numpy(), y.numpy()])
    mean, std = pooled.mean(0), pooled.std(0, ddof=1)
    expect = mmd2_numpy((x.numpy() - mean) / std, (y.numpy() - mean) / std)
    assert mmd2(x, y) == pytest.approx(expect, rel=1e-9)
    scale = torch.logspace(-3, 3, 8, dtype=torch.float64)   # a representation's dimensions on any scale
    assert mmd2(x * scale + 7, y * scale + 7) == pytest.approx(mmd2(x, y), rel=1e-9)
    raw = mmd2(x * 100, y * 100, standardise=False)          # without it, the scale decides the value
    assert abs(raw) > 1e4 * abs(mmd2(x, y, standardise=False))
    constant = torch.cat([x, torch.ones(300, 1, dtype=torch.float64)], 1)  # a dead unit carries no gap
    assert np.isfinite(mmd2(constant, torch.cat([y, torch.ones(200, 1, dtype=torch.float64)], 1)))


def test_mmd2_is_unbiased_around_zero():
    g = torch.Generator().manual_seed(1)
    values = [mmd2(torch.randn(40, 4, generator=g), torch.randn(40, 4, generator=g)) for _ in range(200)]
    assert min(values) < 0 < max(values)                       # not the biased (always > 0) estimate
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values))


def cka_numpy(x, y):
    x = x - x.mean(0)
    y = y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def test_linear_cka_properties_and_numpy_agreement():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 12, generator=g, dtype=torch.float64)
    y = x @ torch.randn(12, 20, generator=g, dtype=torch.float64) + 0.5 * torch.randn(200, 20, generator=g,
                                                                                      dtype=torch.float64)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64))
    value = linear_cka(x, y)
    assert linear_cka(x @ q * 3.7, y) == pytest.approx(value, abs=1e-10)
    assert linear_cka(x, y * 0.01 + 4.0) == pytest.approx(value, abs=1e-10)
    assert value == pytest.approx(cka_numpy(x.numpy(), y.numpy()), abs=1e-12)
    # not invariant to anisotropic scaling: one column blown up changes it
    scale = torch.ones(12, dtype=torch.float64)
    scale[0] = 30.0
    assert abs(linear_cka(x * scale, y) - value) > 0.05
    # independent representations score low
    assert linear_cka(x, torch.randn(200, 12, generator=g, dtype=torch.float64)) < 0.15
    assert linear_cka(x.float(), y.float()) == pytest.approx(value, abs=1e-6)    # float32 input is fine


def test_linear_cka_gram_form_for_wide_features():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(15, 40, generator=g), torch.randn(15, 50, generator=g)   # p·q > n²: Gram path
    y[:, :40] += x
    assert linear_cka(x, y) == pytest.approx(cka_numpy(x.double().numpy(), y.double().numpy()), abs=1e-12)
