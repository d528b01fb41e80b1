"""The threads a worker's native libraries may use: this machine's CPUs shared among the job's
workers on it.

NumPy's BLAS, OpenMP (scikit-learn), Arrow's CPU pool and ONNX Runtime each start one thread
per CPU by default. Left alone, W worker processes on a machine of C CPUs run W x C such
threads: they preempt each other, and BLAS threads spin while they wait for work (measured on a
2-vCPU machine: a 10M-row tabular job with 2 workers spent 6.9 s of CPU where the single-process
loop spent 3.6 s; with one thread each, 3.6 s, and its wall time halved:
``benchmarks/TABULAR.md``). Every worker therefore gets ``C // W`` threads (at least one), the
rule of joblib's loky workers (Ray and Dask give a worker one thread per CPU it holds).

The user decides instead with ``OMP_NUM_THREADS``, in the job spec's ``environment_variables``
or the runner's environment: that number is then used, for every library below.

A forked worker that resizes OpenBLAS restarts its thread pool (OpenBLAS does so lazily after a
fork, at the first call that sets a size) and every new OpenBLAS thread spins for about 0.1 s
before it sleeps: measured here, the worker's first Parquet read took 110 ms instead of 30 (two
OpenBLAS copies loaded, NumPy's and SciPy's: two spinning threads beside the reader). So the
pools are sized where the workers fork from, around each fork (:class:`ForkSizing`, used by the
local executor; the fork server sizes its own once, :func:`size_for_forks`), and a worker whose
libraries came sized as it wants them leaves them alone.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from threadpoolctl import (  # type: ignore[import-untyped]
    ThreadpoolController,
    threadpool_limits,
)

__all__ = ["THREAD_VARIABLES", "ForkSizing", "available_cpus", "fork_sizing", "limit_threads",
           "size_for_forks", "threads_for", "threads_per_worker"]

# what libraries loaded later (and the worker's child processes) read; OMP_NUM_THREADS also
# sizes Arrow's CPU pool where it is created after this
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

log = logging.getLogger("batchscore.worker")


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity: ``taskset``, a cpuset), else the
    machine's count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """This machine's CPUs divided among ``workers`` worker processes, at least one each."""
    return max(1, available_cpus() // max(1, workers))


def _chosen(environ: Mapping[str, str] | None = None) -> int | None:
    """The user's ``OMP_NUM_THREADS`` (in ``environ``, else this process's environment), when
    it is a positive whole number."""
    value = (os.environ if environ is None else environ).get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def threads_for(workers: int, environ: Mapping[str, str] | None = None) -> int | None:
    """The threads each of ``workers`` workers with the environment ``environ`` (else this
    process's) gives its native libraries, or None where it leaves them at their default (a
    thread per CPU: one worker on every CPU, no ``OMP_NUM_THREADS``)."""
    chosen = _chosen(environ)
    if chosen is not None:
        return chosen
    threads = threads_per_worker(workers)
    return None if threads >= (os.cpu_count() or 1) else threads


@dataclass(frozen=True)
class _Sized:
    pid: int  # the process that sized its libraries' pools for the workers it forks
    threads: int


# the sizes this process's native pools held when it was forked (set in its parent while the
# fork ran: a worker reads it as it starts), or that it gave them for the workers it forks
_sized: _Sized | None = None
_fork_lock = threading.Lock()  # one sizing at a time (a pool's manager thread forks too)


def _inherited() -> int | None:
    """The threads this process's native pools were sized to by the process it was forked
    from, or None."""
    return _sized.threads if _sized is not None and _sized.pid != os.getpid() else None


class ForkSizing:
    """This process's native thread pools sized to ``threads`` while a worker forks from it,
    then given back what they were: the worker inherits them sized and sets nothing (a
    forked OpenBLAS that is resized starts threads that spin, see the module's text). The
    loaded libraries are found once, here (4-16 ms: a path lookup of every one), not in
    every worker."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._controller = ThreadpoolController()

    @contextmanager
    def forking(self) -> Iterator[None]:
        global _sized
        with _fork_lock:
            try:
                limiter = self._controller.limit(limits=self.threads)
            except Exception as exc:  # the worker sizes its own: speed, never the job
                log.warning("could not size the native thread pools to %d for a worker: "
                            "%s: %s", self.threads, type(exc).__name__, exc)
                yield
                return
            before, _sized = _sized, _Sized(os.getpid(), self.threads)
            try:
                yield
            finally:
                _sized = before
                try:
                    limiter.restore_original_limits()
                except Exception as exc:  # this process's speed, never the fork's outcome
                    log.warning("could not give the native thread pools back their sizes: "
                                "%s: %s", type(exc).__name__, exc)


def _after_fork_in_child() -> None:
    """A child forked while a thread of its parent held the lock (a worker is forked inside
    :meth:`ForkSizing.forking`) gets a free one: it may run a job of its own."""
    global _fork_lock
    _fork_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX: where processes fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def fork_sizing(workers: int, environ: Mapping[str, str]) -> ForkSizing | None:
    """The :class:`ForkSizing` for workers that will run with ``environ``, or None where they
    leave their libraries at the default, or where the libraries cannot be found or sized
    (then each worker sizes its own, as a spawned one does)."""
    threads = threads_for(workers, environ)
    if threads is None:
        return None
    try:
        return ForkSizing(threads)
    except Exception as exc:  # speed, never the job
        log.warning("could not find the native thread pools: %s: %s", type(exc).__name__, exc)
        return None


def size_for_forks(threads: int = 1) -> None:
    """Size this process's native thread pools to ``threads`` for good, for a process that
    only forks workers (the fork server): a worker that wants that many sets nothing."""
    global _sized
    threadpool_limits(limits=threads)
    _sized = _Sized(os.getpid(), threads)


def limit_threads(workers: int) -> int:
    """Limit this worker process's native thread pools (called once it has its environment:
    the spec's ``environment_variables`` applied). Returns the number of threads set.

    Applied to the libraries already loaded (a forked worker has its runner's NumPy, and
    their pools were sized there) through threadpoolctl and ``pyarrow.set_cpu_count``, and
    to those loaded later through :data:`THREAD_VARIABLES` (a variable the user set keeps
    its value)."""
    wanted = threads_for(workers)  # None: the libraries' default
    threads = wanted if wanted is not None else threads_per_worker(workers)
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))
    why = "OMP_NUM_THREADS" if _chosen() is not None \
        else f"{available_cpus()} CPUs, {workers} workers"
    inherited = _inherited()
    if inherited is None and wanted is None:  # (a forked worker's may have been resized)
        # the libraries' own default (a thread per CPU): nothing to resize, and finding the
        # loaded libraries costs threadpoolctl 4-16 ms (a realpath of every one)
        why += ": the libraries' default"
    else:
        try:
            if inherited == threads:
                why += ": sized before the fork"
            else:
                threadpool_limits(limits=threads)
            pyarrow = sys.modules.get("pyarrow")
            if pyarrow is not None and pyarrow.cpu_count() != threads:
                pyarrow.set_cpu_count(threads)
        except Exception as exc:  # a library that refuses costs speed, never the job
            log.warning("could not limit the native thread pools to %d: %s: %s", threads,
                        type(exc).__name__, exc)
            return threads
    log.info("native threads per worker: %d (%s)", threads, why)
    return threads
