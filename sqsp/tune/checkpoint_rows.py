"""A study's rows as a folder of generator checkpoints (``--generators GLOB``), each with its FID.

The FID is the one a manifest records for the file (``--manifest``), else computed in a Ray
task per checkpoint, all at once, each on one GPU where the cluster has GPUs
(``checkpoint_info``; sqsp/checkpoints.py does the work and imports no Ray).
"""
from __future__ import annotations

import os
import sys
from typing import Any

import ray

from ..checkpoints import Checkpoint, checkpoint_fid, find_checkpoints, info_from_entry, recorded_fids
from ..config import ConfigError, TrainConfig


def checkpoint_rows(study, pattern: str | None) -> list[Checkpoint]:
    """The checkpoints ``--generators`` names, one row each ([] without the flag)."""
    if pattern is None:
        return []
    if not study.checkpoint_rows:
        raise ConfigError(f"study {study.name!r} does not compare generators; --generators is for "
                          "studies/generators.py")
    return find_checkpoints(pattern, os.getcwd())


def inception_available_here() -> None:
    from ..fid import inception_weights_path
    path = inception_weights_path()
    if not path.is_file():
        raise ConfigError(
            f"computing a checkpoint's FID needs torchvision's Inception-v3 weights at {path} (the torch hub "
            "cache, $TORCH_HOME), and they are not there; sqsp does not download them. Copy the file there from a "
            "machine with internet (python -c \"import torchvision; torchvision.models.inception_v3(weights="
            "'IMAGENET1K_V1')\"), or record each checkpoint's FID in a manifest (--manifest, format in sqsp/zoo.py)")


def checkpoint_info(checkpoints: list[Checkpoint], recorded: dict[str, dict], config: TrainConfig,
                    fid_samples: int) -> dict[str, dict[str, Any]]:
    """{row: what its trials report about the generator}: the recorded FID, else one computed
    by a Ray task per checkpoint (all at once; each on one GPU where the cluster has GPUs)."""
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    task = ray.remote(num_cpus=1, num_gpus=gpus)(checkpoint_fid)
    todo = [c for c in checkpoints if c.path not in recorded]
    if todo:
        print(f"[sqsp] computing the FID of {len(todo)} checkpoint(s) ({fid_samples} samples each, "
              f"{'one GPU' if gpus else 'CPU'} per task)", file=sys.stderr)
    refs = {c.path: task.remote(c.path, dataset=config.dataset, data_root=config.data_root, n_samples=fid_samples,
                                stylegan_repo=config.stylegan_repo) for c in todo}
    out = {}
    for c in checkpoints:
        if c.path in recorded:
            out[c.label] = info_from_entry(recorded[c.path], c.step)
            continue
        try:
            info = ray.get(refs[c.path])
        except Exception as e:  # a RayTaskError wrapping what the task raised
            cause = getattr(e, "cause", None) or e
            raise ConfigError(f"FID of {c.path}: {type(cause).__name__}: {cause}") from None
        out[c.label] = {**info, "generator_step": c.step}
    return out




def recorded_or_computable(checkpoints: list[Checkpoint], manifests, *, local: bool) -> dict[str, dict]:
    """The FIDs the manifests record for ``checkpoints``; on a local Ray, refuses (before any
    trial) to compute the others without Inception's weights on this machine."""
    recorded = recorded_fids([c.path for c in checkpoints], manifests)
    if local and len(recorded) < len(checkpoints):
        inception_available_here()
    return recorded
