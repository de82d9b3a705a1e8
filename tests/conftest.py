"""What every test shares: one torch thread, and one private Ray for the whole run.

One torch thread per test process: on the 2-core CI machine, Ray's trial workers run beside
the test process, and oversubscribed OpenMP threads made a training step 25x slower
(measured: 7.5 s against 0.28 s).

``ray_session`` starts one local Ray (2 CPUs, on 127.0.0.1, no dashboard) the first time a test
asks for it and stops it by its handle (``ray.shutdown``) after the last test: starting Ray
costs seconds, and every test module used to start its own. Its workers see a torch cache and
a zoo folder of the session's own (``ray_dirs``): tests that need files there (LPIPS's trunk,
Inception's weights) put them there, and never the user's ~/.cache. The stand-ins of
tests/standins.py reach the workers by value. Tests that need another Ray (a two-node cluster,
a study that starts its own Ray in a subprocess) do not use it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

STYLEGAN_PACKAGES = ("dnnlib", "torch_utils", "training")


@pytest.fixture(autouse=True)
def _no_stylegan_checkout_left_behind():
    """Loading an official pickle puts its checkout on ``sys.path`` and imports its packages, as it
    must for a user; a test must not leave them to the next, whose loader would then find another
    test's checkout (the result of a test would depend on the order the tests run in)."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in [m for m in sys.modules if m.split(".")[0] in STYLEGAN_PACKAGES]:
        del sys.modules[name]


@dataclass(frozen=True)
class RayDirs:
    torch_home: Path  # TORCH_HOME of the session's Ray workers
    zoo: Path         # SQSP_ZOO_DIR of the session's Ray workers


@pytest.fixture(scope="session")
def ray_dirs(tmp_path_factory) -> RayDirs:
    root = tmp_path_factory.mktemp("ray-session")
    dirs = RayDirs(root / "torch-home", root / "zoo")
    dirs.torch_home.mkdir()
    dirs.zoo.mkdir()
    return dirs


@pytest.fixture(scope="session")
def ray_session(ray_dirs) -> str:
    """The address of the session's Ray (drivers in subprocesses join it with ``address=``)."""
    ray = pytest.importorskip("ray")
    import standins
    env = {"env_vars": {"TORCH_HOME": str(ray_dirs.torch_home), "SQSP_ZOO_DIR": str(ray_dirs.zoo)}}
    from sqsp.tune import init_ray
    init_ray(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=env)  # on 127.0.0.1 only
    ray.cloudpickle.register_pickle_by_value(standins)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()

