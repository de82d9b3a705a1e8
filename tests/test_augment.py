"""Per-sample augmentation draws its own parameters for every image; batch mode shares them;
each step is the formula it claims (checked against kornia's and torchvision's reference ops)."""
import math

import pytest
import torch

from sqsp.augment import Augment, build_augment, crop_boxes, gaussian_blur, shift_hue


@pytest.mark.parametrize("preset", ["mocov2", "mocov2-noblur"])
@pytest.mark.parametrize("crop_min", [0.2, 1.0])
def test_sample_granularity_gives_each_image_its_own_parameters(preset, crop_min):
    torch.manual_seed(0)
    aug = build_augment(preset, 16, "sample", crop_min)
    x = torch.rand(64, 3, 16, 16)
    y = aug(x)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    same = aug(x[:1].repeat(64, 1, 1, 1))  # the same image repeated gives different outputs
    distinct = {tuple(v.flatten().tolist()) for v in same.round(decimals=4)}
    assert len(distinct) > 40  # ~10% of images draw no jitter, gray, blur or flip (0.2·0.8·0.5·0.5) with crop_min=1


@pytest.mark.parametrize("preset", ["mocov2", "mocov2-noblur", "crop-flip"])
def test_batch_granularity_shares_parameters(preset):
    torch.manual_seed(0)
    aug = build_augment(preset, 16, "batch")
    x = torch.rand(1, 3, 16, 16).repeat(32, 1, 1, 1)
    for _ in range(5):
        y = aug(x)
        assert torch.allclose(y, y[:1].expand_as(y), atol=1e-6)  # identical inputs stay identical


def test_each_step_happens_with_its_probability_per_image():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16).repeat(4000, 1, 1, 1)
    only = dict(crop_min=1.0, jitter_p=0.0, gray_p=0.0, blur_p=0.0, flip_p=0.0)
    gray = Augment(16, **{**only, "gray_p": 0.2})(x)
    is_gray = ((gray[:, 0] - gray[:, 1]).abs().amax((1, 2)) < 1e-6).float().mean()
    flipped = Augment(16, **{**only, "flip_p": 0.5})(x)
    is_flipped = (flipped - x).abs().amax((1, 2, 3)).gt(0).float().mean()
    jittered = Augment(16, **{**only, "jitter_p": 0.8})(x)
    is_jittered = (jittered - x).abs().amax((1, 2, 3)).gt(1e-6).float().mean()
    for share, p in ((is_gray, 0.2), (is_flipped, 0.5), (is_jittered, 0.8)):
        assert abs(float(share) - p) < 4 * math.sqrt(p * (1 - p) / 4000), (float(share), p)
    assert torch.equal(Augment(16, **only)(x), x)  # crop_min=1 keeps the whole image


def test_crop_boxes_follow_random_resized_crop():
    torch.manual_seed(0)
    w, h, left, top = crop_boxes(torch.rand(20000, 10, 4), 0.2)
    assert (w <= 1).all() and (h <= 1).all() and (left >= 0).all() and (top >= 0).all()
    assert (left + w <= 1 + 1e-6).all() and (top + h <= 1 + 1e-6).all()
    area, ratio = w * h, w / h
    assert area.min() >= 0.2 - 1e-6 and (ratio >= 3 / 4 - 1e-6).all() and (ratio <= 4 / 3 + 1e-6).all()
    # torchvision's loop, written out: the first of 10 candidates that fits (rejection leans to small areas)
    import random
    rng, ref = random.Random(0), []
    for _ in range(20000):
        for _ in range(10):
            a, r = rng.uniform(0.2, 1), math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            if math.sqrt(a * r) <= 1 and math.sqrt(a / r) <= 1:
                ref.append(a)
                break
        else:
            ref.append(1.0)
    assert float(area.mean()) == pytest.approx(sum(ref) / len(ref), abs=0.01)
    w1, h1, l1, t1 = crop_boxes(torch.rand(100, 10, 4), 1.0)
    assert torch.equal(w1, torch.ones(100)) and torch.equal(l1, torch.zeros(100))  # no candidate fits: the image


def test_a_crop_is_the_box_it_draws():
    """A crop of a linear ramp is the ramp over the box: its ends are the box's edges."""
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).contiguous()
    torch.manual_seed(3)
    aug = Augment(64, crop_min=0.2, jitter_p=0.0, gray_p=0.0, blur_p=0.0, flip_p=0.0)
    torch.manual_seed(3)
    w, h, left, _ = crop_boxes(torch.rand(1, 10, 4), 0.2)
    torch.manual_seed(3)
    out = aug(ramp)
    row = out[0, 0, 32]
    step = 1 / 63  # the ramp's value per input pixel
    assert row[0].item() == pytest.approx((left * 64 + w * 64 / 128 - 0.5).item() * step, abs=1e-3)
    assert (row[-1] - row[0]).item() == pytest.approx((w * 64 * (1 - 1 / 64)).item() * step, abs=1e-3)


def test_hue_and_blur_agree_with_the_reference_ops():
    import torchvision.transforms.v2.functional as TF
    from kornia.filters import gaussian_blur2d
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    turns = (torch.rand(8) - 0.5) * 0.2
    ours = shift_hue(x, turns)
    for i in range(8):
        assert torch.allclose(ours[i:i + 1], TF.adjust_hue(x[i:i + 1], float(turns[i])), atol=1e-5)
    sigma = torch.rand(8) * 1.9 + 0.1
    ref = gaussian_blur2d(x, (5, 5), sigma.view(-1, 1).expand(-1, 2).contiguous())
    assert torch.allclose(gaussian_blur(x, sigma, 5), ref, atol=1e-6)


def test_blur_only_in_mocov2():
    assert build_augment("mocov2", 32).blur_p == 0.5 and build_augment("mocov2", 32).blur_kernel == 3
    assert build_augment("mocov2-noblur", 32).blur_p == 0.0
    assert build_augment("mocov2", 224).blur_kernel == 23  # MoCo-v2's 23 px at 224 px


def test_bad_values_refused():
    with pytest.raises(ValueError, match="'simclr'.*allowed"):
        build_augment("simclr", 16)
    with pytest.raises(ValueError, match="granularity='pixel'"):
        build_augment("mocov2", 16, "pixel")
    with pytest.raises(ValueError, match="crop_min=0"):
        build_augment("mocov2", 16, crop_min=0)
