"""The GAN zoo: named generators, built offline on the embedded dataset, resolved by name.

Studies sweep architectures, blocks and checkpoints of different quality (paper Fig. 6,
appendix Tables 6 and 7); here each of those is one string, ``TrainConfig.generator``:

- a zoo name, e.g. ``stylegan-digits-m`` (see ``python -m sqsp.zoo list``);
- ``random:<arch>[@<resolution>]``, e.g. ``random:stylegan@16``: untrained, for tests;
- a path to one of our checkpoints (``.safetensors`` + JSON sidecar, or ``.pt``);
- a path to an official StyleGAN2-ADA / StyleGAN3 ``.pkl`` (see ``generators/official.py``).

The embedded zoo (``python -m sqsp.zoo build``, a few minutes on 2 CPU cores) trains on
the digits train split at 16 px, 3 channels, deterministically from a seed:

============================== ======================================================
``stylegan-digits-m``            main architecture (StyleGAN2-like), final checkpoint
``stylegan-digits-m@<step>``     the same run along training (steps 160, 560, 1600, 4000,
                               8000), FIDs from poor to good, for Fig. 6 studies
``dcgan-digits-m``               plain conv DCGAN-like generator (other inductive bias)
``stylegan-digits-m-cond``       class-conditional StyleGAN2-like (appendix Table 7)
============================== ======================================================

(``stylegan-digits-m@8000``, ``dcgan-digits-m@800`` and ``stylegan-digits-m-cond@2000`` name the
same files as the plain names.) The package ships this zoo trained (``sqsp/zoo_bundle.py``): a
build copies it instead of training unless ``--retrain``. The runs train in parallel processes, one thread each (``--workers``, ``--threads``).
Entries record ``build_version`` and a ``recipe`` fingerprint of their settings; a build
retrains only runs whose entries are missing or whose recipe changed, and a zoo name
whose entry comes from an older ``BUILD_VERSION`` is rebuilt on first use.

Each entry records its FID with the extractor and sample counts it was computed with
(``sqsp.fid``; the zoo uses the ``classifier`` extractor, trained on the digits train
split and stored in the zoo as ``classifier-digits-m``), and ``references`` holds the FID of
the real test split against the real train split with the same extractor. A name that is
missing triggers the build on first use (under a file lock, so parallel trials build once).

Where things live: the zoo directory is ``$SQSP_ZOO_DIR`` (default ``~/.cache/sqsp/zoo``)
with ``manifest.json`` and, per checkpoint, ``<run>@<step>.safetensors`` + ``.json`` + ``.png``
(a grid of samples; rows are classes for the conditional generator). Every file is written to a temporary name and moved into place with
``os.replace``, and an entry enters the manifest (itself replaced atomically) only once
its files are complete, so an interrupted build leaves no half-written entry; it resumes
at the first incomplete run. Files are checked against the sha256 in the manifest before
they are loaded, and a mismatch is refused.

User manifests: list JSON files in ``$SQSP_ZOO_MANIFESTS`` (separated by ``os.pathsep``)
or pass ``manifests=[...]`` / ``--manifest PATH``. Same format as the zoo's
(``{"entries": {name: entry}}``); ``file`` is absolute or relative to the manifest, and
``sha256`` is required. For an official pickle set ``"format": "stylegan-pkl"`` and record
the FID its authors report, e.g.::

    {"entries": {"cifar10-ada": {"format": "stylegan-pkl", "file": "/ckpt/cifar10u-cifar-ada-best-fid.pkl",
     "sha256": "…", "dataset": "cifar10", "resolution": 32, "conditional": false,
     "fid": {"value": 2.92, "extractor": "inception-tf (reported)", "n_samples": 50000}}}}

Unpickling runs code: pickles are loaded only from a path the user named (a config
value or a user manifest), after the hash check when there is one; the zoo itself
never writes a pickle.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from . import cli, zoo_bundle
from . import fid as fidlib
from . import quality as qualitylib
from .config import ConfigError, is_zoo_name, parse_blocks, parse_generator
from .digits import DIGITS_M_VERSION
from .errors import UserError, ZooError  # noqa: F401  (ZooError: importers read it here too)
from .gan import Z_DIM, Discriminator, GANRun
from .generators import ARCHITECTURES, FeatureGenerator, build_architecture, load_checkpoint
from .generators.base import check_blocks
# the build, and the names it defines that importers read here (zoo.build, zoo.RESOLUTION, …)
from .zoo_build import (BUILD_VERSION, CHANNELS, CLASSIFIER, DATASET, DEFAULT_RUNS, RESOLUTION,  # noqa: F401
                        _QUALITY_HEADER, _QUALITY_KEYS, _quality_cells, build, read_manifest, zoo_dir,
                        zoo_names)

class UnknownGenerator(UserError, LookupError):
    """A generator spec that names nothing the zoo, the user manifests or the file system hold."""


# ---------------------------------------------------------------------------------------------
# locations and manifests
# ---------------------------------------------------------------------------------------------
def user_manifests(extra: Sequence[str | os.PathLike] | None = None) -> list[Path]:
    env = [p for p in os.environ.get("SQSP_ZOO_MANIFESTS", "").split(os.pathsep) if p]
    return [Path(p).expanduser() for p in [*env, *(extra or [])]]



def entries(zoo: str | os.PathLike | None = None,
            manifests: Sequence[str | os.PathLike] | None = None) -> dict[str, dict[str, Any]]:
    """All entries by name, the zoo's and the user manifests', each with ``path`` resolved
    and ``manifest`` naming where it came from. A name defined twice is an error."""
    out: dict[str, dict[str, Any]] = {}
    sources = [zoo_dir(zoo) / "manifest.json", *user_manifests(manifests)]
    for i, mpath in enumerate(sources):
        if i > 0 and not mpath.is_file():
            raise FileNotFoundError(f"user zoo manifest {str(mpath)!r} does not exist "
                                    "(from $SQSP_ZOO_MANIFESTS or --manifest)")
        for name, e in read_manifest(mpath)["entries"].items():
            if name in out:
                raise ZooError(f"zoo entry {name!r} is defined in both {out[name]['manifest']!r} and "
                                 f"{str(mpath)!r}; rename one of them")
            for key in ("file", "sha256"):
                if key not in e:
                    raise ZooError(f"zoo entry {name!r} in {str(mpath)!r} has no {key!r}; every entry needs "
                                     "'file' and 'sha256' (compute it with `sha256sum FILE`)")
            out[name] = {**e, "name": name, "manifest": str(mpath), "origin": "user" if i else "zoo",
                         "path": str((mpath.parent / Path(e["file"]).expanduser()).resolve())}
    return out


def verify(entry: dict[str, Any]) -> None:
    """Refuse a file whose sha256 differs from the manifest's (changed, truncated, or swapped)."""
    path = Path(entry["path"])
    if not path.is_file():
        raise FileNotFoundError(f"zoo entry {entry['name']!r}: file {str(path)!r} is missing "
                                f"(manifest {entry['manifest']!r})")
    checks = [(path, entry["sha256"])]
    for part in ("sidecar", "discriminator"):  # every file of the entry, not only the one asked for
        if entry.get(part):
            checks.append((path.parent / entry[part], entry.get(f"{part}_sha256")))
    for p, want in checks:
        got = fidlib.file_sha256(p) if p.is_file() else "(missing file)"
        if want is not None and got != want:
            raise ZooError(f"zoo entry {entry['name']!r}: {str(p)!r} has sha256 {got} but the manifest "
                             f"{entry['manifest']!r} records {want}; refusing to load a file that changed. "
                             "Rebuild it (`python -m sqsp.zoo build --force`) or fix the manifest.")


