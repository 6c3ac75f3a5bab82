"""A Ray cluster of several nodes on this machine, started with the same
``ray start`` commands a user types on a real cluster (``--head`` on one node,
``--address=HEAD`` on the others): what the two-node test of ``twin dataset --engine ray
--address`` and ``scripts/twin/bench_dataset.py --nodes`` run against.

Each node is its own raylet with its own CPUs and object store, so Ray schedules the
dataset's actors across nodes exactly as on separate machines; what one machine cannot
show is the network between them (shards pass through the object store of the driver's
node either way).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

#: Seconds to wait for a node to join before giving up.
START_TIMEOUT_S = 120.0
#: Object store of each node [bytes]: shards are kilobytes to megabytes; Ray's default
#: (30 % of RAM per node) would reserve most of a CI machine's memory twice over.
OBJECT_STORE_BYTES = 200 * 1024**2


def _ray_command() -> str:
    """The ``ray`` console script of this interpreter's environment."""
    found = Path(sys.executable).with_name("ray")
    if found.exists():
        return str(found)
    which = shutil.which("ray")
    if which is None:
        raise RuntimeError("the `ray` command is not installed next to this Python")
    return which


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_cpus(address: str) -> list[float]:
    """The CPUs of each alive node of the cluster at ``address`` (empty: none reached),
    asked from a separate process (a driver connected here would stay connected)."""
    probe = (f"import json, ray; ray.init(address={address!r}, log_to_driver=False, "
             "configure_logging=False); print(json.dumps([n['Resources'].get('CPU', 0) "
             "for n in ray.nodes() if n['Alive']]))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=START_TIMEOUT_S, env=cluster_environment())
    if result.returncode:
        return []
    return [float(c) for c in json.loads(result.stdout.strip().splitlines()[-1])]


def cluster_environment() -> dict[str, str]:
    """The environment of the nodes :func:`local_cluster` starts, and the one a driver
    process needs to join them (``twin dataset --address`` run with it).

    Token authentication (on by default in ``ray start`` of Ray 2.60) secures a cluster
    across machines; one on this machine for a test needs none. It is switched off
    explicitly: a process that ran a local Ray instance before has ``RAY_AUTH_MODE=token``
    in its environment (Ray sets it), which its children would inherit."""
    return dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")


@contextmanager
def local_cluster(nodes: int = 2, *, cpus_per_node: int = 1) -> Iterator[str]:
    """Start ``nodes`` Ray nodes on this machine (``ray start --head``, then ``ray start
    --address``), each with ``cpus_per_node`` CPUs; yield the head's address
    (``IP:PORT``, what ``twin dataset --address`` takes); stop them on exit.

    Every node runs ``ray start --block`` in a session of its own, so ending it (its
    process group killed) stops its raylet and workers and nothing else: a user's own
    Ray instances on the machine are untouched (``ray stop`` would end them all).
    """
    if nodes < 1 or cpus_per_node < 1:
        raise ValueError(f"need nodes >= 1 and cpus_per_node >= 1, got {nodes}, "
                         f"{cpus_per_node}")
    from ray.util import get_node_ip_address

    ray, env = _ray_command(), cluster_environment()
    port = _free_port()
    # The address Ray gives this machine (what `ray start` picks by default): a driver
    # in a process that already ran a local Ray instance keeps that address, and would
    # find no raylet of its own on nodes bound to another one.
    address = f"{get_node_ip_address()}:{port}"
    common = [f"--num-cpus={cpus_per_node}", f"--object-store-memory={OBJECT_STORE_BYTES}",
              "--disable-usage-stats", "--block"]
    started: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(nodes):
            role = (["--head", f"--port={port}", "--include-dashboard=false"] if n == 0
                    else [f"--address={address}"])
            started.append(subprocess.Popen(
                [ray, "start", *role, *common], env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True))
            deadline = time.monotonic() + START_TIMEOUT_S
            while len(node_cpus(address)) < n + 1:
                if time.monotonic() > deadline or started[-1].poll() is not None:
                    raise RuntimeError(f"Ray node {n + 1} of {nodes} did not join {address}")
                time.sleep(0.5)
        yield address
    finally:
        for process in reversed(started):
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


__all__ = ["OBJECT_STORE_BYTES", "START_TIMEOUT_S", "cluster_environment", "local_cluster",
           "node_cpus"]
