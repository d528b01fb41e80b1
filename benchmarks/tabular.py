"""Tabular batch scoring: rows/s of a batchscore job against a bare loop and Ray Data.

Three ways score the same Parquet files with the same scikit-learn model and write the same
predictions (key column + prediction) as Parquet, in the same run of this program:

* **bare loop**: one process reads each file with pyarrow, calls ``model.predict`` and writes
  the predictions: the floor any framework is measured against;
* **ray data**: ``ray.data.read_parquet(...).map_batches(Predictor, concurrency=W)``
  ``.write_parquet(...)`` on a local Ray instance (started before the clock runs);
* **batchscore**: a ``tabular`` job (the engine behind ``batchscore endpoint invoke``) with W
  local worker processes: planning, state records, parts, commit included; the workspace
  (its state database) is created before the clock runs, as ``batchscore init`` is once.
  The clock stops when the job returns, committed (a tabular job's workers are stopped after
  that, by a thread its process waits for before it exits);
* **batchscore, 1 worker** (``--one-worker``): the same job with one worker process, against
  the same single-process bare loop: the engine's own cost, with no second worker sharing
  the CPUs (each of W workers gets the CPUs divided by W for its native thread pools; one
  worker keeps them all, as the bare loop does).

* **batchscore, on a thread** (``--thread``): the same job run from a thread, as the
  service's run slots run jobs: its workers are forked by the fork server (started when this
  program starts, as the service starts it), key ``batchscore-thread``; and the same with
  ``BATCHSCORE_WORKER_START=spawn``, key ``batchscore-thread-spawn``: how the service started
  them before (a fresh interpreter per worker, importing everything). Neither has a
  ``cpu_s`` (the fork server's workers are not this program's children).

* **fresh processes** (``--floor``): the bare loop's work split over W processes forked for
  it (file i to process i mod W, each with its share of the CPUs for its thread pools, as a
  job's workers get), key ``fresh-W``: what any engine that starts its workers for each job
  pays at least (the forks, each new process's first use of its memory, its model's load),
  with nothing of batchscore's own.

* **commands** (``--commands``): the bare loop as a user's script run with ``python``
  (``benchmarks/bare_score.py``), key ``bare-script``, against ``batchscore endpoint invoke
  ENDPOINT --input ... --output ... --wait``, key ``batchscore-command``: each a fresh process
  timed from its start to its exit (the interpreter's start, the imports, the work, the exit),
  as a user meets them. The workspace and the endpoint (the same model, keys, features,
  workers and mini-batch size as the job above) are made before the clock.

* **the service** (``--service``): the same endpoint invoked through a running ``batchscore
  serve`` (started before the clock on 127.0.0.1, the inputs uploaded into its data store),
  key ``batchscore-service``: from the request's start to the job's ``job-finished`` event (the
  service's clock is this machine's): the request, the run slot, planning, the workers (forked
  by the service's fork server), the commit. The client polls the job every 0.2 s only to know
  when to read its events. The first job after the service starts may wait for the fork
  server's imports: use ``--warmup 1``.

Many models (``--groups``): the files carry a ``group`` column and every group has its own
model (a folder in hive layout ``models/group=G/model.joblib``). The bare loop does
``groupby`` + one ``predict`` per group with every model loaded once; the job uses
``group_by: [group]`` (each worker loads the models it meets and caches them).

Each figure is the median of ``--repeat`` interleaved repetitions; ratios are against the bare
loop of the same run. ``--warmup N`` first runs every way N times untimed (a fresh process's
first bare loop pays for its memory's first use, up to twice its later time here).

Streams (``--events N``): events/s of the landing path (a consumer group read, tumbling
windows, Parquet landing with its ledger, acknowledgements) against the broker alone (the
same entries XADDed, read with XREADGROUP and XACKed, nothing landed) on a redis-server this
program starts on 127.0.0.1.

Example:
    .venv/bin/python benchmarks/tabular.py --rows 1000000 --workers 2 --repeat 3
    .venv/bin/python benchmarks/tabular.py --rows 1000000 --groups 15 --skip-ray
    .venv/bin/python benchmarks/tabular.py --rows 1000000 --skip-ray --one-worker
    .venv/bin/python benchmarks/tabular.py --rows 1000000 --skip-ray --thread --warmup 1
    .venv/bin/python benchmarks/tabular.py --rows 1000000 --skip-ray --floor --warmup 1
    .venv/bin/python benchmarks/tabular.py --rows 1000000 --skip-ray --commands --warmup 1
    .venv/bin/python benchmarks/tabular.py --rows 1000000 --skip-ray --service --warmup 1
    .venv/bin/python benchmarks/tabular.py --events 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess  # nosec B404  # the benchmark's own commands
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from bare_score import FEATURES, score_file  # benchmarks/: the bare loop as a user's script
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from batchscore.jobs.executors.local import start_worker_server
from batchscore.jobs.threads import fork_sizing, limit_threads

if TYPE_CHECKING:
    from batchscore.workspace import Workspace



def make_data(root: Path, rows: int, files: int, groups: int, seed: int = 0) -> list[Path]:
    """``files`` Parquet files of ``rows`` rows in all: id, group, f0..f7 (row groups of 64k)."""
    rng = np.random.default_rng(seed)
    out = []
    per = rows // files
    for i in range(files):
        n = per if i < files - 1 else rows - per * (files - 1)
        table = pa.table({
            "id": np.arange(i * per, i * per + n, dtype=np.int64),
            "group": rng.integers(0, max(groups, 1), n, dtype=np.int64),
            **{c: rng.standard_normal(n) for c in FEATURES},
        })
        path = root / "data" / f"part-{i:03d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, row_group_size=65_536)
        out.append(path)
    return out


def train(seed: int) -> object:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.standard_normal((5_000, len(FEATURES))), columns=FEATURES)
    y = (x["f0"] + 0.5 * x["f1"] - x["f2"] + rng.normal(0, 0.5, len(x)) > 0).astype(int)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)


def save_models(root: Path, groups: int) -> Path:
    if groups <= 1:
        folder = root / "model"
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(train(0), folder / "model.joblib")
        return folder
    folder = root / "models"
    base = train(0)
    for g in range(groups):
        target = folder / f"group={g}"
        target.mkdir(parents=True, exist_ok=True)
        joblib.dump(base, target / "model.joblib")  # same weights: the cost is in the loading
    return folder


def bare_loop(files: list[Path], models: Path, groups: int, out: Path) -> None:
    out.mkdir(parents=True)
    if groups <= 1:
        model = joblib.load(models / "model.joblib")
        for i, path in enumerate(files):
            score_file(model, path, out / f"part-{i:05d}.parquet")
        return
    loaded: dict[int, object] = {}
    for i, path in enumerate(files):
        frame = pq.read_table(path).to_pandas()
        parts = []
        for g, rows in frame.groupby("group", sort=False):
            model = loaded.get(int(g))
            if model is None:
                model = loaded[int(g)] = joblib.load(models / f"group={g}" / "model.joblib")
            parts.append(pd.DataFrame({"id": rows["id"], "group": rows["group"],
                                       "prediction": model.predict(rows[FEATURES])}))
        pq.write_table(pa.Table.from_pandas(pd.concat(parts), preserve_index=False),
                       out / f"part-{i:05d}.parquet")


def _fresh_worker(files: list[Path], numbers: list[int], models: Path, out: Path,
                  workers: int) -> None:
    limit_threads(workers)  # the share a job's worker takes
    model = joblib.load(models / "model.joblib")
    for i, path in zip(numbers, files, strict=True):
        score_file(model, path, out / f"part-{i:05d}.parquet")


def fresh_processes(files: list[Path], models: Path, workers: int, out: Path) -> None:
    """The bare loop's work on ``workers`` processes forked for it (one model), each forked
    with its thread pools sized as a job's workers are (a forked OpenBLAS that is resized
    starts threads that spin: ``src/batchscore/jobs/threads.py``)."""
    out.mkdir(parents=True)
    context = multiprocessing.get_context("fork")
    numbers = list(range(len(files)))
    procs = [context.Process(target=_fresh_worker,
                             args=(files[w::workers], numbers[w::workers], models, out, workers))
             for w in range(workers)]
    sizing = fork_sizing(workers, os.environ)
    for proc in procs:
        with sizing.forking() if sizing is not None else contextlib.nullcontext():
            proc.start()
    for proc in procs:
        proc.join()
    failed = [proc.exitcode for proc in procs if proc.exitcode]
    assert not failed, f"fresh processes exited with {failed}"


class _RayPredictor:
    def __init__(self, model_path: str) -> None:
        self.model = joblib.load(model_path)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"id": batch["id"], "prediction": self.model.predict(batch[FEATURES])})


def ray_data(files: list[Path], models: Path, workers: int, batch: int, out: Path) -> None:
    import ray

    ds = ray.data.read_parquet([str(p) for p in files])
    ds = ds.map_batches(_RayPredictor, fn_constructor_args=(str(models / "model.joblib"),),
                        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
                        batch_size=batch, batch_format="pandas")
    ds.write_parquet(str(out))


def batchscore_job(ws: Workspace, files: list[Path], models: Path, groups: int,
                   workers: int, batch: int, out: Path) -> None:
    """The job in ``ws``, a workspace made before the clock runs (``batchscore init`` is
    done once, not per job: creating its state database costs 0.3-0.7 s here)."""
    from batchscore import run_job
    from batchscore.tabular.job import tabular_spec

    spec = tabular_spec(str(models), group_by=["group"] if groups > 1 else [],
                        keys=["id", "group"] if groups > 1 else ["id"], features=FEATURES,
                        mini_batch_size=batch, workers=workers)
    job = run_job(ws, spec, [str(p) for p in files], str(out) + "/", executor="local")
    assert job.state == "succeeded", job.reason


def batchscore_job_on_thread(start: str | None, *args: object) -> None:
    """:func:`batchscore_job` on a thread, as the service's run slots run jobs; ``start``:
    ``$BATCHSCORE_WORKER_START`` for it (None: the default, the fork server)."""
    errors: list[BaseException] = []

    def slot() -> None:
        try:
            batchscore_job(*args)  # type: ignore[arg-type]
        except BaseException as exc:  # re-raised on the main thread
            errors.append(exc)

    before = os.environ.pop("BATCHSCORE_WORKER_START", None)
    if start is not None:
        os.environ["BATCHSCORE_WORKER_START"] = start
    try:
        thread = threading.Thread(target=slot, name="benchmark-run-slot")
        thread.start()
        thread.join()
    finally:
        os.environ.pop("BATCHSCORE_WORKER_START", None)
        if before is not None:
            os.environ["BATCHSCORE_WORKER_START"] = before
    if errors:
        raise errors[0]


def _events(n: int, sensors: int = 15) -> list[dict[str, object]]:
    """``n`` readings of ``sensors`` sensors, one per sensor per second, in time order."""
    start = 1535497200.0  # 2018-08-28 23:00 UTC, like the real data
    return [{"device": str(i % sensors // 5 + 1), "sensor": str(i % 5 + 1),
             "timestamp": start + i // sensors, "value": float(i % 97)} for i in range(n)]


def stream_benchmark(root: Path, events: int, repeat: int) -> dict[str, object]:
    """Events/s landed by the stream consumer against the broker alone, on a local Redis."""
    import sys

    import redis

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from batchscore import init_workspace
    from batchscore.streaming import consume, create_stream, send_events
    from batchscore.streaming.ingest import MAX_BATCH
    from servers import redis_server  # the tests' throw-away redis-server on a free port

    raws = _events(events)
    times: dict[str, list[float]] = {"broker": [], "landing": [], "send": []}
    with redis_server() as url:
        client = redis.Redis.from_url(url)
        for rep in range(repeat):
            # the broker alone: append, read in the group, acknowledge; nothing lands
            key = f"bare-{rep}"
            client.xgroup_create(key, "g", id="0", mkstream=True)
            fields = [{"device": e["device"], "sensor": e["sensor"],
                       "timestamp": repr(e["timestamp"]), "value": repr(e["value"])}
                      for e in raws]
            for i in range(0, events, MAX_BATCH):
                pipe = client.pipeline(transaction=True)
                for f in fields[i:i + MAX_BATCH]:
                    pipe.xadd(key, f)
                pipe.execute()
            start = time.perf_counter()
            seen = 0
            while seen < events:
                got = client.xreadgroup("g", "c", {key: ">"}, count=5000)
                ids = [entry_id for _, entries in got for entry_id, _ in entries]
                seen += len(ids)
                pipe = client.pipeline(transaction=False)
                for j in range(0, len(ids), 1000):
                    pipe.xack(key, "g", *ids[j:j + 1000])
                pipe.execute()
            times["broker"].append(time.perf_counter() - start)
            # the landing path
            ws = init_workspace(root / f"ws-stream-{rep}")
            create_stream(ws, "plant", redis_url=url, redis_key=f"plant-{rep}",
                          window="60s", lateness="0s", max_future="100000d")
            start = time.perf_counter()
            for i in range(0, events, MAX_BATCH):
                send_events(ws, "plant", raws[i:i + MAX_BATCH])
            times["send"].append(time.perf_counter() - start)
            start = time.perf_counter()
            stats = consume(ws, "plant", max_events=events, close_all=True, batch=5000)
            times["landing"].append(time.perf_counter() - start)
            assert stats.events == events, f"landed {stats.events} of {events} events"
            ws.close()
            print(f"rep {rep} broker {events / times['broker'][-1]:10,.0f} ev/s  landing "
                  f"{events / times['landing'][-1]:10,.0f} ev/s  send "
                  f"{events / times['send'][-1]:10,.0f} ev/s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    # each repetition times the broker and then the landing path: their ratio is the figure
    # least moved by what the rest of the machine does meanwhile
    per_rep = [b / lnd for b, lnd in zip(times["broker"], times["landing"], strict=True)]
    return {"events": events, "seconds": times, "median_s": med,
            "events_per_s": {k: events / v for k, v in med.items()},
            "landing_vs_broker": med["broker"] / med["landing"],
            "landing_vs_broker_per_rep": {"median": statistics.median(per_rep),
                                          "min": min(per_rep), "max": max(per_rep),
                                          "all": per_rep}}


def _batchscore_command() -> list[str]:
    """The ``batchscore`` console script of this interpreter's environment (as a user runs
    it), or ``python -m batchscore`` where there is none."""
    script = Path(sys.executable).with_name("batchscore")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "batchscore"]


def make_endpoint(root: Path, models: Path, workers: int, batch: int) -> Path:
    """A workspace holding endpoint ``bench`` (the job's model, keys, features, workers and
    mini-batch size), made with the command line before the clock; its folder."""
    ws = root / "ws-commands"
    cmd = _batchscore_command()
    subprocess.run([*cmd, "init", "-w", str(ws)], check=True, stdout=subprocess.DEVNULL)  # nosec B603
    subprocess.run([*cmd, "endpoint", "create", "bench", "--model", str(models), "--keys", "id",
                    "--features", ",".join(FEATURES), "--workers", str(workers),
                    "--mini-batch-size", str(batch), "-w", str(ws)],
                   check=True, stdout=subprocess.DEVNULL)  # nosec B603
    return ws


def bare_script(files: list[Path], models: Path, out: Path) -> None:
    script = Path(__file__).with_name("bare_score.py")
    subprocess.run([sys.executable, str(script), str(models / "model.joblib"), str(out),  # nosec B603
                    *map(str, files)], check=True)


def batchscore_command(ws: Path, files: list[Path], out: Path) -> None:
    pattern = str(files[0].parent / "*.parquet")
    subprocess.run([*_batchscore_command(), "endpoint", "invoke", "bench", "-i", pattern,  # nosec B603
                    "-o", f"{out}/", "--wait", "--no-progress", "-w", str(ws)],
                   check=True, stdout=subprocess.DEVNULL)


class Service:
    """``batchscore serve`` on the workspace ``ws`` (from :func:`make_endpoint`), on a free
    port of 127.0.0.1, with ``files`` copied into its data store's ``in/``."""

    def __init__(self, ws: Path, files: list[Path]) -> None:
        inbox = ws / "data" / "in"
        inbox.mkdir(parents=True)
        for path in files:
            shutil.copy(path, inbox / path.name)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.proc = subprocess.Popen(  # nosec B603
            [*_batchscore_command(), "serve", "--port", str(port), "-w", str(ws)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        listening = threading.Event()
        self.output: list[str] = []

        def read() -> None:  # the service's log, read to its end (a full pipe would stop it)
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                if "Uvicorn running on" in line:  # it listens (its token was written before)
                    listening.set()
            listening.set()  # it exited

        threading.Thread(target=read, name="benchmark-service-log", daemon=True).start()
        listening.wait()
        if self.proc.poll() is not None:
            raise RuntimeError(f"batchscore serve exited with {self.proc.returncode}: "
                               + "".join(self.output[-20:]))
        token = (ws / "service" / "admin.token").read_text().strip()
        # imported here, not at the top: this program is the main module that every worker
        # forked by the fork server (--thread) runs again, and the client's modules are not
        # among what the fork server preloads (0.47 s a worker, every job)
        from batchscore.backend.remote import RemoteBackend

        self.backend = RemoteBackend(f"http://127.0.0.1:{port}", token)

    def score(self, out: str) -> float:
        """Invoke the endpoint and follow the job as ``--wait`` does; seconds from the
        request's start to the job's ``job-finished`` event."""
        from batchscore.cli._common import Report  # see __init__

        client = self.backend.client
        started = time.time()
        job_id = client.invoke_endpoint("bench", ["in/*.parquet"], out).job_id
        code = self.backend.follow(job_id, Report(progress=False))
        assert code == 0, client.get_job(job_id).reason
        events = client.job_logs(job_id).events
        return max(e["time"] for e in events if e["event"] == "job-finished") - started

    def stop(self) -> None:
        self.backend.client.close()
        self.proc.terminate()
        self.proc.wait()


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _cpu() -> float:
    """CPU seconds of this process (every thread) and of its children it has reaped."""
    own, children = (resource.getrusage(who)
                     for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _reap_workers() -> None:
    """Wait for the thread that stops a finished job's workers (after the clock): their CPU
    time counts once they are reaped."""
    for thread in threading.enumerate():
        if thread.name == "batchscore-pool-close":
            thread.join()


def _rows_out(out: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in out.rglob("*.parquet"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--groups", type=int, default=1, help="many models: groups (>1)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=131_072, help="rows per mini-batch")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=0,
                        help="untimed repetitions of every way first (a fresh process's first "
                             "bare loop pays for its memory: up to 2x its later time here)")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--one-worker", action="store_true",
                        help="also time the job with 1 worker (key batchscore-1)")
    parser.add_argument("--floor", action="store_true",
                        help="also time the bare loop's work on W processes forked for it "
                             "(key fresh-W): the least an engine that starts workers per job "
                             "pays")
    parser.add_argument("--thread", action="store_true",
                        help="also time the job run on a thread (the service's way), its "
                             "workers from the fork server and spawned (keys "
                             "batchscore-thread, batchscore-thread-spawn)")
    parser.add_argument("--commands", action="store_true",
                        help="also time the bare loop as a script and `batchscore endpoint "
                             "invoke --wait`, each a fresh process, start to exit (keys "
                             "bare-script, batchscore-command)")
    parser.add_argument("--service", action="store_true",
                        help="also time the endpoint invoked through `batchscore serve` "
                             "(key batchscore-service)")
    parser.add_argument("--events", type=int, help="measure the stream landing path instead")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.events:
        with tempfile.TemporaryDirectory() as tmp:
            result = stream_benchmark(Path(tmp), args.events, args.repeat)
        result.update(command=f"benchmarks/tabular.py --events {args.events} --repeat "
                      f"{args.repeat}", date=time.strftime("%Y-%m-%d"),
                      machine=f"{platform.node()} ({os.cpu_count()} vCPUs)")
        print(json.dumps({k: result[k] for k in ("events_per_s", "landing_vs_broker",
                                                 "landing_vs_broker_per_rep")}, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    load_before = os.getloadavg()
    use_ray = not args.skip_ray and args.groups <= 1
    if use_ray:
        import ray

        # W actors of 1 CPU each, plus 1 logical CPU for the read and write tasks (with only
        # W, the actor pool takes every CPU and the reads never run)
        ray.init(num_cpus=args.workers + 1, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
    from batchscore import init_workspace

    times: dict[str, list[float]] = {"bare": [], "batchscore": []}
    cpu: dict[str, list[float]] = {}
    if args.one_worker:
        times["batchscore-1"] = []
    if use_ray:
        times["ray"] = []
    fresh = f"fresh-{args.workers}"
    if args.floor and args.groups <= 1:
        times[fresh] = []
    if args.thread:
        start_worker_server()  # as the service does when it starts
        times["batchscore-thread"] = []
        times["batchscore-thread-spawn"] = []
    if (args.commands or args.service) and args.groups > 1:
        parser.error("--commands, --service: one model only (--groups 1)")
    if args.commands:
        times["bare-script"] = []
        times["batchscore-command"] = []
    if args.service:
        times["batchscore-service"] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = make_data(root, args.rows, args.files, args.groups)
        models = save_models(root, args.groups)
        command_ws = make_endpoint(root, models, args.workers, args.batch) \
            if args.commands or args.service else None
        service = Service(command_ws, files) if command_ws and args.service else None
        try:
            for rep in range(-args.warmup, args.repeat):
                for name in times:
                    out = root / f"out-{name}-{rep}"
                    cpu_start = _cpu()
                    if name == "bare":
                        elapsed = _timed(lambda o=out: bare_loop(files, models, args.groups, o))
                    elif name == "ray":
                        elapsed = _timed(lambda o=out: ray_data(files, models, args.workers,
                                                                args.batch, o))
                    elif name == fresh:
                        elapsed = _timed(lambda o=out: fresh_processes(files, models, args.workers,
                                                                       o))
                    elif name == "batchscore-service":
                        assert service is not None and command_ws is not None
                        elapsed = service.score(out.name + "/")
                        out = command_ws / "data" / out.name
                    elif name == "bare-script":
                        elapsed = _timed(lambda o=out: bare_script(files, models, o))
                    elif name == "batchscore-command":
                        assert command_ws is not None
                        elapsed = _timed(lambda o=out: batchscore_command(command_ws, files, o))
                    elif name.startswith("batchscore-thread"):
                        start = "spawn" if name.endswith("-spawn") else None
                        ws = init_workspace(root / f"ws-{name}-{rep}")
                        elapsed = _timed(lambda o=out, w=ws, m=start: batchscore_job_on_thread(
                            m, w, files, models, args.groups, args.workers, args.batch, o))
                        ws.close()
                        _reap_workers()
                    else:
                        workers = 1 if name == "batchscore-1" else args.workers
                        ws = init_workspace(root / f"ws-{name}-{rep}")
                        elapsed = _timed(lambda o=out, w=ws, n=workers: batchscore_job(
                            w, files, models, args.groups, n, args.batch, o))
                        ws.close()
                        _reap_workers()
                    rows = _rows_out(out)
                    assert rows == args.rows, f"{name}: wrote {rows} rows, expected {args.rows}"
                    if rep >= 0:  # not a warm-up
                        # Ray's work, and the fork server's workers', is done in processes that
                        # are not this program's children
                        if name not in ("ray", "batchscore-service") \
                                and not name.startswith("batchscore-thread"):
                            cpu.setdefault(name, []).append(_cpu() - cpu_start)
                        times[name].append(elapsed)
                    shutil.rmtree(out, ignore_errors=True)
                    print(f"{'warm-up' if rep < 0 else f'rep {rep}'} {name:12s} {elapsed:7.2f} s  "
                          f"{args.rows / elapsed:12,.0f} rows/s", flush=True)
        finally:
            if service is not None:
                service.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "command": "benchmarks/tabular.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k not in ("json", "skip_ray", "one_worker", "thread", "floor", "commands", "service")
            and v is not None)
            + (" --skip-ray" if args.skip_ray else "")
            + (" --one-worker" if args.one_worker else "")
            + (" --thread" if args.thread else "")
            + (" --floor" if args.floor else "")
            + (" --commands" if args.commands else "")
            + (" --service" if args.service else ""),
        "machine": f"{platform.node()} ({os.cpu_count()} vCPUs, Python "
                   f"{platform.python_version()})",
        "date": time.strftime("%Y-%m-%d"),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "rows": args.rows, "groups": args.groups, "workers": args.workers,
        "seconds": times,
        "median_s": med,
        "rows_per_s": {k: args.rows / v for k, v in med.items()},
        "ratio_vs_bare": {k: med["bare"] / v for k, v in med.items()},
        # CPU seconds (every process and thread of the way, the job's workers included):
        # what the work costs, whatever else the machine runs at the same time
        "cpu_s": cpu,
        "cpu_median_s": {k: statistics.median(v) for k, v in cpu.items()},
        "cpu_ratio_vs_bare": {k: statistics.median(cpu["bare"]) / statistics.median(v)
                              for k, v in cpu.items()},
    }
    if args.commands:  # the command against the script: both from the interpreter's start
        result["command_vs_script"] = med["bare-script"] / med["batchscore-command"]
        result["command_vs_script_cpu"] = (statistics.median(cpu["bare-script"])
                                           / statistics.median(cpu["batchscore-command"]))
    print(json.dumps({k: result[k] for k in ("median_s", "rows_per_s", "ratio_vs_bare",
                                             "cpu_median_s", "cpu_ratio_vs_bare",
                                             "command_vs_script", "command_vs_script_cpu")
                      if k in result}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