# ---------------------------------------------------------------------------------------------
# resolving a generator spec
# ---------------------------------------------------------------------------------------------
def load_generator(spec: str, *, device: str | torch.device = "cpu", stylegan_repo: str | None = None,
                   truncation: float = 1.0, zoo: str | os.PathLike | None = None,
                   manifests: Sequence[str | os.PathLike] | None = None, build_if_missing: bool = True,
                   seed: int = 0) -> FeatureGenerator:
    """The generator ``spec`` names (see the module docstring), on ``device``, frozen, in eval mode.

    A name of the embedded zoo that is not built yet triggers ``build()`` first.
    ``seed`` only matters for ``random:`` specs."""
    g = parse_generator(spec)
    if g.kind == "random":
        arch, res = g.arch, g.resolution or RESOLUTION
        if arch not in ARCHITECTURES:
            raise ConfigError(f"generator {spec!r}: unknown architecture {arch!r}; allowed: {sorted(ARCHITECTURES)}")
        return build_architecture(arch, resolution=res, channels=CHANNELS, z_dim=Z_DIM, seed=seed,
                                  truncation=truncation).to(device)
    if g.kind == "pickle":
        from .generators.official import load_official
        return load_official(spec, device=device, repo=stylegan_repo, truncation=truncation)
    if g.kind == "checkpoint":
        return load_checkpoint(spec, device=device, truncation=truncation)

    known = ensure(spec, zoo=zoo, manifests=manifests) if build_if_missing else entries(zoo, manifests)
    e = _verified_entry(spec, known)
    if _is_pickle(e):
        _refuse_zoo_pickle(e)
        from .generators.official import load_official
        return load_official(e["path"], device=device, repo=stylegan_repo, truncation=truncation)
    return load_checkpoint(e["path"], device=device, truncation=truncation)


