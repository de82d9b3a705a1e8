"""The loss terms of the paper as pure functions of representation batches.

Each takes ``(N, D)`` tensors and returns a scalar tensor; nothing here knows
about models, so the tests check them against NumPy transcriptions of the formulas.
Computed in float32 whatever the autocast context: the variance hinge and the
covariance matrix lose too much in bf16.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

VAR_EPS = 1e-4  # Eq. 9 / VICReg: std = sqrt(var + eps), keeps the gradient finite at var = 0


def invariance_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. 5/11 s(·,·): mean squared error over batch and dimensions."""
    return F.mse_loss(a.float(), b.float())


def variance_loss(z: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """Eq. 9: mean over dimensions of max(0, γ − sqrt(Var(z_j) + ε)), unbiased variance."""
    z = z.float()
    std = torch.sqrt(z.var(dim=0) + VAR_EPS)
    return F.relu(gamma - std).mean()


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """Eq. 10: sum of squared off-diagonal covariance entries, divided by the dimension D."""
    z = z.float()
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = (z.T @ z) / (n - 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / d


def simsiam_loss(p1: torch.Tensor, z2: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """Symmetrised negative cosine similarity with stop-gradient on the targets (Chen & He, Eq. 2)."""
    def d(p, z):
        return -F.cosine_similarity(p.float(), z.detach().float(), dim=-1).mean()
    return 0.5 * d(p1, z2) + 0.5 * d(p2, z1)


def vicreg_terms(z1: torch.Tensor, z2: torch.Tensor, sides: str = "both") -> dict[str, torch.Tensor]:
    """Invariance between two batches plus var/cov summed over the chosen side(s).

    For the synthetic branch z1 is the student and z2 the squeezed teacher (Eq. 11);
    ``sides`` picks which of them the var/cov terms regularise. For the real branch of span
    (Eq. 12) both are student views and ``sides`` is always ``both``.
    """
    chosen = {"both": (z1, z2), "student": (z1,), "teacher": (z2,)}[sides]
    return {
        "sim": invariance_loss(z1, z2),
        "var": sum(variance_loss(z) for z in chosen),
        "cov": sum(covariance_loss(z) for z in chosen),
    }


def weighted(terms: dict[str, torch.Tensor], sim_weight: float, var_weight: float, cov_weight: float) -> torch.Tensor:
    """λ·sim + μ·var + ν·cov (Eq. 11/12)."""
    return sim_weight * terms["sim"] + var_weight * terms["var"] + cov_weight * terms["cov"]


def feature_std(z: torch.Tensor) -> torch.Tensor:
    """Mean per-dimension standard deviation, the quantity Eq. 9 hinges at γ = 1.

    The collapse signal for representations trained with an MSE target: the trivial
    solution of Sec. 4.1 (a constant output) drives it to 0 whatever the direction of the rows.
    """
    return z.float().std(dim=0).mean()


def normalized_std(z: torch.Tensor) -> torch.Tensor:
    """Mean per-dimension std of L2-normalised rows, times sqrt(D) (Chen & He's collapse
    signal, scaled so that rows spread over all dimensions give ~1 and one shared direction 0).
    Scale-free, so it is the signal for cosine losses (SimSiam) and for comparing runs."""
    z = F.normalize(z.float(), dim=1)
    return z.std(dim=0).mean() * z.shape[1] ** 0.5
