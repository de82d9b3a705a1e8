"""What every test shares: one torch thread, and one private Ray for the whole run (per pytest-xdist
worker: the suite runs on two, see pyproject.toml).

One torch thread per test process: on the 2-core CI machine, Ray's trial workers run beside
the test process, and oversubscribed OpenMP threads made a training step 25x slower
(measured: 7.5 s against 0.28 s).

``ray_session`` starts one local Ray (1 CPU, on 127.0.0.1, no dashboard) the first time a test
asks for it and stops it by its handle (``ray.shutdown``) after the last test: starting Ray
costs seconds, and every test module used to start its own. One CPU, since the two xdist workers
share two cores: a study's second concurrent trial would only start a second cold worker
(torch, scikit-learn and sqsp imported again, some 6 s of CPU) to contend for the same cores
(measured on 2 cores: the suite 608 s with 2 CPUs per Ray, 523 s with 1). Its workers see a torch cache and
a zoo folder of the session's own (``ray_dirs``): tests that need files there (LPIPS's trunk,
Inception's weights) put them there, and never the user's ~/.cache. The stand-ins of
tests/standins.py reach the workers by value. Tests that need another Ray (a two-node cluster,
a study that starts its own Ray in a subprocess) do not use it; a test that drives another Ray
from this process joins it with ``ray_driver``, as ``ray_session`` does its own.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

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


@pytest.fixture(scope="session", autouse=True)
def sqsp_cache(tmp_path_factory) -> Iterator[Path]:
    """``SQSP_CACHE_DIR`` of the whole run (this process, its subprocesses, every Ray it starts):
    a folder of the run's own, never the user's ~/.cache/sqsp, shared by the pytest-xdist workers
    (the raw-pixel references one worker computes, the other reads: sqsp/pixel_reference.py)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "sqsp-cache"
    root.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SQSP_CACHE_DIR", str(root))
        yield root


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


@contextlib.contextmanager
def ray_driver(address: str | None = None, **kwargs: Any) -> Iterator[Any]:
    """This process as the driver of the Ray at ``address`` (None: a private one on 127.0.0.1
    with token authentication), joined as a study joins it (``sqsp.tune.init_ray``) and left
    by its handle (``ray.shutdown``), never by ``ray stop``: yields the ``ray`` module. A process
    drives one Ray at a time, so it refuses while another is connected (the session's)."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.fail(f"this test process already drives a Ray ({ray.get_runtime_context().gcs_address}); a test "
                    f"that joins {address or 'a private Ray'} must not share a pytest run's Ray (ray_session)")
    from sqsp.tune import init_ray
    init_ray(address, include_dashboard=False, log_to_driver=False, **kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def ray_session(ray_dirs, sqsp_cache) -> str:
    """The address of the session's Ray (drivers in subprocesses join it with ``address=``)."""
    import standins
    env = {"env_vars": {"TORCH_HOME": str(ray_dirs.torch_home), "SQSP_ZOO_DIR": str(ray_dirs.zoo),
                        "SQSP_CACHE_DIR": os.environ["SQSP_CACHE_DIR"]}}
    with ray_driver(num_cpus=1, runtime_env=env) as ray:  # on 127.0.0.1 only
        ray.cloudpickle.register_pickle_by_value(standins)
        yield ray.get_runtime_context().gcs_address

