"""Sample-quality measures beside FID: does a generator draw its data's classes?

FID in the zoo classifier's feature space rewards colours and textures as much as shapes,
and a GAN can reach a low FID while drawing digits no one can read (issue 24). A teacher
that cannot tell the classes apart cannot teach them, so the zoo records, per entry:

- improved precision and recall (Kynkäänniemi et al. 2019): the share of generated
  samples inside the union of k-NN balls of the real features (precision), and of real
  samples inside the balls of the generated ones (recall); k = 3;
- density and coverage (Naeem et al. 2020): how many real balls contain a generated sample,
  on average, divided by k; and the share of real balls that contain one; k = 5;
- the classifier's mean confidence (max softmax) on generated samples and its class
  histogram (``largest_class``: the share of the most frequent class; 1/10 when balanced);
- for a conditional generator, the share of samples classified as the class drawn for;
- ``probe``: a linear probe from the generator's pooled block features (Eq. 4) to the
  classifier's labels of the same samples, scored on held-out samples.

The k-NN measures are hand-written on torch rather than taken from ``prdc`` (the D&C
authors' package): it computes with 8 joblib jobs on a shared 2-core machine, holds the
full fake-by-fake distance matrix (0.4 GB at 10,000 samples), prints to stdout and takes
one k for all four values; here distances are computed in chunks on the caller's threads.
``tests/test_quality.py`` checks them against the definitions written out in full.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

PR_K = 3   # Kynkäänniemi et al. 2019
DC_K = 5   # Naeem et al. 2020

# issue 24: what a zoo teacher must reach (zoo classifier, 10,000 samples, train split reference)
TARGETS = {"confidence": (">=", 0.80), "largest_class": ("<=", 0.15), "precision": (">=", 0.6),
           "recall": (">=", 0.5), "probe": (">=", 0.70)}
CONDITIONAL_TARGET = ("class_match", ">=", 0.85)


@dataclass(frozen=True)
class Quality:
    """The measures of one generator; ``class_match`` is NaN for an unconditional one."""
    precision: float
    recall: float
    density: float
    coverage: float
    confidence: float
    largest_class: float
    class_shares: tuple[float, ...]
    class_match: float
    probe: float
    n_samples: int
    n_reference: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["class_shares"] = list(self.class_shares)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def failures(q: dict[str, Any], conditional: bool) -> list[str]:
    """The targets of issue 24 that measures ``q`` (``Quality.to_dict()``) miss, e.g. ``['recall<0.5']``."""
    targets = dict(TARGETS)
    if conditional:
        targets[CONDITIONAL_TARGET[0]] = CONDITIONAL_TARGET[1:]
    out = []
    for key, (op, bound) in targets.items():
        v = q.get(key)
        ok = v is not None and (v >= bound if op == ">=" else v <= bound)
        if not ok:
            out.append(f"{key}{'<' if op == '>=' else '>'}{bound:g}")
    return out


# ---------------------------------------------------------------------------------------------
# k-NN manifold measures
# ---------------------------------------------------------------------------------------------
def _kth_neighbour_radii(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance of each row of ``x`` to its k-th nearest other row."""
    out = []
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i:i + chunk], x)
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])  # column 0 is the point itself
    return torch.cat(out)


def manifold_measures(real: torch.Tensor, fake: torch.Tensor, *, pr_k: int = PR_K, dc_k: int = DC_K,
                      chunk: int = 1024) -> dict[str, float]:
    """Precision, recall (k = ``pr_k``), density and coverage (k = ``dc_k``) of features ``fake``
    (M, D) against ``real`` (N, D); a point lies in a ball when its distance is <= the radius."""
    real, fake = real.double(), fake.double()
    for name, x, k in (("real", real, max(pr_k, dc_k)), ("fake", fake, pr_k)):
        if x.dim() != 2 or len(x) <= k:
            raise ValueError(f"{name} features must be (N, D) with N > k={k}; got shape {tuple(x.shape)}")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake features differ in dimension: {real.shape[1]} vs {fake.shape[1]}")
    r_pr, r_dc = _kth_neighbour_radii(real, pr_k, chunk), _kth_neighbour_radii(real, dc_k, chunk)
    f_pr = _kth_neighbour_radii(fake, pr_k, chunk)
    in_real_pr, in_real_dc = [], []
    recalled = torch.zeros(len(real), dtype=torch.bool)
    covered = torch.zeros(len(real), dtype=torch.bool)
    for i in range(0, len(fake), chunk):
        d = torch.cdist(fake[i:i + chunk], real)                        # (m, N)
        in_real_pr.append((d <= r_pr[None]).any(1))
        in_real_dc.append((d <= r_dc[None]).sum(1))
        recalled |= (d <= f_pr[i:i + chunk, None]).any(0)
        covered |= (d <= r_dc[None]).any(0)
    return {"precision": float(torch.cat(in_real_pr).double().mean()),
            "recall": float(recalled.double().mean()),
            "density": float(torch.cat(in_real_dc).double().mean() / dc_k),
            "coverage": float(covered.double().mean())}


