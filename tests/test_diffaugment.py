"""DiffAugment: per-sample, differentiable, reproducible from its generator, policies checked."""
import pytest
import torch

from sqsp.diffaugment import diff_augment, parse_policy


def test_policies_are_per_sample_differentiable_and_seeded():
    x = torch.rand(8, 3, 16, 16, requires_grad=True)
    pol = parse_policy("color,translation,cutout")
    a = diff_augment(x, pol, torch.Generator().manual_seed(3))
    b = diff_augment(x, pol, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, diff_augment(x, pol, torch.Generator().manual_seed(4)))
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradients reach the generator's images


def test_translation_moves_content_and_cutout_blanks_a_square():
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    moved = diff_augment(x, ("translation",), torch.Generator().manual_seed(0))
    peaks = moved.flatten(1).argmax(1)
    assert len(set(peaks.tolist())) > 5 and (moved.sum((1, 2, 3)) == 1).all()  # shifted by at most 2 px, kept
    cut = diff_augment(torch.ones(64, 1, 16, 16), ("cutout",), torch.Generator().manual_seed(0))
    zeros = (cut == 0).sum((1, 2, 3))
    assert (zeros > 0).all() and (zeros <= 64).all()  # an 8x8 square, clipped at the border


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="unknown part.*'rotate'.*allowed"):
        parse_policy("color,rotate")
