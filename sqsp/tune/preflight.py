"""Pre-run checks: what would fail every trial is refused in the driver, before any trial starts.

Checked once per distinct value: each data root's layout, each generator (zoo entries built
if missing, since 18 trials must not all build them, and hash-checked; the blocks and the
mapping network the configs ask for), and the devices and GPUs the trials ask for. Rows this
machine cannot run at all (``sqsp.train.unavailable``: a file sqsp never downloads, such as
LPIPS's ImageNet trunk) are not started: they become ``skipped`` rows that say what they need
(``skipped_rows``), and the other rows run. Once Ray runs: a trial larger than every node is
refused (``check_resources``), and with ``--address`` a Ray task on every node checks that the
trials' paths exist there too (``check_paths_on_cluster``); an address where no Ray listens is
refused before ``ray.init`` would wait for it (``check_reachable``).
"""
from __future__ import annotations

import math
import os
import socket
import sys

import ray

from ..config import ConfigError, TrainConfig, is_zoo_name, parse_generator
from ..methods import METHODS


def check_run_options(cpus: float, gpus: float, max_failures: int, max_concurrent: int | None) -> None:
    if not cpus > 0:
        raise ConfigError(f"--cpus-per-trial {cpus!r} must be > 0 (fractions share a core)")
    if not gpus >= 0:
        raise ConfigError(f"--gpus-per-trial {gpus!r} must be >= 0 (fractions share a GPU)")
    if max_failures < 0:
        raise ConfigError(f"--max-failures {max_failures!r} must be >= 0")
    if max_concurrent is not None and max_concurrent < 1:
        raise ConfigError(f"--max-concurrent {max_concurrent!r} must be >= 1")


def skipped_rows(study, trials: list[tuple[str | None, TrainConfig]]) -> dict[str, str]:
    """Rows this machine cannot run, with what they need (``sqsp.train.unavailable``): they are
    recorded as skipped while the other rows run. Checked in the driver, before Ray starts, so
    no trial fails for a missing file. A study without named rows cannot leave trials out, so
    there the first such trial is a ConfigError."""
    from ..train import unavailable
    out: dict[str, str] = {}
    for row, cfg in trials:
        why = unavailable(cfg)
        if why is None or row in out:
            continue
        if row is None or study.rows is None:  # a grid's or a searcher's trials are not left out
            raise ConfigError(f"study {study.name!r}: a trial cannot run on this machine: {why}")
        out[row] = why
    if out:
        print(f"[sqsp] skipping row(s) {sorted(out)}: {'; '.join(sorted(set(out.values())))}", file=sys.stderr)
    return out


def preflight(configs: list[TrainConfig]) -> None:
    """Raise a UserError if a trial could not run, checking each distinct data root and
    generator once: the data layout (``data.check_layout``), then the generator (zoo entries
    built if missing, hash-checked; blocks and mapping network present; ``zoo.check_generator``).
    Without this, every trial found the same error, was retried, and the study exited 0."""
    from ..data import SPLITS, check_layout
    needed: dict[tuple[str, str | None], set[str]] = {}
    for c in configs:  # the pretraining dataset, and the datasets only probed at the end (transfer_datasets)
        needed.setdefault((c.dataset, c.data_root), set()).update(SPLITS)
        for t in c.transfer_targets:
            needed.setdefault((t, c.data_root), set()).update(("train", "test"))
    for (dataset, root), splits in sorted(needed.items(), key=str):
        check_layout(dataset, root, [s for s in SPLITS if s in splits])
    used = [c for c in configs if c.uses_generator]
    prepare_generators(used)
    from .. import zoo
    seen = set()
    for c in used:
        direct = METHODS[c.method].reads_discriminator  # not the generator's blocks or w
        source = c.synthetic_target
        key = (c.generator, "all" if direct else c.generator_blocks, source, direct, c.stylegan_repo)
        if key not in seen:
            seen.add(key)
            zoo.check_generator(key[0], blocks=key[1], teacher_source=key[2], discriminator=direct,
                                stylegan_repo=c.stylegan_repo)


