"""Per-sample augmentation draws its own parameters for every image; batch mode shares them."""
import pytest
import torch

from sqsp.augment import build_augment


def _params(aug):
    return {p.name: p.data for p in aug._params}


@pytest.mark.parametrize("preset", ["mocov2", "mocov2-noblur"])
def test_sample_granularity_gives_each_image_its_own_parameters(preset):
    torch.manual_seed(0)
    aug = build_augment(preset, 16, "sample")
    x = torch.rand(64, 3, 16, 16)
    y = aug(x)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    crop = _params(aug)["RandomResizedCrop_0"]["src"]
    assert len({tuple(b.flatten().tolist()) for b in crop}) > 48  # (nearly) all different; integer boxes at 16 px can coincide
    jitter = _params(aug)["ColorJitter_1"]
    assert 10 < int(jitter["batch_prob"].sum()) < 64  # p=0.8, drawn per image
    # the same image repeated gives different outputs
    same = aug(x[:1].repeat(8, 1, 1, 1))
    assert (same[0] - same[1:]).abs().flatten(1).max(1).values.min() > 0


@pytest.mark.parametrize("preset", ["mocov2", "mocov2-noblur"])
def test_batch_granularity_shares_parameters(preset):
    torch.manual_seed(0)
    aug = build_augment(preset, 16, "batch")
    x = torch.rand(1, 3, 16, 16).repeat(32, 1, 1, 1)
    y = aug(x)
    crop = _params(aug)["RandomResizedCrop_0"]["src"]
    assert len({tuple(b.flatten().tolist()) for b in crop}) == 1
    assert torch.allclose(y, y[:1].expand_as(y), atol=1e-6)  # identical inputs stay identical


def test_blur_only_in_mocov2():
    names = lambda a: [type(m).__name__ for m in a.children()]
    assert "RandomGaussianBlur" in names(build_augment("mocov2", 32))
    assert "RandomGaussianBlur" not in names(build_augment("mocov2-noblur", 32))


def test_bad_values_refused():
    with pytest.raises(ValueError, match="'simclr'.*allowed"):
        build_augment("simclr", 16)
    with pytest.raises(ValueError, match="granularity='pixel'"):
        build_augment("mocov2", 16, "pixel")
