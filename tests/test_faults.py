"""Faults and hostile inputs, as a careful user (or an attacker) would try them (issue 23).

Each test is one promise of README's "Interruptions, failures and concurrent runs": nothing of
a study's Ray is reachable from the network, an address that will not connect is refused in
bounded time, a study folder is resumed only as the study it is, a corrupt Tune state is never
a silent restart, a full disk loses no finished trial, a user's mistake is one line and exit
2, a deterministic trial error is not retried, and nothing is left behind. Real Ray, real
files, a real tmpfs for the full disk; trials are ``standins.standin_train`` (sleeps, no
training) unless the fault lives in training itself. In-process studies run on the session's
Ray (conftest.py's ``ray_session``, started with ``init_ray`` as a study's own).
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
import psutil  # noqa: E402  -- Ray's own copy (ray/thirdparty_files), importable once ray is

from sqsp import results  # noqa: E402
from sqsp.errors import UserError  # noqa: E402
from sqsp.tune import Study, run_study, study_main  # noqa: E402
from standins import calls, ended, standin_train  # noqa: E402
from test_tune import TINY, _assert_one_row_per_trial  # noqa: E402

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the trainables below, for Ray's workers

ROOT = Path(__file__).resolve().parents[1]
STANDIN = {**TINY, "steps": 4}
REAL = {**TINY, "steps": 3, "dataset": "digits", "eval_init": False, "eval_mmd": False}
"""The smallest real training run: digits, 3 steps of 16 images, a random 16 px StyleGAN."""
ENV = {**os.environ, "RAY_ADDRESS": "", "RAY_USAGE_STATS_ENABLED": "0"}


def small_study(name: str, *rows: dict) -> Study:
    return Study(name=name, preset="smoke", seeds=(0,),
                 grid=[{"row": "a"}, {"row": "b", "sim_weight": 3.0}, *rows])


def sets(overrides: dict) -> list[str]:
    return [f"--set={k}={v}" for k, v in overrides.items()]


_STUDY_SCRIPT = """
import sys
from sqsp.tune import Study, study_main
STUDY = Study(name={name!r}, preset="smoke", seeds=(0,), grid=[{{"row": "a"}}, {{"row": "b", "sim_weight": 3.0}}])
sys.exit(study_main(STUDY))
"""


def study_script(tmp_path: Path, name: str) -> Path:
    """A two-row study file, run as a user runs one (``python <file> --storage …``)."""
    path = tmp_path / f"{name}.py"
    path.write_text(_STUDY_SCRIPT.format(name=name))
    return path


def listening(root_pid: int) -> list[tuple[str, int, str]]:
    """(address, port, process) of every TCP socket that listens in ``root_pid``'s process tree."""
    root = psutil.Process(root_pid)
    pids = {root_pid, *(p.pid for p in root.children(recursive=True))}
    out = []
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN and c.pid in pids:
            with contextlib.suppress(psutil.Error):
                out.append((c.laddr.ip, c.laddr.port, psutil.Process(c.pid).name()))
    return out


def exposed(sockets) -> list:
    """The sockets of ``listening`` that another machine could reach."""
    return [s for s in sockets if not (s[0] == "::1" or s[0].removeprefix("::ffff:").startswith("127."))]


def finished(storage) -> set[str]:
    """Trial folders under ``storage`` whose last report is train()'s final one."""
    return ended(f"{storage}/*/*/result.json", mark="final")