def _verified_entry(spec: str, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The entry named ``spec``, its files checked against the manifest's sha256."""
    if spec not in known:
        raise UnknownGenerator(f"generator {spec!r} is not a zoo name, a 'random:<arch>[@<res>]' spec, or a "
                               f"checkpoint path; zoo names: {sorted(known) or '(none; run python -m sqsp.zoo build)'}")
    verify(known[spec])
    return known[spec]


def _is_pickle(entry: dict[str, Any]) -> bool:
    return entry.get("format", "sqsp") == "stylegan-pkl"


def _refuse_zoo_pickle(entry: dict[str, Any]) -> None:
    """Official pickles are unpickled only from a path the user named: a user manifest or a
    config value. sqsp writes the zoo's own manifest and never with a pickle in it, so one
    there was put by someone else, and the default smoke run must not unpickle it."""
    if entry.get("origin") != "user":
        raise ZooError(f"zoo entry {entry['name']!r} in the zoo's own manifest {entry['manifest']!r} names a pickle "
                       f"({entry.get('file')!r}); sqsp never writes pickles there, so refusing to unpickle it (that "
                       "runs code). List official pickles in a manifest of your own ($SQSP_ZOO_MANIFESTS or "
                       "--manifest) or name the .pkl path as the generator")


def check_generator(spec: str, *, blocks: str = "all", teacher_source: str = "features",
                    discriminator: bool = False, stylegan_repo: str | None = None,
                    zoo: str | os.PathLike | None = None,
                    manifests: Sequence[str | os.PathLike] | None = None) -> None:
    """Raise a UserError unless generator ``spec`` loads and has the blocks (``generator_blocks``)
    and, for ``teacher_source='w'``, the mapping network a config asks of it.

    What a study checks in its driver, once per distinct generator, before any trial starts.
    Cheap: zoo entries are hash-checked and their blocks read from the manifest; other
    generators of ours (random specs, our checkpoints) are built or loaded on the CPU (tensors
    and JSON, no code runs). An official pickle is only found and its authors' code located:
    unpickling it runs code and may take long, so its blocks are checked when a trial loads
    it (a missing block then fails that trial at once, without retries). An embedded zoo
    name that is not built yet is built first (``ensure``)."""
    pickle_entry = None
    if is_zoo_name(spec):
        known = ensure(spec, zoo=zoo, manifests=manifests)  # an embedded name is built first
        e = _verified_entry(spec, known)
        if discriminator and not e.get("discriminator"):
            have = sorted(n for n, x in known.items() if x.get("discriminator"))
            raise UnknownGenerator(f"generator {spec!r} has no discriminator in the zoo (only the embedded zoo keeps "
                                   f"them); entries with one: {have}")
        if _is_pickle(e):
            _refuse_zoo_pickle(e)
            pickle_entry = e
        elif e.get("blocks") and e.get("arch") in ARCHITECTURES:
            _check_blocks(spec, list(e["blocks"]), ARCHITECTURES[e["arch"]][1], blocks, teacher_source)
            return
    if pickle_entry is not None or parse_generator(spec).kind == "pickle":
        from .generators.official import resolve_repo
        path = Path(pickle_entry["path"] if pickle_entry else spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"generator {spec!r}: official StyleGAN pickle {str(path)!r} does not exist")
        resolve_repo(stylegan_repo)
        return
    try:
        g = load_generator(spec, zoo=zoo, manifests=manifests, build_if_missing=False)
    except (ValueError, KeyError, RuntimeError, json.JSONDecodeError) as e:  # a file of ours that does not load
        if isinstance(e, UserError):
            raise
        raise ZooError(f"generator {spec!r} does not load ({type(e).__name__}: {e})") from None
    _check_blocks(spec, g.block_names, g.mapping_name, blocks, teacher_source)


def _check_blocks(spec: str, have: list[str], mapping: str | None, blocks: str, teacher_source: str) -> None:
    have = sorted(have, key=lambda b: int(b[1:]) if b[1:].isdigit() else 0)  # manifests sort keys by name
    check_blocks(f"generator {spec!r}", have, parse_blocks(blocks), spec=blocks)
    if teacher_source == "w" and not mapping:
        raise ConfigError(f"teacher_source='w' needs a generator with a mapping network; {spec!r} has none "
                          "(use teacher_source='features')")


def ensure(specs: str | Sequence[str], *, zoo: str | os.PathLike | None = None,
           manifests: Sequence[str | os.PathLike] | None = None) -> dict[str, dict[str, Any]]:
    """Make sure the embedded entries ``specs`` are built and current; return all known entries.

    Only the GAN runs that yield them are trained (plus the FID classifier if missing), in
    parallel when there are several: a study on ``stylegan-digits-m`` should not wait for the
    DCGAN. Names that are not the embedded zoo's (user manifests, paths) are left alone."""
    specs = [specs] if isinstance(specs, str) else list(specs)
    known = entries(zoo, manifests)
    todo: dict[str, tuple[GANRun, str]] = {}
    for spec in specs:
        if not _is_embedded_name(spec):
            continue
        stale = spec in known and known[spec].get("format", "sqsp") == "sqsp" and \
            (known[spec].get("build_version"), known[spec].get("data_version")) != (BUILD_VERSION, DIGITS_M_VERSION)
        if spec not in known or stale:
            run = _run_of(spec)
            todo.setdefault(run.name, (run, "was built by an older version of sqsp" if stale else "is not in the zoo"))
    if not todo:
        return known
    for name, (_, why) in todo.items():
        print(f"sqsp.zoo: generator {name!r} {why} at {zoo_dir(zoo)}; copying it from the zoo sqsp ships "
              f"(or, if that was made by another recipe, training its GAN run once: tens of minutes)",
              file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    # no progress bars: a study's console is a line per event (its own, and this one per run)
    build(zoo, runs=tuple(run for run, _ in todo.values()), progress=False)
    now = entries(zoo, manifests)
    shipped = [n for n in todo if (now.get(n) or {}).get("shipped")]
    trained = [n for n in todo if n not in shipped]
    for what, names in (("copied the shipped", shipped), ("trained", trained)):
        if names:
            print(f"sqsp.zoo: {what} {', '.join(names)} in {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)
    return now


def describe(spec: str, *, zoo: str | os.PathLike | None = None,
             manifests: Sequence[str | os.PathLike] | None = None) -> dict[str, Any]:
    """What the manifest records of generator ``spec``, as flat values a run reports with its
    metrics (so a study's results carry the FID of the generator each trial used, with its
    extractor, even if the zoo is rebuilt later). Empty for specs that are not named entries."""
    e = entries(zoo, manifests).get(spec)
    if e is None:
        return {}
    fid = e.get("fid") or {}
    return {"generator_fid": float(fid["value"]) if fid.get("value") is not None else math.nan,
            "generator_fid_extractor": str(fid.get("extractor", "")), "generator_arch": str(e.get("arch", "")),
            "generator_conditional": bool(e.get("conditional", False)),
            "generator_step": int(e["step"]) if e.get("step") is not None else -1,
            **quality_info(e)}


def quality_info(e: dict[str, Any]) -> dict[str, float]:
    """An entry's ``sqsp.quality`` measures as flat ``generator_<measure>`` values (NaN where not measured)."""
    q = e.get("quality") or {}
    return {f"generator_{k}": float(q[k]) if q.get(k) is not None else math.nan for k in _QUALITY_KEYS}


def _run_of(name: str) -> GANRun:
    base = name.partition("@")[0]
    return next(r for r in DEFAULT_RUNS if r.name == base)


def _is_embedded_name(name: str) -> bool:
    """A name a default build yields: only those are worth minutes of training on first use
    (``stylegan-digits-m@999``, a typo, fails at once with the list of names instead)."""
    return name in zoo_names()


def load_discriminator(spec: str, *, device: str | torch.device = "cpu", zoo: str | os.PathLike | None = None,
                       manifests: Sequence[str | os.PathLike] | None = None,
                       stylegan_repo: str | None = None) -> nn.Module:
    """The discriminator trained alongside generator ``spec``, frozen, in eval mode: ``D`` of
    an official pickle (a path, or a user-manifest entry of format ``stylegan-pkl``), or the
    one an embedded zoo entry keeps (built on first use); zoo files are checked against the
    manifest's sha256 first."""
    from .generators.official import load_official_discriminator
    if parse_generator(spec).kind == "pickle":
        return load_official_discriminator(spec, device=device, repo=stylegan_repo)
    known = ensure(spec, zoo=zoo, manifests=manifests)
    e = known.get(spec)
    if e is not None and e.get("format") == "stylegan-pkl":
        verify(e)
        return load_official_discriminator(e["path"], device=device, repo=stylegan_repo)
    if e is None or not e.get("discriminator"):
        have = sorted(n for n, x in known.items() if x.get("discriminator") or x.get("format") == "stylegan-pkl")
        raise UnknownGenerator(f"generator {spec!r} has no discriminator (the embedded zoo's entries and official "
                               f"pickles have one); entries with one: {have}")
    verify(e)
    from safetensors.torch import load_file
    disc = Discriminator(**e["discriminator_kwargs"])
    disc.load_state_dict(load_file(str(Path(e["path"]).parent / e["discriminator"])))
    return disc.to(device).eval().requires_grad_(False)


def load_classifier(*, zoo: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
    """The zoo's FID classifier (a ``SmallClassifier`` trained on the zoo's dataset, logits from
    images in [-1, 1]), checked against the manifest, and its manifest record (``dataset``,
    ``test_accuracy``). Fig. 2 labels generated images with it (the paper uses a CIFAR-10 one)."""
    directory = zoo_dir(zoo)
    info = read_manifest(directory / "manifest.json")["extractors"].get(CLASSIFIER)
    if info is None:
        raise LookupError(f"the zoo at {directory} has no classifier {CLASSIFIER!r} yet; `python -m sqsp.zoo build` "
                          "trains it (a zoo generator's first use does too)")
    extractor = fidlib.load_classifier_extractor(directory / info["file"], name=CLASSIFIER,
                                                 expected_sha256=info["sha256"], device=device)
    return extractor.model, {"name": CLASSIFIER, **info}



# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def format_listing(zoo: str | os.PathLike | None = None, manifests: Sequence[str | os.PathLike] | None = None) -> str:
    directory = zoo_dir(zoo)
    lines = [f"zoo: {directory}"]
    m = read_manifest(directory / "manifest.json")
    shipped = None if m["entries"] else zoo_bundle.read_bundle()
    if shipped is not None:  # a cold zoo folder: what it will hold is the shipped zoo, copied there on first use
        lines += ["(no entries yet; the zoo sqsp ships, below, is copied there when a generator is first used, "
                  "or by `sqsp-zoo build`)", f"shipped: {zoo_bundle.BUNDLE_DIR}"]
        zoo = zoo_bundle.BUNDLE_DIR
        m = read_manifest(zoo / "manifest.json")
    for name, info in m["extractors"].items():
        lines.append(f"extractor {name}: {info['file']} (test accuracy {info.get('test_accuracy', float('nan')):.3f})")
    for name, r in m["references"].items():
        lines.append(f"reference {name}: FID[{r['extractor']}, n={r['n_samples']} vs {r['n_reference']}] = "
                     f"{r['value']:.2f}")
    rows = entries(zoo, manifests)
    if not rows:
        lines.append("(no entries; run `python -m sqsp.zoo build`)")
        return "\n".join(lines)
    fids = {(e.get("fid") or {}).get("extractor", "-") for e in rows.values()} - {"-"}
    lines.append(f"FID and quality: extractor {', '.join(sorted(fids)) or '-'}, reference {DATASET}/train; P/R "
                 f"precision/recall (k={qualitylib.PR_K}), D/C density/coverage (k={qualitylib.DC_K}), conf/top the "
                 "classifier's mean confidence and largest class share, match: classified as drawn, probe: pooled "
                 "block features -> class; bar: the zoo's sample-quality targets (conf>=0.8, top<=0.15, P>=0.6, R>=0.5, "
                 "probe>=0.7, match>=0.85)")
    lines.append(f"{'name':<28} {'arch':<8} {'cond':>4} {'step':>6} {'FID':>7}  {_QUALITY_HEADER}  {'bar':<26} file")
    for name, e in sorted(rows.items(), key=lambda kv: (kv[1].get("run", kv[0]), kv[1].get("step") or 0, kv[0])):
        f = e.get("fid") or {}
        fid_s = f"{f['value']:7.2f}" if "value" in f else f"{'-':>7}"
        bar = "-" if "misses" not in e else "meets" if not e["misses"] else "misses " + ",".join(
            _SHORT.get(k, k) for k in (m.split("<")[0].split(">")[0] for m in e["misses"]))
        lines.append(f"{name:<28} {e.get('arch', '?'):<8} {'yes' if e.get('conditional') else 'no':>4} "
                     f"{e.get('step', '-')!s:>6} {fid_s}  {_quality_cells(e)}  {bar:<26} "
                     f"{e['file'] if e.get('origin') == 'zoo' else e['path']}")
    return "\n".join(lines)


_SHORT = {"precision": "P", "recall": "R", "density": "D", "coverage": "C", "confidence": "conf",
          "largest_class": "top", "class_match": "match", "probe": "probe"}



def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=cli.prog("python -m sqsp.zoo"), description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default=None, help="zoo directory (default: $SQSP_ZOO_DIR or ~/.cache/sqsp/zoo)")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="train the embedded zoo (a few minutes on CPU)")
    b.add_argument("--steps", type=int, default=None, help="override every run's length (quick test builds)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--fid-samples", type=int, default=2000)
    b.add_argument("--quality-samples", type=int, default=10_000, help="samples for sqsp.quality's measures")
    b.add_argument("--force", action="store_true", help="retrain everything, even entries that exist")
    b.add_argument("--retrain", action="store_true",
                   help="train the runs the package ships a trained zoo for (sqsp/zoo_data) instead of copying them")
    b.add_argument("--threads", type=int, default=None, help="cores to use, one run per core (default: torch.get_num_threads())")
    b.add_argument("--workers", type=int, default=None, help="parallel training processes (default: one per thread)")
    bd = sub.add_parser("bundle", help="(maintainers) ship the built zoo inside the package, as sqsp/zoo_data")
    bd.add_argument("--command", default="sqsp-zoo build --retrain", help="the command that built it, for the record")
    lst = sub.add_parser("list", help="print the manifest(s)")
    lst.add_argument("--manifest", action="append", default=[], help="a user manifest (repeatable)")
    args = p.parse_args(argv)
    return cli.run(p.prog, lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    if args.cmd == "build":
        t0 = time.perf_counter()
        m = build(args.dir, steps=args.steps, seed=args.seed, fid_samples=args.fid_samples,
                  quality_samples=args.quality_samples, force=args.force, retrain=args.retrain,
                  threads=args.threads, workers=args.workers)
        print(format_listing(args.dir))
        print(f"built {len(m['entries'])} entries in {time.perf_counter() - t0:.1f} s")
    elif args.cmd == "bundle":
        import platform
        made_by = {"runs": [asdict(r) for r in DEFAULT_RUNS], "build_version": BUILD_VERSION,
                   "data_version": DIGITS_M_VERSION, "command": args.command, "torch": torch.__version__,
                   "machine": platform.processor() or platform.machine()}
        m = zoo_bundle.write_bundle(zoo_dir(args.dir), read_manifest(zoo_dir(args.dir) / "manifest.json"),
                                    made_by=made_by)
        size = sum(p.stat().st_size for p in zoo_bundle.BUNDLE_DIR.iterdir())
        print(f"shipped {len(m['entries'])} entries in {zoo_bundle.BUNDLE_DIR} ({size / 1e6:.1f} MB)")
    else:
        print(format_listing(args.dir, args.manifest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
