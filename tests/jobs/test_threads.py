"""A worker's native thread pools hold its share of the machine's CPUs (jobs/threads.py)."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy
import pytest
from threadpoolctl import threadpool_info

from batchscore.jobs import run_job, spec_from_mapping
from batchscore.jobs import threads as threads_mod
from batchscore.jobs.threads import available_cpus, threads_per_worker

SEEN = """
    import json, os
    def run(mini_batch):
        import numpy, pyarrow
        from threadpoolctl import threadpool_info
        pools = threadpool_info()
        here = os.path.dirname(os.path.dirname(numpy.__file__))  # numpy.libs/ beside numpy/
        seen = {"omp": os.environ.get("OMP_NUM_THREADS"),
                "blas": os.environ.get("OPENBLAS_NUM_THREADS"),
                "most": max(p["num_threads"] for p in pools),
                "numpy": [p["num_threads"] for p in pools if p["user_api"] == "blas"
                          and p["filepath"].startswith(os.path.join(here, "numpy"))],
                "arrow": pyarrow.cpu_count()}
        return [json.dumps(seen, separators=(",", ":")) for _ in mini_batch]
"""


def test_the_cpus_are_divided_among_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert available_cpus() == 16
    assert [threads_per_worker(w) for w in (1, 2, 4, 5, 16, 32, 0)] == [16, 8, 4, 3, 1, 1, 16]


def test_without_an_affinity_the_machines_count(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(pid: int) -> set[int]:
        raise OSError("not here")

    monkeypatch.setattr(os, "sched_getaffinity", refuse, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert available_cpus() == 6
    assert threads_per_worker(4) == 1


@pytest.mark.parametrize("value", ["", "0", "-2", "two", " 4 "])
def test_only_a_positive_whole_number_is_the_users_choice(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert threads_mod._chosen() == (4 if value == " 4 " else None)


def _seen(ws, script, files, tmp_path: Path, **settings: object) -> dict:  # type: ignore[no-untyped-def]
    spec = spec_from_mapping({"scoring_script": str(script(SEEN)), "mini_batch_size": 1,
                              **settings})
    job = run_job(ws, spec, [str(files(2))], str(tmp_path / "out"))
    assert job.state == "succeeded", job.reason
    lines = {line for line in (tmp_path / "out/predictions.csv").read_text().splitlines()}
    assert len(lines) == 1, lines  # both workers alike
    return json.loads(lines.pop())  # type: ignore[no-any-return]


def _no_users_choice(monkeypatch: pytest.MonkeyPatch, start: str) -> None:
    """Workers started by ``start``, with no thread count chosen in the environment."""
    monkeypatch.setenv("BATCHSCORE_WORKER_START", start)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)


@pytest.mark.parametrize("workers", [2, 1])
@pytest.mark.parametrize("start", ["fork", "spawn", "forkserver"])
def test_each_worker_gets_its_share_of_the_cpus(ws, script, files, tmp_path, monkeypatch,
                                                start: str, workers: int) -> None:
    """Forked, the runner's NumPy was loaded with a pool per CPU: sized as each worker
    forks; spawned, the libraries load after the variables are set; forked by the fork
    server, NumPy was loaded there, and the server holds its pools at one thread (what most
    workers want): a job of one worker raises them to a thread per CPU again. Arrow's pool
    each way."""
    _no_users_choice(monkeypatch, start)
    seen = _seen(ws, script, files, tmp_path, max_concurrency_per_instance=workers)
    n = threads_per_worker(workers)
    # NumPy's own BLAS (found: the test fails without it) holds n threads; no pool holds more
    # (a library may hold fewer: opencv-python-headless 4.8's OpenBLAS 0.3.3 keeps 1)
    assert seen["numpy"] == [n]
    assert seen["most"] <= n
    assert seen["arrow"] == n
    assert (seen["omp"], seen["blas"]) == (str(n), str(n))


@pytest.mark.parametrize("start", ["fork", "spawn", "forkserver"])
def test_the_users_omp_num_threads_wins(ws, script, files, tmp_path, monkeypatch,
                                        start: str) -> None:
    monkeypatch.setenv("BATCHSCORE_WORKER_START", start)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    seen = _seen(ws, script, files, tmp_path, max_concurrency_per_instance=2,
                 environment_variables={"OMP_NUM_THREADS": "3"})
    assert seen["numpy"] == [3]
    assert seen["most"] <= 3
    assert seen["arrow"] == 3
    assert (seen["omp"], seen["blas"]) == ("3", "3")


def _refuse_resizing(monkeypatch: pytest.MonkeyPatch, why: str) -> None:
    """limit_threads' resize raises RuntimeError(why) (in a worker forked after this too)."""
    def refuse(limits: int) -> None:
        raise RuntimeError(why)

    monkeypatch.setattr(threads_mod, "threadpool_limits", refuse)


