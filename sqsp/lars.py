"""LARS for the STL-10 linear probe, as the authors ran it (``--lars`` in stl10_eval_linear.sh).

Their eval_classification.py wraps SGD in apex's ``LARC(trust_coefficient=0.001, clip=False)``
(You et al. 2017, "Large Batch Training of Convolutional Networks"). Written here because
no library in requirements.txt has it: torch.optim has no LARS, and apex (CUDA-only, built
from source) is not something CI can install; timm's ``Lars`` (``trust_clip=False``) is the
closest maintained one, but timm would come in for these few lines alone. Before each plain SGD step, each parameter's
gradient becomes

    g ← (g + wd·w) · η·‖w‖ / (‖g‖ + wd·‖w‖ + ε)       where ‖w‖ > 0 and ‖g‖ > 0,

and is left as it is otherwise (apex skips such a tensor, weight decay included: the
zero-initialised bias of the probe takes its first step unscaled). The SGD optimizer's own
weight decay must be 0: LARC absorbs it, as apex does for the duration of its step. No host
synchronisation: the condition is applied with ``torch.where``.
"""
from __future__ import annotations

from typing import Iterable

import torch

TRUST = 1e-3  # the authors' trust_coefficient
EPS = 1e-8    # apex's default


@torch.no_grad()
def lars_scale_(params: Iterable[torch.Tensor], *, weight_decay: float = 0.0, trust: float = TRUST,
                eps: float = EPS) -> None:
    """Rescale the gradients of ``params`` in place (call between ``backward()`` and ``step()``)."""
    for p in params:
        if p.grad is None:
            continue
        w_norm, g_norm = p.norm(), p.grad.norm()
        ratio = trust * w_norm / (g_norm + weight_decay * w_norm + eps)
        scaled = (p.grad + weight_decay * p) * ratio
        p.grad.copy_(torch.where((w_norm > 0) & (g_norm > 0), scaled, p.grad))