def one_line_error(study: Study, argv: list[str], capsys) -> str:
    """Run a study's command line in-process; it must fail with exit 2 and one line."""
    capsys.readouterr()
    rc = study_main(study, argv)
    err = capsys.readouterr().err
    assert rc == 2, err[-3000:]
    lines = [x for x in err.strip().splitlines() if x.startswith(f"python studies/{study.name}.py: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *, read_only: bool = False):
    """A tmpfs of ``size`` mounted at ``path`` for the block. The developers' machines and CI run as
    root, so a mount that fails is a failure of the test, not a reason to pass it silently."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if out.returncode:
        pytest.fail(f"cannot mount a tmpfs at {path} ({out.stderr.strip() or out.returncode}): the full-disk and "
                    "read-only cases need root to mount one")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


# -------------------------------------------------------------------------------------------------
# 1. nothing of a study's Ray listens beyond this machine
# -------------------------------------------------------------------------------------------------
def probing_train(config, report=None, *, driver, out, **kw):
    """standin_train that first records, from inside a trial, what the driver's Ray listens on.
    The study's two trials may run at once, so each writes a file of its own and renames it
    into place (one whole record, never two interleaved)."""
    mine = f"{out}.{os.getpid()}"
    with open(mine, "w") as f:
        json.dump({"sockets": listening(driver), "auth": os.environ.get("RAY_AUTH_MODE")}, f)
    os.replace(mine, out)
    return standin_train(config, report, sleep=0.0, **kw)


_PRIVATE_DRIVER = """
import functools, os, ray.cloudpickle, standins, test_faults
for m in (standins, test_faults):
    ray.cloudpickle.register_pickle_by_value(m)
from sqsp.tune import run_study
run_study(test_faults.small_study("private"), storage={storage!r}, overrides=test_faults.STANDIN, loggers=(),
          train_fn=functools.partial(test_faults.probing_train, driver=os.getpid(), out={out!r}))
"""


def test_the_tests_ray_listens_on_loopback_only(ray_session):
    """The Ray these tests start (``init_ray``, as a study's own): every listening socket (GCS,
    raylet, object manager, workers, the driver's own) is on 127.0.0.1."""
    ray.get(ray.remote(lambda: 1).remote())  # a worker of the tests' Ray is up and listening too
    mine = listening(os.getpid())
    assert {"gcs_server", "raylet"} <= {name for _, _, name in mine}, mine
    assert not exposed(mine), mine


@pytest.mark.slow
def test_a_studys_private_ray_listens_on_loopback_only_with_token_auth(tmp_path):
    """A study without --address, in a process of its own: what its Ray listens on, seen from
    inside a trial, is all on 127.0.0.1, and Ray's token authentication is on."""
    out = tmp_path / "sockets.json"
    script = _PRIVATE_DRIVER.format(storage=str(tmp_path / "results"), out=str(out))
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT / "tests", env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    seen = json.loads(out.read_text())
    names = {name for _, _, name in seen["sockets"]}
    assert {"gcs_server", "raylet"} <= names, seen
    assert not exposed(seen["sockets"]), seen
    assert seen["auth"] == "token", seen


# -------------------------------------------------------------------------------------------------
# 2. --address to a loopback cluster works; one that will not connect is refused in bounded time
# -------------------------------------------------------------------------------------------------
# --address to a two-node cluster bound to 127.0.0.1, with every socket it and the driver listen
# on checked while the study runs: tests/test_cluster.py::test_ablation_runs_on_a_two_node_cluster_through_address


@pytest.mark.slow
def test_an_address_that_does_not_answer_as_ray_is_refused_within_a_bound(tmp_path):
    """Something listens at the address (the TCP check passes) but never answers as Ray: one
    line, exit 2, well before Ray's own minutes of waiting, and the study folder left as it was."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)  # the kernel completes the handshakes; nobody ever answers
        address = f"127.0.0.1:{s.getsockname()[1]}"
        t0 = time.time()
        out = subprocess.run([sys.executable, "studies/ablation.py", "--address", address, "--storage", str(tmp_path),
                              "--set", "generator=random:stylegan@16"], cwd=ROOT, env=ENV, capture_output=True,
                             text=True, timeout=300)
        elapsed = time.time() - t0
    assert out.returncode == 2, (out.stdout + out.stderr)[-3000:]
    err = out.stderr.strip().splitlines()
    assert err and err[-1].startswith(f"python studies/ablation.py: error: --address '{address}'"), err[-5:]
    assert "Traceback" not in out.stderr
    assert elapsed < 120, elapsed
    assert not (tmp_path / "ablation").exists()


# -------------------------------------------------------------------------------------------------
# 3. a study folder is resumed only as the study it is: its study.json is required
# -------------------------------------------------------------------------------------------------
def test_resume_needs_the_study_json_it_started_with(ray_session, tmp_path, capsys):
    study = small_study("ident", {"row": "flaky", "cov_weight": 0.5})  # fails once: something to resume
    first = run_study(study, storage=str(tmp_path), max_failures=0, overrides=STANDIN, loggers=(),
                      train_fn=functools.partial(standin_train, sleep=0.0, marker_dir=str(tmp_path)))
    assert sorted(first["status"]) == ["completed", "completed", "failed"]
    folder = tmp_path / "ident"
    spec, parquet = folder / "study.json", (folder / "trials.parquet").read_bytes()
    kept = spec.read_text()
    argv = ["--storage", str(tmp_path), "--resume", *sets({**STANDIN, "steps": 6})]  # other flags than it started with
    for garbled in (None, kept[: len(kept) // 2], "[]"):
        if garbled is None:
            spec.unlink()
        else:
            spec.write_text(garbled)
        line = one_line_error(study, argv, capsys)
        assert str(spec) in line and "--resume" in line, line
        assert (folder / "trials.parquet").read_bytes() == parquet  # nothing run, nothing rewritten


# -------------------------------------------------------------------------------------------------
# 4. a corrupt Tune state is restored from the copy kept of it, or refused: never a silent restart
# -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_corrupt_tune_state_is_restored_from_its_kept_copy_or_refused(ray_session, tmp_path):
    from sqsp.tune import STATE_COPY_DIR
    study = small_study("corrupt", {"row": "flaky", "cov_weight": 0.5, "sim_weight": 2.0})
    train_fn = functools.partial(standin_train, sleep=0.0, marker_dir=str(tmp_path), log_dir=str(tmp_path))
    first = run_study(study, storage=str(tmp_path), max_failures=0, overrides=STANDIN, loggers=(), train_fn=train_fn)
    assert sorted(first["status"]) == ["completed", "completed", "failed"]
    folder = tmp_path / "corrupt"
    state = max(folder.glob("experiment_state-*.json"))  # the newest: the one Tune resumes
    text = state.read_text()
    state.write_text(text[: len(text) // 2])  # what a full disk leaves: the file cut short
    n_calls = len(calls(tmp_path))

    trials = run_study(study, storage=str(tmp_path), resume=True, max_failures=0, overrides=STANDIN, loggers=(),
                       train_fn=train_fn)
    assert (trials["status"] == "completed").all(), trials[["row", "status", "error"]]
    assert sorted(trials["trial_id"]) == sorted(first["trial_id"])  # the same trials, not a new study
    later = calls(tmp_path)[n_calls:]
    assert [(c["sim_weight"], c["start"]) for c in later] == [(2.0, 2)]  # only the failed one, from its checkpoint
    history = results.read_history(str(folder))
    _assert_one_row_per_trial(trials, history, 3)

    # without the kept copy: refused, naming the file, with nothing lost
    parquet = (folder / "trials.parquet").read_bytes()
    shutil.rmtree(folder / STATE_COPY_DIR)
    state = max(folder.glob("experiment_state-*.json"))
    state.write_text("{")
    with pytest.raises(UserError, match=state.name) as e:
        run_study(study, storage=str(tmp_path), resume=True, overrides=STANDIN, loggers=(), train_fn=train_fn)
    assert "trials.parquet" in str(e.value)
    assert (folder / "trials.parquet").read_bytes() == parquet
    assert len(calls(tmp_path)) == n_calls + 1


# -------------------------------------------------------------------------------------------------
# 5. a full disk: the finished trials stay in both Parquet files; --resume after freeing space continues
# -------------------------------------------------------------------------------------------------
def _fill(path: Path) -> None:
    """Write zeros to ``path`` until its file system is full (another program filling the disk)."""
    with contextlib.suppress(OSError), open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 10, 1):  # down to the last bytes that fit
            with contextlib.suppress(OSError):
                while True:
                    f.write(bytes(size))


@pytest.mark.slow
def test_a_full_disk_keeps_finished_trials_and_resume_continues(ray_session, tmp_path):
    disk = tmp_path / "disk"
    with tmpfs(disk, "96m"):
        storage = disk / "results"
        script = study_script(tmp_path, "full")
        # a trial per row (rows a and b share a generator stream, which would make them one trial):
        # the disk fills after the first has ended and while the second runs
        cmd = [sys.executable, str(script), "--address", ray_session, "--storage", str(storage), "--max-concurrent",
               "1", "--loggers", "none", "--share-generator", "off", *sets({**REAL, "steps": 40})]  # long enough to still run when the disk is full
        proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 300
            while time.time() < deadline and proc.poll() is None and not finished(storage):
                time.sleep(0.2)
            assert proc.poll() is None and finished(storage), "no trial ended before the study did"
            _fill(disk / "filler")
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 1, (out + err)[-4000:]
        assert "Traceback" not in err, err[-4000:]
        lines = [x for x in err.splitlines() if "no space left" in x.lower()]
        assert lines and str(storage) in lines[-1], err[-3000:]
        folder = storage / "full"
        trials = results.read_trials(str(folder))
        history = results.read_history(str(folder))
        done = trials[trials["status"] == "completed"]
        assert len(done) >= 1 and set(done["trial_id"]) <= set(history["trial_id"]), trials[["row", "status"]]
        assert len(trials) == 2

        (disk / "filler").unlink()
        again = subprocess.run([*cmd, "--resume"], cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
        trials = results.read_trials(str(folder))
        assert sorted(trials["row"]) == ["a", "b"] and set(trials["status"]) <= {"completed", "collapsed"}
        assert set(done["trial_id"]) <= set(trials["trial_id"])  # the finished one kept, not rerun as another
        _assert_one_row_per_trial(trials, results.read_history(str(folder)), 2)


# -------------------------------------------------------------------------------------------------
# 6. what the user gave wrong is one line and exit 2, before Ray where it can be found before Ray
# -------------------------------------------------------------------------------------------------
class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # what a hostile .pt holds: unpickling it would run a command
        return os.system, (f"touch {self.marker}",)


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    import torch
    from sqsp.generators import make_network, save_checkpoint
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray was started"))  # all found before Ray
    study = small_study("users")
    kwargs = dict(resolution=16, channels=3, z_dim=64)

    def sidecar(name: str, **change) -> Path:
        path = tmp_path / f"{name}.safetensors"
        save_checkpoint(make_network("stylegan", **kwargs), "stylegan", kwargs, path)
        meta = json.loads(path.with_suffix(".json").read_text())
        meta["kwargs"].update(change)
        path.with_suffix(".json").write_text(json.dumps(meta))
        return path

    marker = tmp_path / "ran"
    torch.save({"arch": "stylegan", "kwargs": kwargs, "state_dict": _Payload(marker)}, tmp_path / "hostile.pt")
    (tmp_path / "photo.pth").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))  # an image under a checkpoint's name
    cases = [(sidecar("typo", bogus=1), "TypeError"), (sidecar("zero", z_dim=0), "ZeroDivisionError"),
             (tmp_path / "hostile.pt", "weights_only"), (tmp_path / "photo.pth", "weights_only")]
    for path, says in cases:
        line = one_line_error(study, ["--storage", str(tmp_path / "results"), *sets({**STANDIN, "generator": path})],
                              capsys)
        assert str(path) in line and says in line, line
    assert not marker.exists()  # the hostile pickle ran nothing
    assert not (tmp_path / "results").exists()

    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        line = one_line_error(study, ["--storage", str(ro / "results"), *sets(STANDIN)], capsys)
        assert str(ro / "results") in line and "Read-only file system" in line, line
    # a garbled study.json on --resume: test_resume_needs_the_study_json_it_started_with


# -------------------------------------------------------------------------------------------------
# 7. deterministic trial errors are not retried, and the console line says why
# -------------------------------------------------------------------------------------------------
def counting_train(config, report=None, *, log_dir, **kw):
    """The real train(), counted per call; ``cov_weight`` 0.9 asks for an allocation no machine has."""
    with open(os.path.join(log_dir, "calls.jsonl"), "a") as f:
        f.write(json.dumps({"cov_weight": config.cov_weight}) + "\n")
    if config.cov_weight == 0.9:
        import torch
        torch.empty(1 << 50, dtype=torch.uint8)  # 1 PiB: torch's CPU allocator refuses it
    from sqsp.train import train
    return train(config, report, **kw)


def test_deterministic_trial_errors_fail_once_with_the_reason_on_the_console(ray_session, tmp_path, capsys):
    from test_data import write_imagefolder
    data = tmp_path / "images"
    write_imagefolder(data, size=16)
    bad = data / "train" / "cat" / "broken.png"
    bad.write_bytes(b"not a png at all")  # an image by its name only: PIL cannot identify it
    study = Study(name="determined", preset="smoke", seeds=(0,), grid=[{"row": "oom", "cov_weight": 0.9},
                                                                      {"row": "images"}])
    capsys.readouterr()
    trials = run_study(study, storage=str(tmp_path / "results"), max_failures=2, loggers=(),
                       overrides={**REAL, "dataset": "imagefolder", "data_root": str(data)},
                       train_fn=functools.partial(counting_train, log_dir=str(tmp_path)))
    err = capsys.readouterr().err
    by = trials.set_index("row")
    assert by.loc["oom", "status"] == "failed" and "out of memory" in by.loc["oom", "error"]
    assert by.loc["images", "status"] == "failed" and str(bad) in by.loc["images", "error"]
    made = calls(tmp_path)
    assert sum(c["cov_weight"] == 0.9 for c in made) == 1  # not retried, though --max-failures 2
    assert sum(c["cov_weight"] != 0.9 for c in made) == 1
    lines = [x for x in err.splitlines() if x.startswith("[sqsp] ") and ": failed" in x]
    assert any(" oom " in x and "out of memory" in x for x in lines), err[-3000:]
    assert any(" images " in x and "broken.png" in x for x in lines), err[-3000:]


# -------------------------------------------------------------------------------------------------
# 8. nothing left behind
# -------------------------------------------------------------------------------------------------
_KILLED_WRITER = """
import os, sys
from sqsp.storage import atomic_output
with atomic_output(sys.argv[1]) as f:
    f.write(b"half a Parquet file")
    os.kill(os.getpid(), 9)  # SIGKILL in the middle of the write
"""


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    folder = tmp_path / "study"
    subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(folder / results.TRIALS_FILE)], env=ENV, check=False)
    assert [p.name.startswith(".trials.parquet.") and p.name.endswith(".tmp") for p in folder.iterdir()] == [True]
    record = results.TrialRecord(trial_id="t0", config={}, row="a")
    results.write_study(str(folder), "study", [record])
    assert sorted(p.name for p in folder.iterdir()) == [results.HISTORY_FILE, results.TRIALS_FILE]


def test_a_refused_run_leaves_no_folder_it_made(ray_session, tmp_path):
    """Refused inside the study lock (the data root's layout): neither the study folder nor the
    storage root it would have made for it remain."""
    from sqsp.data import DatasetLayoutError
    (tmp_path / "cifar").mkdir()
    storage = tmp_path / "new" / "results"
    with pytest.raises(DatasetLayoutError):
        run_study(small_study("refused"), storage=str(storage),
                  overrides={**STANDIN, "dataset": "cifar10", "data_root": str(tmp_path / "cifar")})
    assert not (tmp_path / "new").exists()


def pending_study() -> Study:
    return small_study("pending", {"row": "c", "sim_weight": 4.0}, {"row": "d", "sim_weight": 5.0})


_INTERRUPTED_DRIVER = """
import functools, ray.cloudpickle, standins, test_faults
for m in (standins, test_faults):
    ray.cloudpickle.register_pickle_by_value(m)
from sqsp.tune import run_study
run_study(test_faults.pending_study(), address={address!r}, storage={storage!r}, max_concurrent=1, max_failures=0,
          overrides=test_faults.STANDIN, loggers=(),
          train_fn=functools.partial(standins.standin_train, sleep=0.2, marker_dir={storage!r}, later_start_delay=20))
"""


@pytest.mark.slow
def test_resume_with_a_never_started_trial_prints_no_missing_metrics(ray_session, tmp_path, capfd):
    """Interrupted when one of four trials (one at a time) had ended and the next had started
    but not reported (it waits 20 s before its first step; with one trial at a time Tune
    creates the others only when there is room), neither the interrupted run nor its --resume
    says anything of the metrics it never had (Tune's 'Could not fetch metrics' warning, one
    per such trial and run)."""
    log = tmp_path / "driver.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_DRIVER.format(address=ray_session, storage=str(tmp_path))],
                                cwd=ROOT / "tests", env=os.environ, stdout=f, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 180
            while time.time() < deadline and proc.poll() is None and not (finished(tmp_path) and
                                                                          list(tmp_path.glob("waiting-*"))):
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGINT)  # our own child, by its pid
            proc.wait(timeout=120)
    partial = results.read_trials(str(tmp_path / "pending"))
    assert ((partial["status"] == "unfinished") & (partial["reports"] == 0)).any(), log.read_text()[-3000:]
    assert "Could not fetch metrics" not in log.read_text(), log.read_text()[-3000:]  # nor when it was interrupted
    capfd.readouterr()
    trials = run_study(pending_study(), storage=str(tmp_path), resume=True, max_concurrent=1, max_failures=0,
                       overrides=STANDIN, loggers=(), train_fn=functools.partial(standin_train, sleep=0.0))
    out, err = capfd.readouterr()
    assert (trials["status"] == "completed").all()
    assert "Could not fetch metrics" not in out + err, (out + err)[-3000:]


def test_only_a_lost_node_counts_as_one():
    """What the study resumes by itself after a fit: trials Ray lost with their node, not trials
    whose own code failed, even if its message speaks of a node."""
    from ray.exceptions import RayActorError
    from sqsp.tune.experiment import lost_with_a_node
    lost = RayActorError("ab12", "The actor died unexpectedly before finishing this task.\n"
                                 "the actor's node was terminated expectedly: received SIGTERM")
    assert lost_with_a_node(lost)
    assert lost_with_a_node("ray.exceptions.ActorDiedError: The actor died because its node has died. Node Id: ab")
    assert not lost_with_a_node(RayActorError("ab12", "The actor died because of an error raised in its creation "
                                                      "task: the node was terminated", actor_init_failed=True))
    assert not lost_with_a_node(RuntimeError("the worker crashed"))
    assert not lost_with_a_node(None)
