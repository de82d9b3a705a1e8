"""The trained zoo shipped inside the package, so a cold clone loads it instead of training it.

A GAN that draws readable digits-m digits takes longer to train on 2 CPU cores than a cold
start of a study may spend (issue 24), so the zoo that ``sqsp/zoo.py``'s ``DEFAULT_RUNS``
make is shipped as package data in ``sqsp/zoo_data/``: the safetensors files, their JSON
sidecars and sample grids, and a manifest in the zoo's own format whose entries carry the
sha256 of every file and the ``recipe`` fingerprint of the run that made them, plus
``made_by`` (the runs' settings, the seed, the command). A build adopts a shipped run
instead of training it when the recipe it would train matches the shipped one exactly
(same settings, steps, seed, sample counts, ``BUILD_VERSION``, dataset version); files
are checked against the shipped sha256 before they are copied, and the zoo checks them
again on every load, as it does for files it trained itself. ``sqsp-zoo build --retrain``
trains instead; ``sqsp-zoo bundle`` (maintainers) writes a built zoo into the package.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from . import fid as fidlib
from .errors import ZooError
from .storage import atomic_output

BUNDLE_DIR = Path(__file__).parent / "zoo_data"


def read_bundle(bundle: Path = BUNDLE_DIR) -> dict[str, Any] | None:
    """The shipped manifest, or None when the package ships no zoo."""
    path = bundle / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else None


def files_of(entry: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(file name, sha256) of every file an entry or extractor record names; sample grids have no hash."""
    out = [(entry["file"], entry["sha256"])]
    for part in ("sidecar", "discriminator"):
        if entry.get(part):
            out.append((entry[part], entry.get(f"{part}_sha256")))
    if entry.get("samples"):
        out.append((entry["samples"], None))
    return out


def _copy_checked(bundle: Path, directory: Path, name: str, sha256: str | None) -> None:
    src = bundle / name
    if not src.is_file():
        raise ZooError(f"the shipped zoo {str(bundle)!r} lacks {name!r}, which its manifest names; reinstall sqsp "
                       "or train the zoo (`sqsp-zoo build --retrain`)")
    if sha256 is not None and fidlib.file_sha256(src) != sha256:
        raise ZooError(f"the shipped zoo file {str(src)!r} does not match the sha256 its manifest records "
                       f"({sha256}); refusing to use it. Reinstall sqsp or train the zoo (`sqsp-zoo build --retrain`)")
    with atomic_output(directory / name) as f:
        f.write(src.read_bytes())


def adopt_classifier(directory: Path, recipe: str, bundle: Path = BUNDLE_DIR) -> dict[str, Any] | None:
    """Copy the shipped classifier into ``directory`` if it was made by ``recipe``; its record, or None."""
    shipped = read_bundle(bundle)
    info = (shipped or {}).get("extractors", {}).get("classifier-digits-m")
    if info is None or info.get("recipe") != recipe:
        return None
    for name, sha in [(info["file"], info["sha256"]), (Path(info["file"]).with_suffix(".json").name, None)]:
        _copy_checked(bundle, directory, name, sha)
    return dict(info)


def adopt_run(directory: Path, run_name: str, recipe: str, classifier_sha256: str,
              bundle: Path = BUNDLE_DIR) -> dict[str, dict[str, Any]] | None:
    """Copy the shipped entries of run ``run_name`` into ``directory`` if they were made by
    ``recipe`` and measured with the classifier ``classifier_sha256``; their manifest entries, or None."""
    shipped = read_bundle(bundle)
    if shipped is None:
        return None
    mine = {n: e for n, e in shipped["entries"].items() if e.get("run") == run_name}
    if not mine or any(e.get("recipe") != recipe for e in mine.values()) or \
            any((e.get("fid") or {}).get("extractor_sha256") != classifier_sha256 for e in mine.values()):
        return None
    for e in mine.values():
        for name, sha in files_of(e):
            if not (directory / name).is_file() or (sha is not None and fidlib.file_sha256(directory / name) != sha):
                _copy_checked(bundle, directory, name, sha)
    return {n: {**e, "shipped": True} for n, e in mine.items()}


def write_bundle(directory: Path, m: dict[str, Any], bundle: Path = BUNDLE_DIR, *,
                 made_by: dict[str, Any]) -> dict[str, Any]:
    """Copy the built zoo at ``directory`` (``m``: its manifest, as zoo.read_manifest reads it; its
    classifier and entries) into ``bundle``."""
    if not m["entries"] or not m["extractors"]:
        raise FileNotFoundError(f"the zoo at {directory} has no entries or no classifier to ship; build it first")
    bundle.mkdir(parents=True, exist_ok=True)
    for old in bundle.iterdir():
        if old.is_file():
            old.unlink()
    names = {n for e in m["entries"].values() for n, _ in files_of(e)}
    for info in m["extractors"].values():
        names |= {info["file"], Path(info["file"]).with_suffix(".json").name}
    for n in sorted(names):
        shutil.copyfile(directory / n, bundle / n)
    entries = {k: {f: v for f, v in e.items() if f not in ("shipped",)} for k, e in m["entries"].items()}
    out = {**m, "entries": entries, "made_by": made_by}
    out.pop("build_seconds", None)
    (bundle / "manifest.json").write_text(json.dumps(out, indent=1, sort_keys=True))
    return out
