"""A study of a thousand trials on a simulated GPU cluster, through the real ``run_study`` path.

``ray.cluster_utils.Cluster`` on loopback: a head node and ``--nodes`` worker nodes, each
declaring ``--gpus-per-node`` GPUs it does not have (Ray schedules fractions of them as it would
real ones). The study is a grid of ``--trials`` points, one seed, at ``--gpus-per-trial``; its
trainable is a stand-in that keeps train()'s contract (a report and a checkpoint every epoch,
resumed from the checkpoint) and sleeps instead of training. Everything else is sqsp's:
preflight, the study lock, the console, the Parquet files, ``--resume``.

    python benchmarks/cluster_scale.py [--trials 1000] [--nodes 4] [--gpus-per-node 2] [--gpus-per-trial 0.25]

It prints:
1. the time to write both Parquet files for studies of N trials (N doubling): linear growth
   means a constant time per trial;
2. the run: the driver (a subprocess, so that it can be killed) is SIGKILLed when half the
   trials have ended, then resumed; partway through the resume a worker node is removed. Peak
   concurrent trials against the GPU slots, the driver's CPU seconds and peak memory per
   trial, and whether every trial ended exactly once with its retries recorded.

Each Ray worker holds ~190 MB (Ray, pandas): the default 32 slots fit this 24 GB machine.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def standin(config, report=None, *, resume_from=None, generator=None, log_dir=None, epochs=3, sleep=0.5):
    """train()'s contract without the training; a line per start and per end in ``calls.jsonl``."""
    import shutil
    start = 0
    if resume_from:
        with open(os.path.join(resume_from, "state.json")) as f:
            start = json.load(f)["epoch"]
    key = round(config.sim_weight, 6)
    with open(os.path.join(log_dir, "calls.jsonl"), "a") as f:
        f.write(json.dumps({"key": key, "start": start, "at": time.time(), "pid": os.getpid()}) + "\n")
    for epoch in range(start + 1, epochs + 1):
        time.sleep(sleep)
        m = {"step": epoch * 10, "epoch": epoch, "progress": epoch / epochs, "loss": 1.0 / epoch,
             "student_std": 0.8, "teacher_std": 0.8, "collapsed": False}
        if epoch == epochs:
            m.update(knn_acc=50.0, probe_acc=60.0, done=True)
            # before the last report: Ray may end the trainable inside it
            with open(os.path.join(log_dir, "calls.jsonl"), "a") as f:
                f.write(json.dumps({"key": key, "end": time.time()}) + "\n")
        d = tempfile.mkdtemp()
        with open(os.path.join(d, "state.json"), "w") as f:
            json.dump({"epoch": epoch}, f)
        report(m, d)
        shutil.rmtree(d)
    return m


def study(trials: int):
    from sqsp.tune import Study
    values = [round(1.0 + i / 1000, 6) for i in range(trials)]  # λ: one grid point per trial
    return Study(name="scale", preset="smoke", seeds=(0,), grid={"sim_weight": values})


DRIVER = """
import functools, sys
sys.path.insert(0, {here!r})
import ray.cloudpickle, cluster_scale
ray.cloudpickle.register_pickle_by_value(cluster_scale)
from sqsp.tune import run_study
run_study(cluster_scale.study({trials}), address={address!r}, storage={storage!r}, resume={resume},
          gpus_per_trial={gpus}, max_failures=2, loggers=(), status_every=60,
          overrides={{"generator": "random:stylegan@16", "dataset": "digits"}},
          train_fn=functools.partial(cluster_scale.standin, log_dir={storage!r}, epochs={epochs}, sleep={sleep}))
"""


def parquet_growth(largest: int, epochs: int) -> None:
    from sqsp import results
    from sqsp.config import preset
    cfg = preset("smoke").to_dict()
    print("1. Parquet writes (trials.parquet + history.parquet, %d reports per trial)" % epochs)
    prev = None
    n = max(125, largest // 8)
    while n <= largest * 2:
        recs = [results.TrialRecord(f"t{i:05d}", cfg, None,
                                    [{"training_iteration": e, "step": e * 10, "epoch": e, "loss": 1.0 / e,
                                      "time_total_s": float(e), "timestamp": 1.7e9 + e, "done": e == epochs,
                                      **({"probe_acc": 60.0, "final": True} if e == epochs else {})}
                                     for e in range(1, epochs + 1)], checkpoint=f"/s/t{i}/checkpoint_000002")
                for i in range(n)]
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            results.write_study(d, "scale", recs)
            dt = time.perf_counter() - t
        per = dt / n * 1e3
        growth = "" if prev is None else f"  ({dt / prev:.2f}x the time for 2x the trials)"
        print(f"   {n:6d} trials: {dt:6.2f} s, {per:.2f} ms per trial{growth}")
        prev, n = dt, n * 2


def run_driver(address: str, storage: str, trials: int, resume: bool, gpus: float, epochs: int, sleep: float,
               kill_when=None, on_progress=None):
    """Run the study's driver in a subprocess; SIGKILL it when ``kill_when(ended)`` holds.
    Returns (return code, the driver's CPU seconds, its peak RSS in MB, wall seconds)."""
    code = DRIVER.format(here=str(HERE), trials=trials, address=address, storage=storage, resume=resume, gpus=gpus,
                         epochs=epochs, sleep=sleep)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    # the driver's console goes to a file: a pipe nobody drains until the end fills (64 KB of
    # Ray's warnings on a thousand trials) and blocks the driver in its next write
    log_path = os.path.join(storage, f"driver-{'resume' if resume else 'first'}.log")
    with open(log_path, "a") as log:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=log,
                                env={**os.environ, "RAY_ADDRESS": ""})
        while proc.poll() is None:
            time.sleep(1)
            ended = _ended(storage)
            if on_progress is not None:
                on_progress(ended)
            if kill_when is not None and kill_when(ended):
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, -signal.SIGKILL):
        print(Path(log_path).read_text()[-3000:], file=sys.stderr)
    return proc.returncode, cpu, after.ru_maxrss / 1024, time.time() - t0