def prepare_generators(configs: list[TrainConfig]) -> None:
    """Make sure the zoo entries the trials use exist, once, in the driver, before any trial
    runs (missing runs train in parallel), and refuse a generator name nothing knows or a
    checkpoint path that names no file here."""
    specs = sorted({c.generator for c in configs if c.uses_generator})
    missing = [s for s in specs if parse_generator(s).is_file and not os.path.isfile(s)]
    if missing:
        raise ConfigError(f"generator checkpoint(s) {missing} do not exist (relative paths are taken from the "
                          f"directory the study was started in, {os.getcwd()})")
    names = [s for s in specs if is_zoo_name(s)]
    if not names:
        return  # untrained generators need nothing
    from .. import zoo
    _refuse_other_datasets(configs, {n: zoo.DATASET for n in names if n in zoo.zoo_names()})  # before a build
    known = zoo.ensure(names)
    unknown = [s for s in names if s not in known]
    if unknown:
        raise ConfigError(f"generator(s) {unknown} are not zoo names, 'random:<arch>[@<res>]' specs or "
                          f"checkpoint paths; zoo names: {sorted(known)}")
    _refuse_other_datasets(configs, {n: known[n].get("dataset") for n in names})


def _refuse_other_datasets(configs: list[TrainConfig], trained_on: dict[str, str | None]) -> None:
    """A named generator trained on another dataset than a trial on real data learns from (the
    embedded zoo's digits GANs under a paper preset) is a mistake, not a comparison."""
    for c in configs:
        data = trained_on.get(c.generator)
        if c.uses_generator and c.data_root is not None and data and data != c.dataset:
            raise ConfigError(
                f"generator {c.generator!r} was trained on {data!r}, but the trials learn from {c.dataset!r}; "
                "name a generator of that dataset (--set generator=PATH), or for studies/generators.py a folder of "
                "them (--generators 'runs/00000/network-snapshot-*.pkl')")


def check_devices(configs: list[TrainConfig], *, local: bool, gpus_per_trial: float) -> None:
    """Refuse GPUs or a ``device`` no trial would have. Ray hides the GPUs from a trial that asks for
    none and numbers a trial's own GPUs from cuda:0; on a local Ray, this machine's devices
    are the trials' devices."""
    import torch
    if local and gpus_per_trial > 0 and torch.cuda.device_count() < math.ceil(gpus_per_trial):
        raise ConfigError(f"--gpus-per-trial {gpus_per_trial:g}, but this machine has {torch.cuda.device_count()} "
                          "CUDA GPU(s), so no trial could start; use --gpus-per-trial 0 (or --address to run on a "
                          "cluster with GPUs)")
    for device in sorted({c.device for c in configs}):
        if device.startswith("cuda"):
            if gpus_per_trial <= 0:
                raise ConfigError(f"device={device!r} needs --gpus-per-trial > 0: Ray hides the GPUs from trials that "
                                  "ask for none (device='auto' takes a GPU where a trial has one)")
            if device not in ("cuda", "cuda:0"):
                raise ConfigError(f"device={device!r}: Ray gives each trial its own GPU(s), numbered from cuda:0 "
                                  "inside the trial; use device='cuda' or 'auto'")
            if local and not torch.cuda.is_available():
                raise ConfigError(f"device={device!r}, but CUDA is not available on this machine; use device='auto' "
                                  "or 'cpu' (or --address to run on a cluster with GPUs)")
        if device == "mps" and local and not torch.backends.mps.is_available():
            raise ConfigError("device='mps', but MPS is not available on this machine; use device='auto' or 'cpu'")