# ---------------------------------------------------------------------------------------------
# what the classifier sees
# ---------------------------------------------------------------------------------------------
def classifier_measures(logits: torch.Tensor, drawn: torch.Tensor | None = None) -> dict[str, Any]:
    """Mean max-softmax, class histogram and its largest share; with ``drawn`` (the classes a
    conditional generator was asked for) the share classified as drawn."""
    p = F.softmax(logits.double(), dim=1)
    pred = p.argmax(1)
    shares = torch.bincount(pred, minlength=logits.shape[1]).double() / len(pred)
    return {"confidence": float(p.max(1).values.mean()), "class_shares": tuple(round(float(s), 4) for s in shares),
            "largest_class": float(shares.max()),
            "class_match": float((pred == drawn.to(pred.device)).double().mean()) if drawn is not None else math.nan}


def probe_accuracy(features: torch.Tensor, labels: torch.Tensor, *, train_share: float = 0.8, seed: int = 0) -> float:
    """Held-out accuracy (0-1) of a linear probe features -> labels (the fast probe of
    ``sqsp.evaluate``: standardised logistic regression), on the first ``train_share`` of the
    rows; the rows come from i.i.d. latents, so the split needs no shuffling."""
    from .evaluate import linear_probe_fast
    n = int(len(features) * train_share)
    if labels[:n].unique().numel() < 2:  # one class only (a collapsed generator): the constant guess's score
        return float((labels[n:] == labels[0]).double().mean())
    return linear_probe_fast(features[:n], labels[:n], features[n:], labels[n:], seed=seed) / 100.0


# ---------------------------------------------------------------------------------------------
# a generator, end to end
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def measure_generator(generator, classifier, real_features: torch.Tensor, *, n_samples: int = 10_000,
                      seed: int = 0, labels: torch.Tensor | None = None, batch_size: int = 500) -> Quality:
    """All measures of ``generator`` (a ``FeatureGenerator``) judged by ``classifier`` (a
    ``fid.SmallClassifier``: ``features`` are the FID extractor's, ``head`` its logits) against
    ``real_features`` (the classifier's features of the real reference split). ``labels``
    fixes a conditional generator's classes (default: uniform)."""
    if n_samples < 10:
        raise ValueError(f"n_samples={n_samples} is too few for the k-NN measures and the probe; use >= 10")
    device = next(generator.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    feats, logits, pooled, drawn = [], [], [], []
    for i in range(0, n_samples, batch_size):
        m = min(batch_size, n_samples - i)
        z, c = generator.sample_inputs(m, device, gen)
        if c is not None and labels is not None:
            c = F.one_hot(labels[i:i + m].to(device), generator.c_dim).float()
        out = generator(z, c)
        f = classifier.features(out.images.float().clamp(-1, 1))
        feats.append(f.float().cpu())
        logits.append(classifier.head(f).float().cpu())
        pooled.append(torch.cat([v.float().mean(dim=(2, 3)) for v in out.features.values()], 1).cpu())
        if c is not None:
            drawn.append(c.argmax(1).cpu())
    feats, logits = torch.cat(feats), torch.cat(logits)
    cls = classifier_measures(logits, torch.cat(drawn) if drawn else None)
    probe = probe_accuracy(torch.cat(pooled), logits.argmax(1), seed=seed)
    return Quality(**manifold_measures(real_features.float().cpu(), feats), **cls, probe=probe,
                   n_samples=n_samples, n_reference=len(real_features))
