"""Where a study's Ray runs: a private Ray that only this machine can reach, or a cluster.

Without ``--address`` a study starts a private Ray of its own (``address="local"``: never a
cluster that happens to run here, nor the one ``RAY_ADDRESS`` names). Ray's processes (GCS,
raylet, object manager, workers, the driver's own server) listen on the node's IP address,
which Ray takes to be the machine's outward one, so a private Ray would be reachable by
anyone on the network; and anyone who reaches it can run code in it. So it is started on
127.0.0.1, and with Ray's token authentication, which Ray turns on for a new local Ray
unless ``RAY_AUTH_MODE`` says otherwise (it then keeps a token in ``~/.ray/auth_token``;
setting the variable here would not do: Ray reads it into its native config at import).

Ray turns a loopback address it is given (``_node_ip_address``, or ``--address
127.0.0.1:PORT``) into the machine's outward address, except in its single-machine mode
(its default on macOS and Windows, ``ray_constants.ENABLE_RAY_CLUSTER`` off). That mode is
switched on around ``ray.init`` for the private Ray and for a cluster joined at a loopback
address (a test cluster, an SSH tunnel), so that these are reached where they listen
instead of waited for, for minutes, at an address where nothing does.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import ray

LOOPBACK = "127.0.0.1"


def init_ray(address: str | None = None, **kwargs: Any) -> None:
    """``ray.init`` for a study: a private Ray on 127.0.0.1 with token authentication
    (``address`` None), or the cluster at ``address``, joined at a loopback address as given.
    ``kwargs`` go to ``ray.init`` (``num_cpus``, ``runtime_env``, ``log_to_driver``…)."""
    if address is None:
        with _single_machine():
            ray.init(address="local", _node_ip_address=LOOPBACK, **kwargs)
        return
    if _is_loopback(address):
        with _single_machine():
            ray.init(address=address, _node_ip_address=LOOPBACK, **kwargs)
        return
    ray.init(address=address, **kwargs)


def _is_loopback(address: str) -> bool:
    host = address.split("://")[-1].rpartition(":")[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


@contextlib.contextmanager
def _single_machine() -> Iterator[None]:
    """Ray's single-machine mode for the block: loopback addresses stay loopback. A private
    attribute of Ray; if it is gone, Ray already keeps loopback addresses as given, or the
    test of the listening sockets (tests/test_faults.py) says otherwise."""
    from ray._private import ray_constants
    before = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if before is None:
            del ray_constants.ENABLE_RAY_CLUSTER
        else:
            ray_constants.ENABLE_RAY_CLUSTER = before
