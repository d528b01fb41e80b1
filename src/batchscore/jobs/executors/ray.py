"""The Ray executor: one Ray actor per worker, on this machine or on a Ray cluster.

Each actor calls :func:`~batchscore.jobs.worker.worker_init` once (the script's ``init()``,
stdout/stderr to the job's logs) and then runs many mini-batches through
:func:`~batchscore.jobs.worker.run_task`, exactly like a local worker process. Workers read
inputs from and write parts to the stores themselves, so a remote node needs no shared file
system. How attempts end:

- ``run()`` returned or raised: OK or ERROR (FATAL for an ``init()`` that failed or a broken
  return contract), reported by the actor itself, so no user exception crosses the wire;
- past ``retry_settings.timeout``: the actor is killed (``ray.kill``) and replaced: TIMEOUT;
- the actor's process died (segfault, ``os._exit``, OOM, killed): DIED, and it is replaced;
- the actor's node died (a pre-empted spot VM, a stopped node): LOST, run again without
  counting an attempt (at most :data:`MAX_LOST` times per mini-batch, then DIED);
- the actor class or the job's settings cannot be loaded on the workers: FATAL.

A mini-batch is handed to an actor only once that actor is up, so the timeout counts the
mini-batch's own run, never the start of a replacement actor.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import socket
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ...errors import SpecError, UsageError
from ..kinds import ContractError, WorkerConfig, worker_name
from ..worker import InitError, run_task, worker_init
from .base import Completion, Executor, Outcome

__all__ = ["ENV_FORWARD", "ENV_PLACEMENT_TIMEOUT", "MAX_LOST", "RayExecutor", "import_ray"]

ENV_FORWARD = "BATCHSCORE_RAY_ENV"  # comma-separated names of driver variables for the workers
ENV_PLACEMENT_TIMEOUT = "BATCHSCORE_RAY_PLACEMENT_TIMEOUT"  # seconds to wait for a fitting node
CLUSTER_PLACEMENT_TIMEOUT_S = 600.0  # an autoscaler starting a GPU node from zero takes minutes
CONNECT_TIMEOUT_S = 10.0
MAX_LOST = 3
_STOP_TIMEOUT_S = 30.0
_START_WAIT_S = 10.0  # at close, for actors still running their init()
_NODE_DEATH = re.compile(r"node (has )?died|node .* (was )?(terminated|removed|dead)", re.I)


def import_ray() -> Any:
    """The ``ray`` module, or a clear error naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise UsageError(
            "the ray executor needs Ray, which is not installed; install the extra: "
            "pip install 'batchscore[ray]'"
        ) from None
    return ray


class _Worker:
    """The actor: one worker process set up once, then many mini-batches."""

    def __init__(self, cfg: WorkerConfig, env: dict[str, str]) -> None:
        os.environ.update(env)
        worker_init(cfg)

    def ready(self) -> tuple[str, str]:
        import ray

        return worker_name(), ray.get_runtime_context().get_node_id()

    def run(self, idx: int, attempt: int, items: list[Any]) -> tuple[str, Any, str]:
        try:
            return "ok", run_task(idx, attempt, items), worker_name()
        except InitError as exc:
            return "init", str(exc), worker_name()
        except ContractError as exc:
            return "contract", str(exc), worker_name()
        except BaseException:  # run() may raise anything; send text, not the exception
            return "error", traceback.format_exc(), worker_name()

    def stop(self) -> None:
        """Run the script's ``shutdown()``, then end this actor's process."""
        from ray.actor import exit_actor

        from .. import worker

        worker._shutdown()
        exit_actor()


@dataclass
class _Slot:
    handle: Any
    ready_ref: Any
    started: float
    worker: str | None = None
    node: str | None = None
    task: tuple[int, int, float] | None = None  # idx, attempt, timeout
    task_ref: Any = None
    deadline: float = 0.0


@dataclass
class _Pending:
    idx: int
    attempt: int
    items: list[Any] = field(repr=False)
    timeout: float


