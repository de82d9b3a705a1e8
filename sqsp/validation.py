"""A validation split carved out of a labelled training split, for choosing between runs
without looking at the test split: stratified by class, with a fixed seed, and by source image
where a dataset holds several versions of one (``digits-m``: one scan on several backgrounds).
"""
from __future__ import annotations

import numpy as np
import torch

from .data import _check_split_args
from .digits import digits_m_scans
from .errors import UserError

VAL_SEED = 0
"""Fixed: the validation split does not depend on a trial's seed, so every trial of a study
(and every study on a data set) is selected on the same images."""


class SplitError(UserError, ValueError):
    """A validation split that the labelled training images cannot give."""


def split_groups(dataset: str, split: str) -> torch.Tensor | None:
    """Which images of a split are versions of one source and must stay on one side of a split:
    for ``digits-m`` the digit scan each image shows (on ``DIGITS_M_PATCHES`` backgrounds).
    None where every image is its own source (``digits``, CIFAR, STL-10, image folders)."""
    _check_split_args(dataset, split, 1)
    return digits_m_scans(split) if dataset == "digits-m" else None


def validation_split(labels: torch.Tensor, fraction: float, groups: torch.Tensor | None = None,
                     seed: int = VAL_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(fit, val)`` into a labelled split: ``val`` holds about ``fraction`` of it,
    stratified by class, drawn with ``seed``; ``fit`` the rest (the probe is fitted on it).

    With ``groups`` the split is by group: every image of a group lands on the same side, so no
    source is seen by the probe and validated on (one digit scan on two backgrounds would be).
    Each group must hold one class. Unlabelled images (-1) are never validated on: they stay in
    ``fit``, which the probes skip anyway. Stratification is scikit-learn's ``train_test_split``."""
    from sklearn.model_selection import train_test_split

    if not 0 < fraction < 1:
        raise SplitError(f"val_fraction={fraction!r} must be in (0, 1): the share of the labelled training images "
                         "held out for validation")
    y = labels.cpu().numpy()
    labelled = np.flatnonzero(y >= 0)
    source = labelled if groups is None else groups.cpu().numpy()[labelled]
    units, first = np.unique(source, return_index=True)
    unit_labels = y[labelled][first]
    if groups is not None:
        per_group = np.unique(np.stack([source, y[labelled]]), axis=1)[0]
        if len(per_group) != len(units):
            raise ValueError("validation_split: a group holds images of more than one class; "
                             "a stratified split by group needs one class per group")
    what = "images" if groups is None else "groups (scans)"
    try:
        _, val_units = train_test_split(units, test_size=fraction, stratify=unit_labels, random_state=seed)
    except ValueError as e:
        classes = len(np.unique(unit_labels))
        raise SplitError(f"val_fraction={fraction!r} cannot split {len(units)} labelled {what} of {classes} "
                         f"classes into a stratified validation split ({e}); choose a val_fraction that leaves "
                         f"at least one of each class on both sides, e.g. 0.1-0.3") from None
    is_val = np.zeros(len(y), dtype=bool)
    is_val[labelled[np.isin(source, val_units)]] = True
    return torch.from_numpy(np.flatnonzero(~is_val)), torch.from_numpy(np.flatnonzero(is_val))