def test_a_library_that_refuses_costs_speed_not_the_job(monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    _refuse_resizing(monkeypatch, "this BLAS cannot be limited")
    for name in threads_mod.THREAD_VARIABLES:  # set here: undone after the test
        monkeypatch.setenv(name, "2")
    with caplog.at_level("WARNING", logger="batchscore.worker"):
        assert threads_mod.limit_threads(4) == 2
    assert "could not limit the native thread pools to 2: RuntimeError: this BLAS cannot " \
           "be limited" in caplog.text


def test_one_worker_on_every_cpu_leaves_the_pools_as_they_are(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Nothing to resize (the libraries' default is a thread per CPU): no library scan."""
    def scanned(limits: int) -> None:
        raise AssertionError("the loaded libraries were scanned")

    monkeypatch.setattr(threads_mod, "threadpool_limits", scanned)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    for name in threads_mod.THREAD_VARIABLES:
        monkeypatch.setenv(name, "")  # recorded, so that what the call sets is undone
        monkeypatch.delenv(name)
    assert threads_mod.limit_threads(1) == 4
    assert os.environ["OPENBLAS_NUM_THREADS"] == "4"


def _numpy_blas() -> list[int]:
    """The threads of NumPy's own BLAS in this process (as SEEN finds it)."""
    here = os.path.dirname(os.path.dirname(numpy.__file__))
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"
            and p["filepath"].startswith(os.path.join(here, "numpy"))]


def test_a_forked_worker_inherits_its_pools_sized(ws, script, files, tmp_path,  # type: ignore[no-untyped-def]
                                                  monkeypatch) -> None:
    """The runner sizes its pools as each worker forks (a forked OpenBLAS that is resized
    starts threads that spin): the worker finds them sized and sets nothing. Before, each
    worker resized its own (here refused: its NumPy kept the runner's pool of a thread per
    CPU)."""
    if (os.cpu_count() or 1) < 2 or _numpy_blas() == [1]:
        pytest.skip("NumPy's BLAS holds one thread already: nothing would tell")
    _no_users_choice(monkeypatch, "fork")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    before = _numpy_blas()
    _refuse_resizing(monkeypatch, "the worker resized its pools")  # inherited by the workers
    seen = _seen(ws, script, files, tmp_path, max_concurrency_per_instance=4)
    assert seen["numpy"] == [1]  # 4 CPUs, 4 workers
    assert seen["arrow"] == 1
    assert _numpy_blas() == before  # the runner's own pools given back


def test_sizing_for_a_fork_gives_the_pools_back(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Sized while the child forks, the parent's pools are what they were after, and the
    child knows what it inherited."""
    before = _numpy_blas()
    sizing = threads_mod.ForkSizing(1)
    context = multiprocessing.get_context("fork")
    queue = context.SimpleQueue()

    def child() -> None:
        queue.put((_numpy_blas(), threads_mod._inherited()))

    process = context.Process(target=child)
    with sizing.forking():
        process.start()
    process.join()
    assert queue.get() == ([1], 1)
    assert _numpy_blas() == before
    assert threads_mod._inherited() is None  # this process was not forked sized


def test_pools_that_cannot_be_sized_for_a_fork_are_left_to_the_worker(monkeypatch,  # type: ignore[no-untyped-def]
                                                                       caplog) -> None:
    """A library that refuses as the runner sizes for a fork: the worker still forks, knows
    it inherited nothing (and sizes its own), and the next fork may take the lock again."""
    sizing = threads_mod.ForkSizing(1)

    def refuse(**limits: object) -> None:
        raise RuntimeError("this BLAS cannot be limited")

    monkeypatch.setattr(sizing._controller, "limit", refuse)
    context = multiprocessing.get_context("fork")
    queue = context.SimpleQueue()

    def child() -> None:
        queue.put(threads_mod._inherited())

    process = context.Process(target=child)
    with caplog.at_level("WARNING", logger="batchscore.worker"), sizing.forking():
        process.start()
    process.join()
    assert queue.get() is None
    assert "could not size the native thread pools to 1 for a worker: RuntimeError: this " \
           "BLAS cannot be limited" in caplog.text
    with sizing.forking():  # the lock was given back
        pass


def test_a_worker_forked_while_sizing_may_fork_sized_workers_of_its_own() -> None:
    """A worker is forked while its parent holds the sizing's lock: in the worker the lock
    is free (a job run from a worker would otherwise wait for it forever)."""
    context = multiprocessing.get_context("fork")
    queue = context.SimpleQueue()

    def child() -> None:
        queue.put(threads_mod._fork_lock.acquire(blocking=False))  # held: copied so

    process = context.Process(target=child)
    with threads_mod.ForkSizing(1).forking():
        process.start()
    process.join()
    assert queue.get() is True
