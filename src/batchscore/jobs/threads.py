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
"""

from __future__ import annotations

import logging
import os
import sys

from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

__all__ = ["THREAD_VARIABLES", "available_cpus", "limit_threads", "threads_per_worker"]

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


def _chosen() -> int | None:
    """The user's ``OMP_NUM_THREADS``, when it is a positive whole number."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def limit_threads(workers: int) -> int:
    """Limit this worker process's native thread pools (called once it has its environment:
    the spec's ``environment_variables`` applied). Returns the number of threads set.

    Applied to the libraries already loaded (a forked worker has its runner's NumPy, and
    their pools were sized there) through threadpoolctl and ``pyarrow.set_cpu_count``, and
    to those loaded later through :data:`THREAD_VARIABLES` (a variable the user set keeps
    its value)."""
    chosen = _chosen()
    threads = chosen if chosen is not None else threads_per_worker(workers)
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))
    why = "OMP_NUM_THREADS" if chosen is not None \
        else f"{available_cpus()} CPUs, {workers} workers"
    if chosen is None and threads >= (os.cpu_count() or 1):
        # the libraries' own default (a thread per CPU): nothing to resize, and finding the
        # loaded libraries costs threadpoolctl 4-16 ms (a realpath of every one)
        why += ": the libraries' default"
    else:
        try:
            threadpool_limits(limits=threads)
            pyarrow = sys.modules.get("pyarrow")
            if pyarrow is not None:
                pyarrow.set_cpu_count(threads)
        except Exception as exc:  # a library that refuses costs speed, never the job
            log.warning("could not limit the native thread pools to %d: %s: %s", threads,
                        type(exc).__name__, exc)
            return threads
    log.info("native threads per worker: %d (%s)", threads, why)
    return threads