class RayExecutor(Executor):
    """Ray actors; ``instance_count × max_concurrency_per_instance`` of them.

    With no ``address`` a local Ray instance is started (or the one this process is already
    connected to is used); with ``ray://host:10001``, ``host:6379`` or ``auto`` the job joins
    that cluster. ``num_cpus`` / ``num_gpus`` of the spec are each actor's resources.
    """

    def __init__(self, address: str | None = None) -> None:
        self.address = address or None
        self._ray: Any = None
        self._slots: dict[int, _Slot] = {}
        self._queue: deque[_Pending] = deque()
        self._lost: dict[int, int] = {}
        self._fatal: str | None = None
        self._workers = 1
        self._start_deaths = 0

    # -- the contract ----------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self._workers * 2

    @property
    def in_flight(self) -> int:
        return len(self._queue) + sum(s.task is not None for s in self._slots.values())

    def start(self, cfg: WorkerConfig, workers: int) -> None:
        self._ray = ray = import_ray()
        self._workers = workers
        spec = cfg.spec
        self._need = {"CPU": float(spec.num_cpus if spec.num_cpus is not None else 1)}
        if spec.num_gpus:
            self._need["GPU"] = float(spec.num_gpus)
        _connect(ray, self.address, workers * self._need["CPU"])
        names = [n.strip() for n in os.environ.get(ENV_FORWARD, "").split(",") if n.strip()]
        env = {n: os.environ[n] for n in names if n in os.environ}
        self._actor_class = ray.remote(_Worker).options(
            num_cpus=self._need["CPU"], num_gpus=self._need.get("GPU", 0),
            max_restarts=0, max_task_retries=0, scheduling_strategy="SPREAD",
        )
        self._cfg, self._env = cfg, env
        try:
            pickle.dumps((cfg, env))
        except Exception as exc:
            raise SpecError(
                f"the job's settings could not be sent to the Ray workers "
                f"(they must pickle): {type(exc).__name__}: {exc}"
            ) from None
        for slot in range(workers):
            self._spawn(slot)
        self._await_placement()

    def submit(self, idx: int, attempt: int, items: list[Any], timeout: float) -> None:
        assert self._ray is not None, "start() first"
        self._queue.append(_Pending(idx, attempt, items, timeout))

    def wait(self, timeout: float) -> list[Completion]:
        ray = self._ray
        until = time.monotonic() + timeout
        while True:
            out: list[Completion] = []
            if self._fatal is not None:
                while self._queue:
                    p = self._queue.popleft()
                    out.append(Completion(p.idx, p.attempt, Outcome.FATAL, error=self._fatal))
            self._dispatch()
            refs = {s.ready_ref: (n, False) for n, s in self._slots.items()
                    if s.ready_ref is not None}
            refs.update({s.task_ref: (n, True) for n, s in self._slots.items()
                         if s.task_ref is not None})
            now = time.monotonic()
            deadlines = [s.deadline for s in self._slots.values() if s.task is not None]
            wake = min([until, *deadlines])
            if refs and not out:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=max(0.0, wake - now))
                if ready:
                    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
                for ref in ready:
                    slot, is_task = refs[ref]
                    out.extend(self._finished(slot) if is_task else self._started(slot))
            elif not out:
                time.sleep(max(0.0, min(wake - now, 0.05)))
            out.extend(self._timeouts())
            if out or time.monotonic() >= until:
                return out

    def close(self) -> None:
        ray = self._ray
        if ray is None:
            return
        stops = []
        # An actor still in its init() (it started after the work ran out) finishes it
        # first: init() and shutdown() come in pairs. One that was never placed is killed.
        starting = [slot.ready_ref for slot in self._slots.values() if slot.worker is None]
        if starting:
            with contextlib.suppress(Exception):
                ray.wait(starting, num_returns=len(starting), timeout=_START_WAIT_S)
        for slot in self._slots.values():
            with contextlib.suppress(Exception):
                started = slot.worker is not None or bool(
                    ray.wait([slot.ready_ref], timeout=0)[0])
                if started:
                    stops.append(slot.handle.stop.remote())
        if stops:
            with contextlib.suppress(Exception):
                ray.wait(stops, num_returns=len(stops), timeout=_STOP_TIMEOUT_S)
        self.abort()

    def abort(self) -> None:
        for slot in self._slots.values():
            self._kill(slot)
        self._slots.clear()
        self._queue.clear()

    # -- actors ----------------------------------------------------------------------------
    def _spawn(self, n: int) -> None:
        handle = self._actor_class.remote(self._cfg, self._env)
        self._slots[n] = _Slot(handle, handle.ready.remote(), time.monotonic())

    def _kill(self, slot: _Slot) -> None:
        with contextlib.suppress(Exception):
            self._ray.kill(slot.handle, no_restart=True)

    def _replace(self, n: int) -> None:
        self._kill(self._slots[n])
        self._spawn(n)

    def _dispatch(self) -> None:
        for slot in self._slots.values():
            if not self._queue:
                return
            if slot.worker is None or slot.task is not None:
                continue
            p = self._queue.popleft()
            slot.task = (p.idx, p.attempt, p.timeout)
            slot.task_ref = slot.handle.run.remote(p.idx, p.attempt, p.items)
            slot.deadline = time.monotonic() + p.timeout

    def _started(self, n: int) -> list[Completion]:
        slot = self._slots[n]
        ref, slot.ready_ref = slot.ready_ref, None
        try:
            slot.worker, slot.node = self._ray.get(ref)
            self._start_deaths = 0
        except self._ray.exceptions.RayActorError as exc:
            if exc.actor_init_failed:  # the class or the settings do not load on the workers
                self._fatal = (
                    "the Ray workers could not start: batchscore (the same version) must be "
                    "installed on every Ray node, and the job's settings must load there:\n"
                    f"{exc}"
                )
                return []
            self._start_deaths += 1
            if self._start_deaths > 5 * self._workers:
                self._fatal = f"Ray workers keep dying as they start; the last one:\n{exc}"
                return []
            self._spawn(n)
        return []

    def _finished(self, n: int) -> list[Completion]:
        ray = self._ray
        slot = self._slots[n]
        assert slot.task is not None
        idx, attempt, _ = slot.task
        ref = slot.task_ref
        slot.task, slot.task_ref = None, None
        try:
            status, value, worker = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            lost = self._node_lost(slot, exc)
            self._replace(n)
            if lost and self._lost.get(idx, 0) < MAX_LOST:
                self._lost[idx] = self._lost.get(idx, 0) + 1
                return [Completion(idx, attempt, Outcome.LOST, worker=slot.worker,
                                   error=f"the Ray node of worker {slot.worker} was lost; "
                                   "run again")]
            return [Completion(
                idx, attempt, Outcome.DIED, worker=slot.worker,
                error="the worker process died while running this mini-batch "
                f"({'its node was lost' if lost else 'Ray actor died'}):\n{exc}",
            )]
        except ray.exceptions.RayError as exc:  # the result could not be fetched
            self._replace(n)
            return [Completion(idx, attempt, Outcome.DIED, worker=slot.worker,
                               error=f"the Ray task failed: {exc}")]
        if status == "ok":
            return [Completion(idx, attempt, Outcome.OK, result=value)]
        if status == "init":
            return [Completion(idx, attempt, Outcome.FATAL, worker=worker,
                               error=f"loading the scoring script failed:\n{value}")]
        if status == "contract":
            return [Completion(idx, attempt, Outcome.FATAL, error=value, worker=worker)]
        return [Completion(idx, attempt, Outcome.ERROR, error=value, worker=worker)]

    def _timeouts(self) -> list[Completion]:
        now = time.monotonic()
        out = []
        for n, slot in list(self._slots.items()):
            if slot.task is None or now < slot.deadline:
                continue
            idx, attempt, timeout = slot.task
            self._replace(n)
            out.append(Completion(
                idx, attempt, Outcome.TIMEOUT, worker=slot.worker,
                error=f"run() did not finish within retry_settings.timeout={timeout:g}s; "
                "the worker was killed and replaced",
            ))
        return out

    def _node_lost(self, slot: _Slot, exc: Exception) -> bool:
        if getattr(exc, "preempted", False) or _NODE_DEATH.search(str(exc)):
            return True
        if slot.node is None:
            return False
        try:
            alive = {n["NodeID"] for n in self._ray.nodes() if n.get("Alive")}
        except Exception:
            return False
        return slot.node not in alive

    def _await_placement(self) -> None:
        """Fail clearly when no node can ever hold one worker (instead of waiting forever).

        Actors are created first, so that an autoscaler sees the demand and adds a node; the
        request is checked against the live nodes until one fits or the placement timeout
        (``BATCHSCORE_RAY_PLACEMENT_TIMEOUT``; 0 on a local instance) passes.
        """
        default = CLUSTER_PLACEMENT_TIMEOUT_S if self.address else 0.0
        limit = float(os.environ.get(ENV_PLACEMENT_TIMEOUT, default))
        until = time.monotonic() + limit
        while True:
            nodes = [n for n in self._ray.nodes() if n.get("Alive")]
            if any(_fits(n.get("Resources", {}), self._need) for n in nodes):
                return
            if time.monotonic() >= until:
                break
            time.sleep(1.0)
        self.abort()
        have = "; ".join(
            f"{n.get('NodeManagerAddress', '?')}: " + ", ".join(
                f"{k}={v:g}" for k, v in sorted(n.get("Resources", {}).items())
                if k in ("CPU", "GPU"))
            for n in nodes) or "no live nodes"
        want = ", ".join(f"num_{k.lower()}s={v:g}" for k, v in self._need.items())
        raise SpecError(
            f"no Ray node can hold one worker with {want} (waited {limit:g}s); the cluster's "
            f"nodes have: {have}. Lower resources.num_cpus / num_gpus, or add a node that "
            f"has them (an autoscaling cluster may need longer: set {ENV_PLACEMENT_TIMEOUT})"
        )


