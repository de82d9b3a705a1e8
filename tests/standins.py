"""Stand-ins for ``sqsp.train.train`` in tests about Ray rather than about learning.

Each keeps train()'s contract (a report and a checkpoint at every step, resumed from
``resume_from``) and sleeps instead of training. Ray's workers get them by value
(``ray.cloudpickle.register_pickle_by_value``, in conftest.py and in the test drivers), since
tests/ is not on their path. ``log_dir`` gets a line per call in ``calls.jsonl``: which trial,
from which step, so a test can tell what ran again after a resume.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from sqsp.config import ConfigError

TESTS = Path(__file__).resolve().parent


def _start(config, resume_from: str | None, log_dir: str | None, **logged: Any) -> int:
    """The step a run resumes after (0 for a new run), logged with ``logged`` to calls.jsonl."""
    start = 0
    if resume_from:
        with open(os.path.join(resume_from, "state.json")) as f:
            start = json.load(f)["step"]
    if log_dir:
        with open(os.path.join(log_dir, "calls.jsonl"), "a") as f:
            f.write(json.dumps({**logged, "seed": config.seed, "start": start}) + "\n")
    return start


def _report(report, metrics: dict[str, Any]) -> None:
    """``report(metrics, checkpoint_dir)`` with a checkpoint holding the step, as train() does."""
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "state.json"), "w") as f:
        json.dump({"step": metrics["step"]}, f)
    report(metrics, d)
    shutil.rmtree(d)


def standin_train(config, report=None, *, resume_from=None, generator=None, marker_dir=None, log_dir=None,
                  sleep=0.25, later_start_delay=0.0):
    """A grid's trial. ``cov_weight == 0.5`` marks a flaky trial: it raises after step 2 the first
    time it runs (a marker file in ``marker_dir`` remembers it), as a worker lost to an
    interruption would. With ``later_start_delay``, every trial but the first to start (a marker
    in ``marker_dir`` again) waits that long before its first step: a trial that has started
    but not yet reported, for as long as a test needs one."""
    start = _start(config, resume_from, log_dir, base_lr=config.base_lr, sim_weight=config.sim_weight)
    if later_start_delay and marker_dir:
        first = os.path.join(marker_dir, "first-trial-started")
        if os.path.exists(first):
            open(os.path.join(marker_dir, f"waiting-{config.seed}-{config.sim_weight}"), "w").close()
            time.sleep(later_start_delay)
        else:
            open(first, "w").close()
    m: dict[str, Any] = {}  # resumed from its final checkpoint: nothing left to run
    for step in range(start + 1, config.steps + 1):
        time.sleep(sleep)
        if marker_dir and config.cov_weight == 0.5 and step == 3:
            marker = os.path.join(marker_dir, f"flaky-{config.seed}")
            if not os.path.exists(marker):
                open(marker, "w").close()
                raise RuntimeError("flaky trial lost its worker")
        m = {"step": step, "epoch": step, "loss": 1.0 / step, "student_std": 0.8, "teacher_std": 0.8,
             "lr": config.base_lr, "img_per_s": 100.0, "collapsed": False}
        if step == config.steps:
            m.update(knn_acc=50.0 + config.seed, probe_acc=100.0 * config.base_lr, done=True)
        _report(report, m)
    return m


def search_standin(config, report=None, *, resume_from=None, generator=None, log_dir=None, sleep=0.2):
    """A searched study's trial, with the validation signal of a real run (``val_knn_acc`` each
    step, the probes at the end). The higher base_lr is, the higher every accuracy, but base_lr >
    0.33 is a run whose representation collapses from step 2 on (2 of the first 6 that Optuna's
    seed 0 proposes), and its kNN monitor falls to chance."""
    start = _start(config, resume_from, log_dir, base_lr=config.base_lr)
    quality = 100.0 * config.base_lr + config.seed / 10
    m: dict[str, Any] = {}
    for step in range(start + 1, config.steps + 1):
        time.sleep(sleep)
        m = {"step": step, "epoch": step, "progress": step / config.steps, "loss": 1.0 / step, "student_std": 0.8,
             "teacher_std": 0.8, "collapsed": config.base_lr > 0.33 and step >= 2,
             "val_knn_acc": 10.0 if config.base_lr > 0.33 and step >= 2 else quality * step / config.steps}
        if step == config.steps:
            m.update(val_probe_acc=quality, probe_acc=quality - 1.0, knn_acc=quality - 2.0, done=True)
        _report(report, m)
    return m


def failing_train(config, report=None, *, log_dir, **kw):
    """The real train(), except that ``cov_weight`` 0.7 crashes (a RuntimeError, as a lost worker)
    and 0.8 raises a user error (a ConfigError, as a bad generator found at load time)."""
    with open(os.path.join(log_dir, "calls.jsonl"), "a") as f:
        f.write(json.dumps({"cov_weight": config.cov_weight, "seed": config.seed}) + "\n")
    if config.cov_weight == 0.7:
        raise RuntimeError("the worker crashed")
    if config.cov_weight == 0.8:
        raise ConfigError("generator_blocks='b999': the generator has no block ['b999']")
    from sqsp.train import train
    return train(config, report, **kw)


def calls(storage) -> list[dict[str, Any]]:
    """The lines the stand-ins wrote to ``<storage>/calls.jsonl``, in order."""
    return [json.loads(x) for x in (Path(storage) / "calls.jsonl").read_text().splitlines()]


def ended(pattern: str, mark: str = "done") -> set[str]:
    """Trial folders (a glob of their result.json) whose last report carries ``mark``."""
    out = set()
    for p in map(Path, glob.glob(pattern)):
        lines = p.read_text().splitlines()
        if lines and json.loads(lines[-1]).get(mark):
            out.add(p.parent.name)
    return out


def drive(script: str, log_path: Path, *, until: Callable[[], bool], sig: int = signal.SIGKILL,
          timeout: float = 600) -> str:
    """Run ``script`` as a separate driver in tests/ (where it imports the test modules) and send
    it ``sig`` once ``until()``; SIGKILL: no handler runs, nothing is written on the way out.
    Returns the driver's output. ``timeout`` only bounds a driver that hangs: the suite runs on
    two pytest-xdist workers, and on a loaded 2-core machine reaching ``until()`` has taken
    several times its usual half minute."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=TESTS, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + timeout
            while time.time() < deadline and proc.poll() is None and not until():
                time.sleep(0.1)
            assert proc.poll() is None, "the study ended before the signal:\n" + log_path.read_text()[-3000:]
            assert until(), log_path.read_text()[-3000:]
        finally:
            proc.send_signal(sig)  # our own child, by its pid
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if sig == signal.SIGKILL:
        time.sleep(1.0)  # let Ray notice the dead driver and release its trial actors
    return log_path.read_text()