def _calls(storage: str) -> list[dict]:
    path = os.path.join(storage, "calls.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _ended(storage: str) -> int:
    return len({c["key"] for c in _calls(storage) if "end" in c})


def peak_concurrency(calls: list[dict], killed_at: float | None = None) -> int:
    """Most trials running at once: each start opens an interval that its end closes; a trial of
    the driver killed at ``killed_at`` stopped then (its actor died with the driver), though its
    interval has no end in the log."""
    events, open_at = [], {}
    closed_at_kill = False
    for c in sorted(calls, key=lambda c: c.get("at", c.get("end"))):
        t = c.get("at", c.get("end"))
        if killed_at is not None and not closed_at_kill and t >= killed_at:
            events.extend((killed_at, -1) for _ in open_at)
            open_at, closed_at_kill = {}, True
        if "at" in c:
            if c["key"] in open_at:  # restarted without an end: a node died
                events.append((c["at"], -1))
            open_at[c["key"]] = c["at"]
            events.append((c["at"], 1))
        elif c["key"] in open_at:
            events.append((c["end"], -1))
            del open_at[c["key"]]
    peak = now = 0
    for _, d in sorted(events):
        now += d
        peak = max(peak, now)
    return peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--gpus-per-node", type=int, default=2)
    p.add_argument("--gpus-per-trial", type=float, default=0.25)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--sleep", type=float, default=0.5, help="seconds per stand-in epoch")
    p.add_argument("--skip-parquet", action="store_true")
    args = p.parse_args()
    import ray
    from ray.cluster_utils import Cluster

    from sqsp import results

    if not args.skip_parquet:
        parquet_growth(args.trials, args.epochs)
    slots = int(args.nodes * args.gpus_per_node / args.gpus_per_trial)
    print(f"2. {args.trials} trials on {args.nodes} nodes x {args.gpus_per_node} GPUs at {args.gpus_per_trial} GPU "
          f"per trial = {slots} slots; {args.epochs} epochs of {args.sleep} s each")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 0, "include_dashboard": False,
                                                           "node_ip_address": "127.0.0.1"})
    nodes = [cluster.add_node(num_cpus=int(args.gpus_per_node / args.gpus_per_trial), num_gpus=args.gpus_per_node,
                              node_ip_address="127.0.0.1") for _ in range(args.nodes)]
    cluster.wait_for_nodes()
    storage = tempfile.mkdtemp(prefix="sqsp-scale-")
    try:
        half = args.trials // 2
        rc1, cpu1, rss1, wall1 = run_driver(cluster.address, storage, args.trials, False, args.gpus_per_trial,
                                            args.epochs, args.sleep, kill_when=lambda ended: ended >= half)
        killed_at = time.time()
        print(f"   first driver: SIGKILLed after {_ended(storage)} trials ended ({wall1:.0f} s, exit {rc1})")
        removed = []

        def remove_a_node(ended):
            if not removed and ended >= half + (args.trials - half) // 2:
                cluster.remove_node(nodes[-1])
                removed.append(ended)
        rc2, cpu2, rss2, wall2 = run_driver(cluster.address, storage, args.trials, True, args.gpus_per_trial,
                                            args.epochs, args.sleep, on_progress=remove_a_node)
        where = f"after {removed[0]} trials had ended" if removed else "never (the run ended first)"
        print(f"   resumed driver: exit {rc2}, {wall2:.0f} s; one worker node removed {where}")
        calls = _calls(storage)
        trials = results.read_trials(os.path.join(storage, "scale"))
        ends = [c["key"] for c in calls if "end" in c]
        twice = len(ends) - len(set(ends))
        status = trials["status"].value_counts().to_dict()
        print(f"   peak concurrent trials: {peak_concurrency(calls, killed_at)} of {slots} slots")
        print(f"   driver CPU: {cpu1 + cpu2:.0f} s in all, {1e3 * (cpu1 + cpu2) / args.trials:.0f} ms per trial; "
              f"peak driver memory {max(rss1, rss2):.0f} MB")
        print(f"   trials.parquet: {len(trials)} rows, statuses {status}; trials that ran to their end more than "
              f"once: {twice}; missing: {args.trials - len(set(ends))}")
        retried = trials[trials["retries"].fillna(0) > 0]
        print(f"   trials retried after the node loss (retries > 0 in trials.parquet): {len(retried)}")
    finally:
        cluster.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