def _fits(have: dict[str, float], need: dict[str, float]) -> bool:
    return all(have.get(k, 0.0) >= v for k, v in need.items())


CLIENT_START_TRIES = 3


def _client_server_start_failed(exc: BaseException) -> bool:
    """Whether joining failed because the Ray client proxy could not start the server it
    starts for each client, which on a loaded head is transient (a new try usually works):
    the start timed out ("Starting Ray client server failed"), or the proxy's own start-up
    code failed (its traceback, sent back as the init's error, is in ``start_specific_server``:
    for instance Ray's psutil check of a server process that had just exited)."""
    text = str(exc)
    return "Starting Ray client server failed" in text or (
        "Initialization failure from server" in text and "start_specific_server" in text)


def _connect(ray: Any, address: str | None, cpus: float) -> None:
    """Join the cluster at ``address``, or start a local instance; reuse a live connection."""
    if ray.is_initialized():
        return
    common: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if not address:
        ray.init(num_cpus=max(os.cpu_count() or 1, int(cpus + 0.999)),
                 include_dashboard=False, **common)
        return
    tried = _probe(address)
    for attempt in range(CLIENT_START_TRIES):
        try:
            ray.init(address=address, **common)
            return
        except Exception as exc:
            if _client_server_start_failed(exc) and attempt + 1 < CLIENT_START_TRIES:
                with contextlib.suppress(Exception):
                    ray.shutdown()
                time.sleep(2.0 * (attempt + 1))
                continue
            raise UsageError(
                f"could not join the Ray cluster at {address!r} ({tried}): "
                f"{type(exc).__name__}: {exc}"
            ) from None


def _probe(address: str) -> str:
    """Check within :data:`CONNECT_TIMEOUT_S` that something listens at ``address``."""
    if address == "auto":
        return "address 'auto': $RAY_ADDRESS or the cluster started on this machine"
    hostport = address.removeprefix("ray://").split("/", 1)[0]
    host, _, port_text = hostport.rpartition(":")
    if not host or not port_text.isdigit():
        raise UsageError(
            f"Ray address {address!r} is not ray://HOST:PORT, HOST:PORT or 'auto'"
        )
    try:
        with socket.create_connection((host, int(port_text)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise UsageError(
            f"the Ray cluster at {address!r} does not answer: a TCP connection to "
            f"{host}:{port_text} failed within {CONNECT_TIMEOUT_S:g}s ({exc}). Start one with "
            "`ray start --head`, or fix executor.ray_address / --ray-address"
        ) from None
    return f"{host}:{port_text} accepts TCP connections"
