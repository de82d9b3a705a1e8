"""A folder of generator snapshots as the rows of a study, each with its FID (Fig. 6 at paper scale).

``studies/generators.py --generators 'runs/00000/network-snapshot-*.pkl'`` turns every file
the pattern matches into one row (its generator), and records with each trial the FID of
that generator: the one a user manifest records for the file (the zoo's manifest format,
``sqsp/zoo.py``; its sha256 is checked so a FID never describes another file), or one
computed here with Inception-v3 (``checkpoint_fid``; sqsp/tune/checkpoint_rows.py runs each as its own Ray
task). Rows are named ``<run folder>@<kimg>`` for official snapshots
(``network-snapshot-<kimg>.pkl``), so the plot joins the snapshots of one run in order.

Nothing here imports Ray.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .config import ConfigError

SNAPSHOT_RE = re.compile(r"network-snapshot-(\d+)$")
FID_SAMPLES = 50_000  # FID50k: what StyleGAN2-ADA and the paper report


@dataclass(frozen=True)
class Checkpoint:
    label: str   # the study row
    path: str    # absolute
    step: int    # kimg of an official snapshot, -1 when the name does not say


def find_checkpoints(pattern: str, base: str | os.PathLike) -> list[Checkpoint]:
    """The files ``pattern`` matches (relative to ``base``, the launch directory), by run
    folder and training step. Refuses a pattern that matches nothing."""
    full = os.path.join(os.fspath(base), os.path.expanduser(pattern))
    paths = sorted(p for p in glob.glob(full) if os.path.isfile(p))
    if not paths:
        raise ConfigError(f"--generators {pattern!r} matches no file (looked for {full})")

    def step(p: str) -> int:
        m = SNAPSHOT_RE.search(Path(p).stem)
        return int(m.group(1)) if m else -1

    paths.sort(key=lambda p: (os.path.dirname(p), step(p), p))
    labels = [f"{Path(p).parent.name}@{step(p)}" if step(p) >= 0 else Path(p).stem for p in paths]
    if len(set(labels)) < len(labels):  # e.g. two runs whose folders share a name: name rows by path
        common = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
        labels = [os.path.relpath(p, common) for p in paths]
    return [Checkpoint(label, os.path.abspath(p), step(p)) for label, p in zip(labels, paths)]


def recorded_fids(paths: Sequence[str], manifests: Sequence[str | os.PathLike] | None = None) -> dict[str, dict]:
    """FIDs that user manifests record for ``paths`` (matched by resolved file path), each
    entry's sha256 checked first: ``{path: entry}`` for the paths that have one."""
    from . import zoo
    by_path = {}
    for e in zoo.entries(manifests=manifests).values():
        if (e.get("fid") or {}).get("value") is not None:
            by_path[os.path.realpath(e["path"])] = e
    out = {}
    for p in paths:
        e = by_path.get(os.path.realpath(p))
        if e is not None:
            zoo.verify(e)
            out[p] = e
    return out


def info_from_entry(e: dict[str, Any], step: int) -> dict[str, Any]:
    """What a trial reports about its generator (the columns of Table 7 / Fig. 6), from a manifest entry."""
    from .zoo import quality_info
    fid = e["fid"]
    return {"generator_fid": float(fid["value"]), "generator_fid_extractor": str(fid.get("extractor", "")),
            "generator_fid_samples": int(fid.get("n_samples", -1)), "generator_arch": str(e.get("arch", "")),
            "generator_conditional": bool(e.get("conditional", False)), "generator_step": step,
            **quality_info(e)}


def checkpoint_fid(path: str, *, dataset: str, data_root: str | None, n_samples: int = FID_SAMPLES,
                   stylegan_repo: str | None = None, device: str = "auto", seed: int = 0) -> dict[str, Any]:
    """FID of generator ``path`` against the real train split of ``dataset`` (all of it), with
    torchvision's Inception-v3 from the local torch cache (never downloaded: a missing file is
    a FileNotFoundError naming it), as the flat values a trial reports (``info_from_entry``)."""
    import torch

    from . import fid as fidlib
    from .data import load_split
    from .zoo import load_generator
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)
    extractor = fidlib.load_inception_extractor(dev)
    generator = load_generator(path, device=dev, stylegan_repo=stylegan_repo)
    real = load_split(dataset, data_root, "train", generator.resolution)
    result = fidlib.fid_of_generator(generator, extractor, real.images, n_samples=n_samples,
                                     reference=f"{dataset}/train", seed=seed)
    return info_from_entry({"fid": result.to_dict(), "arch": generator.arch, "conditional": generator.conditional},
                           -1)
