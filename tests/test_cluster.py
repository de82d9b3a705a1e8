"""The main job on a multi-node Ray cluster, unchanged: ``studies/ablation.py --address``.

Two nodes of one CPU each (``ray.cluster_utils.Cluster``, real raylets, both on 127.0.0.1 only,
joined at a loopback address as an SSH tunnel to a cluster would be), the real train() at a
tiny size, the study's own command line as a user would type it. With one CPU per node, the
two concurrent trials Ray reports can only be running on different nodes."""
from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray.cluster_utils import Cluster

from conftest import ray_driver
from sqsp import results
from test_faults import STANDIN, exposed, listening

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]  # a two-node Ray cluster
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def two_node_cluster():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "node_ip_address": "127.0.0.1"})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def test_ablation_runs_on_a_two_node_cluster_through_address(two_node_cluster, tmp_path):
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ADDRESS": ""}
    cmd = [sys.executable, "studies/ablation.py", "--address", two_node_cluster.address, "--storage", str(tmp_path),
           "--seeds", "1", "--set", "steps=3", "--set", "batch_size=16", "--set", "generator=random:stylegan@16",
           "--set", "eval_every=0", "--set", "probe=none", "--set", "eval_init=false", "--set", "eval_mmd=false",
           "--verbose"]  # Ray's trial tables: they show the cluster's CPUs in use
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sockets = set()
    while proc.poll() is None:  # the cluster's and the driver's, while the study runs (issue 23)
        sockets |= set(listening(os.getpid()))
        time.sleep(1.0)
    stdout, stderr = proc.communicate(timeout=600)
    out = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert {"gcs_server", "raylet"} <= {name for _, _, name in sockets} and not exposed(sockets), sockets
    assert "Started a local Ray instance" not in log  # it joined the cluster
    assert f"[sqsp] joined the Ray cluster at {two_node_cluster.address}: 2 CPUs" in log, log[-4000:]
    assert "2.0/2 CPUs" in log, log[-4000:]  # two trials at once, one per one-CPU node
    trials = results.read_trials(str(tmp_path / "ablation"))
    assert sorted(trials["row"]) == list("abcdef") and trials["trial_id"].is_unique
    assert set(trials["status"]) <= {"completed", "collapsed"}, trials[["row", "status", "error"]]
    assert "| a | ✓ |" in out.stdout  # the table at the end


def test_paths_missing_on_a_node_are_refused_before_any_trial(two_node_cluster, tmp_path):
    """With --address the trials run on other nodes: every node is asked whether the paths exist."""
    from sqsp.config import ConfigError
    from sqsp.tune import check_paths_on_cluster
    with ray_driver(two_node_cluster.address):
        check_paths_on_cluster({str(tmp_path): "dir", __file__: "file"})  # both exist on both nodes
        with pytest.raises(ConfigError) as e:
            check_paths_on_cluster({str(tmp_path / "data"): "dir", __file__: "file"})
    msg = str(e.value)
    assert msg.count("lacks ['" + str(tmp_path / "data") + "']") == 2, msg  # each node answers for itself
    assert __file__ not in msg


def test_trials_on_a_node_that_leaves_end_on_the_others_each_once(two_node_cluster, tmp_path, capfd):
    """A worker node removed mid-study, as a cluster loses a machine: the trials running on it
    end on the other nodes, each row once and completed, from its last checkpoint, its retry
    counted. Ray Tune counts such a loss against ``--max-failures`` (a trial just placed on the
    node twice at once), so the study resumes the trials it lost that way; under
    ``--max-failures 0`` Tune fails every trial of the node at once, which makes the loss
    certain here rather than a matter of timing."""
    import threading
    import ray
    import standins
    from sqsp.tune import Study, run_study
    leaving = two_node_cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")  # 4 slots: 2 of them here
    two_node_cluster.wait_for_nodes()
    log = tmp_path / "log"
    log.mkdir()
    study = Study(name="nodeloss", preset="smoke", seeds=(0,),
                  grid=[{"row": f"r{i}", "sim_weight": 1.0 + i} for i in range(8)])

    def remove_when_every_slot_is_busy():
        while not (log / "calls.jsonl").exists() or len(standins.calls(log)) < 4:
            time.sleep(0.02)
        time.sleep(0.5)  # each has reported: checkpoints to continue from
        two_node_cluster.remove_node(leaving)

    with ray_driver(two_node_cluster.address):
        ray.cloudpickle.register_pickle_by_value(standins)
        remover = threading.Thread(target=remove_when_every_slot_is_busy, daemon=True)
        remover.start()
        trials = run_study(study, address=two_node_cluster.address, storage=str(tmp_path / "results"), loggers=(),
                           max_failures=0, overrides={**STANDIN, "steps": 8},
                           train_fn=functools.partial(standins.standin_train, log_dir=str(log), sleep=0.4))
        remover.join(timeout=60)
    err = capfd.readouterr().err
    assert not remover.is_alive(), "the node was never removed: fewer than 4 trials started"
    assert sorted(trials["row"]) == [f"r{i}" for i in range(8)] and trials["trial_id"].is_unique
    assert set(trials["status"]) == {"completed"}, (trials[["row", "status", "retries", "error"]], err[-3000:])
    lost = trials[trials["retries"].fillna(0) > 0]
    assert len(lost) >= 2, trials[["row", "retries"]]  # the two trials on the node that left
    assert "failed because their node left the Ray cluster" in err, err[-3000:]
    resumed = [c for c in standins.calls(log) if c["sim_weight"] in set(lost["sim_weight"]) and c["start"] > 0]
    assert len(resumed) >= 2, standins.calls(log)  # from their checkpoints, not from the start
