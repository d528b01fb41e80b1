"""Real Ray clusters for tests, on this machine: a head node and extra worker nodes.

``ray_cluster`` (session-scoped) starts a head node with ``ray start --head --block`` on free
ports and connects this test process to it; the semantic suite runs its ``ray`` jobs there.
``ray_worker_node`` adds a second node to that cluster (``ray start --address``) that a test
may kill like a pre-empted VM: every process of that node gets SIGKILL at once.

Ray missing: the tests are skipped, unless ``BATCHSCORE_REQUIRE_SERVICES=1`` (they fail).
The nodes run with small object stores, no dashboard, no usage stats, and fast health checks,
so that a lost node is noticed within about two seconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from servers import REQUIRE_ENV, free_port, services_required

__all__ = ["RayNode", "ray_cluster", "ray_worker_node", "require_ray"]

START_TIMEOUT_S = 60.0
OBJECT_STORE_BYTES = 80 * 1024**2
HEAD_CPUS = 4
# Node processes read RAY_<config> variables; these cut start-up, memory and the time until
# a dead node is declared dead (3 missed health checks, 0.5 s apart).
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_health_check_initial_delay_ms": "0",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
    "RAY_DEDUP_LOGS": "0",
}


def require_ray() -> None:
    """Skip the test when Ray is not installed (fail it with BATCHSCORE_REQUIRE_SERVICES=1)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        message = "Ray is not installed; install the extra: pip install -e '.[ray]'"
        if services_required():
            pytest.fail(f"{message}; {REQUIRE_ENV}=1 requires every test service",
                        pytrace=False)
        pytest.skip(message)


def _ray_binary() -> str:
    found = Path(sys.executable).parent / "ray"
    return str(found) if found.exists() else (shutil.which("ray") or "ray")


@dataclass
class RayNode:
    """A node started by ``ray start --block``; ``kill()`` ends all of its processes at once."""

    proc: subprocess.Popen[bytes]
    log: Path

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def pids(self) -> set[int]:
        return {p.pid for p in self.processes()}

    def kill(self) -> None:
        """Like a VM that vanishes: SIGKILL to the node's every process, no goodbye."""
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def stop(self) -> None:
        procs = self.processes()
        if self.proc.poll() is None:
            self.proc.terminate()  # `ray start --block` stops the node's processes
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
        for p in procs:  # whatever is left over
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def _start_node(args: list[str], log: Path) -> RayNode:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [_ray_binary(), "start", "--block", "--disable-usage-stats",
             "--object-store-memory", str(OBJECT_STORE_BYTES),
             "--dashboard-agent-listen-port", str(free_port()), *args],
            env={**os.environ, **RAY_ENV}, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    return RayNode(proc, log)


def _wait_port(node: RayNode, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and node.proc.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    node.stop()
    raise RuntimeError(f"Ray head did not listen on 127.0.0.1:{port} within "
                       f"{START_TIMEOUT_S:.0f}s:\n{node.log.read_text(errors='replace')}")


@dataclass(frozen=True)
class Cluster:
    address: str
    head: RayNode
    temp_dir: str
    client_port: int  # the Ray Client server: ray://127.0.0.1:<client_port>


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Cluster]:
    """A one-node Ray cluster (the head, ``HEAD_CPUS`` CPUs) this process is connected to."""
    require_ray()
    import ray

    # A short temp dir (Ray's socket paths must fit 107 bytes), private to this session.
    temp_dir = tempfile.mkdtemp(prefix="bsray-", dir="/tmp")
    port = free_port()
    client_port = free_port()
    head = _start_node(
        ["--head", "--port", str(port), "--num-cpus", str(HEAD_CPUS),
         "--include-dashboard", "false", "--ray-client-server-port", str(client_port),
         "--temp-dir", temp_dir],
        Path(temp_dir) / "head.log",
    )
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    try:
        _wait_port(head, port)
        address = f"127.0.0.1:{port}"
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        yield Cluster(address, head, temp_dir, client_port)
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        head.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(temp_dir, ignore_errors=True)


def _join_node(cluster: Cluster, *args: str) -> Iterator[RayNode]:
    import ray

    before = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    node = _start_node(["--address", cluster.address, *args],
                       Path(cluster.temp_dir) / f"worker-{free_port()}.log")
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ({n["NodeID"] for n in ray.nodes() if n["Alive"]} - before):
            if time.monotonic() > deadline or node.proc.poll() is not None:
                raise RuntimeError("the Ray worker node did not join within "
                                   f"{START_TIMEOUT_S:.0f}s:\n{node.log.read_text()}")
            time.sleep(0.2)
        yield node
    finally:
        node.stop()


@pytest.fixture
def ray_worker_node(ray_cluster: Cluster) -> Iterator[RayNode]:
    """A second node (2 CPUs) joined to ``ray_cluster``; killed or stopped after the test."""
    yield from _join_node(ray_cluster, "--num-cpus", "2")


@pytest.fixture
def ray_gpu_node(ray_cluster: Cluster) -> Iterator[RayNode]:
    """A node that declares one GPU (a logical resource: Ray places by it, no GPU needed)."""
    yield from _join_node(ray_cluster, "--num-cpus", "1", "--num-gpus", "1")