def check_resources(cpus: float, gpus: float, *, strict: bool) -> None:
    """Refuse (``strict``: a local Ray) or warn about a trial larger than any node of the
    cluster: Tune would keep it pending forever. A cluster may grow (an autoscaler), hence
    only a warning there."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
        return
    most = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)), default={})
    where = "this machine's Ray" if strict else "the Ray cluster"
    msg = (f"--cpus-per-trial {cpus:g} --gpus-per-trial {gpus:g}: no node of {where} has that much (the largest "
           f"has {most.get('CPU', 0):g} CPUs, {most.get('GPU', 0):g} GPUs), so no trial could start")
    if strict:
        raise ConfigError(msg)
    print(f"[sqsp] warning: {msg} until a node that large joins the cluster", file=sys.stderr)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse an ``--address`` where no Ray cluster answers, in bounded time: ``ray.init``
    waits for a dead one for many minutes (measured: still waiting after 5), and for one that
    accepts connections but never speaks Ray's protocol just as long, ignoring SIGTERM. So the
    address must accept a TCP connection and complete gRPC's HTTP/2 handshake (what the GCS
    and the Ray Client server both speak; ``grpcio`` is Ray's own dependency) within
    ``timeout`` seconds each. ``auto`` is resolved as ``ray.init`` does (RAY_ADDRESS, then
    Ray's "current cluster" file)."""
    target = address
    if address == "auto":
        from ray._private import services
        try:
            target = services.canonicalize_bootstrap_address(address)
        except ConnectionError as e:
            raise ConfigError(f"--address auto: {e}") from None
        except Exception:  # noqa: BLE001 -- a private API of Ray: if it changed, let ray.init decide
            return
    host, _, port = target.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected 'auto', 'host:port' or 'ray://host:port'")
    hint = "start one (ray start --head) or drop --address to run on a private local Ray"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ConfigError(f"--address {address!r}: no Ray cluster answers at {host}:{port} ({e.strerror or e}); "
                          f"{hint}") from None
    import grpc
    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise ConfigError(f"--address {address!r}: {host}:{port} accepts connections but does not answer as a Ray "
                          f"cluster within {timeout:g} s; {hint}") from None
    finally:
        channel.close()


# paths on a cluster: trials run on other nodes, where the driver's paths may name nothing
def trial_paths(configs: list[TrainConfig]) -> dict[str, str]:
    """Every file or folder the trials read, as {absolute path: 'file' | 'dir'}."""
    out: dict[str, str] = {}
    for c in configs:
        if c.data_root:
            out[c.data_root] = "dir"
        if c.stylegan_repo:
            out[c.stylegan_repo] = "dir"
        if c.uses_generator and c.generator_spec.is_file:
            out[c.generator] = "file"
    return out


def _missing_here(paths: dict[str, str]) -> tuple[str, list[str]]:
    return socket.gethostname(), sorted(p for p, kind in paths.items()
                                        if not (os.path.isdir(p) if kind == "dir" else os.path.isfile(p)))


def check_paths_on_cluster(paths: dict[str, str]) -> None:
    """Check, in a Ray task on every alive node that can run trials, that the trials' paths
    exist there too (a shared filesystem or the same layout on every node); refuse otherwise,
    before any trial is scheduled. Nodes an autoscaler adds later are not seen here."""
    if not paths:
        return
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    task = ray.remote(num_cpus=0)(_missing_here)
    nodes = [n for n in ray.nodes() if n.get("Alive") and (n.get("Resources", {}).get("CPU", 0) > 0
                                                            or n.get("Resources", {}).get("GPU", 0) > 0)]
    refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(paths)
            for n in nodes]
    bad = []
    for n, (host, missing) in zip(nodes, ray.get(refs)):
        if missing:
            bad.append(f"node {n.get('NodeManagerAddress', host)} ({host}) lacks {missing}")
    if bad:
        raise ConfigError("the trials' paths do not exist on every node of the cluster: " + "; ".join(bad) +
                          ". Put data, checkpoints and the StyleGAN checkout on a filesystem every node mounts "
                          "at the same path (or copy them there)")

