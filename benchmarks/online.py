"""Online scoring: req/s and latency of `batchscore model serve` against `mlflow models serve`.

One registered model (scikit-learn ``Ridge`` on the diabetes data, 10 features) in a throw-away
workspace, served at the same time by three real server processes on free ports of 127.0.0.1,
each started and stopped by this program with the command users run:

* **mlflow** (the baseline): ``mlflow models serve -m models:/NAME/1 --env-manager local
  -w 1`` (uvicorn, one worker process);
* **batchscore**: ``batchscore model serve NAME/1 --no-log`` (uvicorn, one process);
* **batchscore+log**: ``batchscore model serve NAME/1``, which logs every scored request to the
  data store (``InferenceLogger``: a queue and a background thread writing Parquet), as
  ``model serve`` and ``model deploy`` do by default.

One load generator drives all three: a separate process (spawned once, reused) running
closed-loop aiohttp clients (1 and 64 by default), each sending the same ``dataframe_split``
body with keep-alive, one request after the other. The first ``--warmup`` seconds of every run
are discarded; requests completed in the next ``--seconds`` seconds count. Every request carries
a unique ``X-Request-ID``. A non-200 answer or a failed connection counts as an error.

Before timing, every server must return the same predictions as the model itself for every
body. After the runs the logging server is stopped (its logger flushes on shutdown) and the
rows in the data store's ``inference-logs/`` must equal the rows of the requests it answered,
one distinct request id per answer.

Repetitions are interleaved (the servers' order rotates each repetition); the ratios reported
are medians of the per-repetition ratios, with their range. CPU seconds per request of each
server process tree and of the load generator are reported too: on a machine with one core,
client and server share it.

Example:
    .venv/bin/python benchmarks/online.py --seconds 3 --warmup 1 --repeat 6 --rows 1,100 \\
        --clients 1,64 --json benchmarks/results/online.json
    .venv/bin/python benchmarks/online.py --seconds 1 --repeat 1 --clients 1,4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MODEL = "bench-ridge"
SERVERS = ("mlflow", "batchscore", "batchscore+log")
BIN = Path(sys.executable).parent


# --------------------------------------------------------------------------- the model


def diabetes() -> pd.DataFrame:
    """The diabetes data (442 rows, 10 raw float features and ``target``)."""
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True, scaled=False).frame.astype("float64")


def register_model(ws: Any) -> tuple[str, Any]:
    """Fit a Ridge model on diabetes, log it with a signature and register ``MODEL`` version 1.

    Returns the reference ``NAME/1`` and the fitted model."""
    import mlflow
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import Ridge

    from batchscore.registry.models import artifact_location, client, use_registry

    frame = diabetes()
    x, y = frame.drop(columns="target"), frame["target"]
    model = Ridge(alpha=1.0).fit(x, y)
    use_registry(ws)
    c = client(ws)
    experiment_id = c.create_experiment(MODEL, artifact_location=f"{artifact_location(ws)}/bench")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.sklearn.log_model(  # type: ignore[attr-defined]
            model, name="model", signature=infer_signature(x, model.predict(x)),
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
    c.create_registered_model(MODEL)
    version = c.create_model_version(MODEL, info.model_uri, run_id=run.info.run_id)
    return f"{MODEL}/{version.version}", model


def request_body(rows: int) -> tuple[bytes, pd.DataFrame]:
    """A ``dataframe_split`` body of ``rows`` diabetes rows (repeated past 442) and the rows."""
    frame = diabetes().drop(columns="target")
    picked = frame.iloc[np.arange(rows) % len(frame)].reset_index(drop=True)
    body = {"dataframe_split": {"columns": list(picked.columns),
                                "data": picked.to_numpy().tolist()}}
    return json.dumps(body).encode(), picked


# --------------------------------------------------------------------------- the servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """One server process (its own session, so that it and its children stop together)."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.command, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def wait_ready(self, timeout: float) -> None:
        """Wait for ``GET /ping`` to answer 200; a server that exits or never answers fails."""
        import httpx

        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"online.py: the {self.name} server exited with code "
                                 f"{self.proc.returncode} before it was ready; its log "
                                 f"({self.log}) ends:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/ping", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"online.py: the {self.name} server did not answer /ping within "
                         f"{timeout:g} s; its log ({self.log}) ends:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the process and its children so far."""
        import psutil

        assert self.proc is not None
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return math.nan
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
        return total

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM to the server's process group (graceful: loggers flush), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def make_servers(ws: Any, ref: str, root: Path) -> dict[str, Server]:
    """The three servers of the comparison, not started yet."""
    from batchscore.registry.models import registry_uri

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BATCHSCORE_", "MLFLOW_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # mlflow runs `uvicorn` from PATH
    mlflow_env = {**env, "MLFLOW_TRACKING_URI": registry_uri(ws)}
    workspace = str(ws.settings.root)
    servers = {
        "mlflow": Server("mlflow", [str(BIN / "mlflow"), "models", "serve", "-m",
                                    f"models:/{ref}", "--env-manager", "local",
                                    "-h", "127.0.0.1", "-w", "1"], mlflow_env,
                         root / "mlflow.log"),
        "batchscore": Server("batchscore", [str(BIN / "batchscore"), "model", "serve", ref,
                                            "--host", "127.0.0.1", "--no-log",
                                            "--workspace", workspace], env,
                             root / "batchscore.log"),
        "batchscore+log": Server("batchscore+log", [str(BIN / "batchscore"), "model", "serve",
                                                    ref, "--host", "127.0.0.1",
                                                    "--workspace", workspace], env,
                                 root / "batchscore-log.log"),
    }
    for s in servers.values():
        s.command += ["-p" if s.name == "mlflow" else "--port", str(s.port)]
    return servers


# --------------------------------------------------------------------------- the load


def load(url: str, body: bytes, clients: int, warmup: float, seconds: float,
         id_prefix: str) -> dict[str, Any]:
    """Closed-loop load: ``clients`` aiohttp clients POST ``body`` to ``url`` one after another.

    Runs in the load generator's process. Requests completed in the window
    ``[warmup, warmup + seconds]`` count for req/s and latency; every answer counts in
    ``ok_total`` / ``errors_total`` (what a logging server must have logged)."""
    return asyncio.run(_drive(url, body, clients, warmup, seconds, id_prefix))


async def _drive(url: str, body: bytes, clients: int, warmup: float, seconds: float,
                 id_prefix: str) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    totals = {"ok": 0, "errors": 0, "window_errors": 0}
    samples: list[str] = []
    cpu0 = time.process_time()
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        begin, stop = start + warmup, start + warmup + seconds

        async def client(i: int) -> None:
            n = 0
            while time.perf_counter() < stop:
                headers = {"Content-Type": "application/json",
                           "X-Request-ID": f"{id_prefix}-{i}-{n}"}
                n += 1
                sent = time.perf_counter()
                problem = None
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        if resp.status != 200:
                            problem = f"HTTP {resp.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                done = time.perf_counter()
                in_window = begin <= done <= stop
                if problem is None:
                    totals["ok"] += 1
                    if in_window:
                        latencies.append(done - sent)
                else:
                    totals["errors"] += 1
                    totals["window_errors"] += in_window
                    if len(samples) < 5:
                        samples.append(problem)

        await asyncio.gather(*(client(i) for i in range(clients)))
    cpu = time.process_time() - cpu0
    lat = np.asarray(latencies) * 1000.0
    answered = len(lat)
    return {
        "requests": answered,
        "req_per_s": answered / seconds,
        "p50_ms": float(np.percentile(lat, 50)) if answered else math.nan,
        "p90_ms": float(np.percentile(lat, 90)) if answered else math.nan,
        "p99_ms": float(np.percentile(lat, 99)) if answered else math.nan,
        "errors": totals["window_errors"],
        "ok_total": totals["ok"],
        "errors_total": totals["errors"],
        "error_samples": samples,
        "client_cpu_s": cpu,
    }


def _busy() -> float:
    """CPU seconds the whole machine has spent busy (all processes, all CPUs)."""
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) \
        - getattr(t, "guest_nice", 0.0)


def _noop() -> int:
    return os.getpid()


# --------------------------------------------------------------------------- checks


def check_predictions(servers: dict[str, Server], bodies: dict[int, tuple[bytes, pd.DataFrame]],
                      model: Any) -> dict[str, Any]:
    """Every server's predictions for every body, against the model's own; SystemExit if not."""
    import httpx

    worst = 0.0
    for rows, (body, frame) in bodies.items():
        expected = np.asarray(model.predict(frame), dtype=float)
        for s in servers.values():
            resp = httpx.post(s.url + "/invocations", content=body, timeout=60,
                              headers={"Content-Type": "application/json",
                                       "X-Request-ID": f"verify-{rows}"})
            if resp.status_code != 200:
                raise SystemExit(f"online.py: {s.name} answered HTTP {resp.status_code} to the "
                                 f"{rows}-row body: {resp.text[:300]}")
            got = np.asarray(resp.json()["predictions"], dtype=float).reshape(-1)
            if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-9,
                                                               atol=1e-9):
                raise SystemExit(f"online.py: {s.name} returned different predictions for the "
                                 f"{rows}-row body: {got[:3]} ... against {expected[:3]} ...")
            worst = max(worst, float(np.max(np.abs(got - expected))))
    return {"bodies": sorted(bodies), "servers": list(servers), "max_abs_diff": worst,
            "ok": True}


def logged_rows(folder: Path) -> tuple[int, int]:
    """Rows and distinct request ids in the inference logs under ``folder`` (0, 0 if none)."""
    import pyarrow.dataset as ds

    if not folder.exists():
        return 0, 0
    table = ds.dataset(folder, format="parquet", partitioning="hive").to_table(
        columns=["request_id"])
    return table.num_rows, len(table.column("request_id").unique())


# --------------------------------------------------------------------------- summary


def _spread(values: list[float]) -> dict[str, float]:
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return {"median": math.nan, "min": math.nan, "max": math.nan}
    return {"median": statistics.median(clean), "min": min(clean), "max": max(clean)}


def summarise(runs: list[dict[str, Any]], rows_list: list[int],
              clients_list: list[int]) -> list[dict[str, Any]]:
    """Per (rows, clients) cell: each server's figures and the medians of per-rep ratios."""
    cells = []
    for rows in rows_list:
        for clients in clients_list:
            mine = [r for r in runs if r["rows"] == rows and r["clients"] == clients]
            reps = sorted({r["rep"] for r in mine})
            by = {(r["rep"], r["server"]): r for r in mine}
            cell: dict[str, Any] = {"rows": rows, "clients": clients, "servers": {},
                                    "ratios": {}}
            for name in SERVERS:
                rs = [by[rep, name] for rep in reps]
                cell["servers"][name] = {
                    "req_per_s": _spread([r["req_per_s"] for r in rs]),
                    "p50_ms": _spread([r["p50_ms"] for r in rs]),
                    "p99_ms": _spread([r["p99_ms"] for r in rs]),
                    "server_cpu_ms_per_req": _spread([r["server_cpu_ms_per_req"] for r in rs]),
                    "client_cpu_ms_per_req": _spread([r["client_cpu_ms_per_req"] for r in rs]),
                    "other_cpu_share": _spread([r["other_cpu_share"] for r in rs]),
                    "errors": sum(r["errors_total"] for r in rs),
                }

            def ratio(a: str, b: str, key: str, by: dict[Any, Any] = by,
                      reps: list[int] = reps) -> dict[str, float]:
                return _spread([by[rep, a][key] / by[rep, b][key]
                                if by[rep, b][key] else math.nan for rep in reps])

            def delta(a: str, b: str, key: str, by: dict[Any, Any] = by,
                      reps: list[int] = reps) -> dict[str, float]:
                return _spread([by[rep, a][key] - by[rep, b][key] for rep in reps])

            cell["ratios"] = {
                "batchscore_vs_mlflow_req_per_s": ratio("batchscore", "mlflow", "req_per_s"),
                "batchscore_log_vs_mlflow_req_per_s": ratio("batchscore+log", "mlflow",
                                                            "req_per_s"),
                "batchscore_vs_mlflow_p99": ratio("batchscore", "mlflow", "p99_ms"),
                "batchscore_log_vs_mlflow_p99": ratio("batchscore+log", "mlflow", "p99_ms"),
                "batchscore_vs_mlflow_req_per_cpu_s": ratio("mlflow", "batchscore",
                                                            "server_cpu_ms_per_req"),
                "batchscore_log_vs_mlflow_req_per_cpu_s": ratio("mlflow", "batchscore+log",
                                                                "server_cpu_ms_per_req"),
                "logging_req_per_s": ratio("batchscore+log", "batchscore", "req_per_s"),
                "logging_req_per_cpu_s": ratio("batchscore", "batchscore+log",
                                               "server_cpu_ms_per_req"),
                "logging_cpu_ms_per_req_delta": delta("batchscore+log", "batchscore",
                                                      "server_cpu_ms_per_req"),
                "logging_p50_delta_ms": delta("batchscore+log", "batchscore", "p50_ms"),
                "logging_p99_delta_ms": delta("batchscore+log", "batchscore", "p99_ms"),
            }
            cells.append(cell)
    return cells


def print_table(cells: list[dict[str, Any]]) -> None:
    print(f"\n{'rows':>4} {'cl':>3} {'server':15} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'srv cpu ms/req':>14} {'errors':>6}")
    for cell in cells:
        for name, s in cell["servers"].items():
            print(f"{cell['rows']:>4} {cell['clients']:>3} {name:15} "
                  f"{s['req_per_s']['median']:8.1f} {s['p50_ms']['median']:8.2f} "
                  f"{s['p99_ms']['median']:8.2f} {s['server_cpu_ms_per_req']['median']:14.2f} "
                  f"{s['errors']:6d}")
        r = cell["ratios"]
        print(f"{'':9}batchscore/mlflow req/s {r['batchscore_vs_mlflow_req_per_s']['median']:.2f}"
              f" (log {r['batchscore_log_vs_mlflow_req_per_s']['median']:.2f}), p99 "
              f"{r['batchscore_vs_mlflow_p99']['median']:.2f}, req per CPU s "
              f"{r['batchscore_vs_mlflow_req_per_cpu_s']['median']:.2f}\n"
              f"{'':9}logging: req/s {r['logging_req_per_s']['median']:.2f}, p50 "
              f"{r['logging_p50_delta_ms']['median']:+.2f} ms, p99 "
              f"{r['logging_p99_delta_ms']['median']:+.2f} ms, CPU "
              f"{r['logging_cpu_ms_per_req_delta']['median']:+.2f} ms/req")


# --------------------------------------------------------------------------- main


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of "
                                         "integers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more integers >= 1")
    return list(dict.fromkeys(values))  # each once, in the order given


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=_positive, default=3.0,
                        help="measured seconds per run (default 3)")
    parser.add_argument("--warmup", type=_positive, default=1.0,
                        help="seconds discarded at the start of every run (default 1)")
    parser.add_argument("--repeat", type=_count, default=6,
                        help="interleaved repetitions (default 6)")
    parser.add_argument("--clients", type=_int_list, default=[1, 64],
                        help="concurrent closed-loop clients, comma-separated (default 1,64)")
    parser.add_argument("--rows", type=_int_list, default=[1, 100],
                        help="rows per request body, comma-separated (default 1,100)")
    parser.add_argument("--start-timeout", type=_positive, default=180.0,
                        help="seconds to wait for each server to answer /ping (default 180)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json {args.json}: the folder {args.json.parent} does not exist")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from batchscore.workspace import init_workspace

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="online-bench-") as tmp:
        root = Path(tmp)
        ws = init_workspace(root / "ws")
        ref, model = register_model(ws)
        bodies = {rows: request_body(rows) for rows in args.rows}
        servers = make_servers(ws, ref, root)
        ctx = get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as loadgen:
            try:
                for s in servers.values():  # start together: their imports overlap
                    s.start()
                loadgen_pid = loadgen.submit(_noop).result()
                for s in servers.values():
                    s.wait_ready(args.start_timeout)
                print(f"servers ready after {time.time() - started:.1f} s "
                      f"(load generator pid {loadgen_pid})", flush=True)
                verified = check_predictions(servers, bodies, model)
                expected_logged = sum(bodies)  # the verification requests, one per body
                expected_ids = len(bodies)
                runs: list[dict[str, Any]] = []
                for rep in range(args.repeat):
                    order = SERVERS[rep % 3:] + SERVERS[:rep % 3]
                    for rows in args.rows:
                        for clients in args.clients:
                            for name in order:
                                s = servers[name]
                                cpu0, busy0, wall0 = s.cpu_seconds(), _busy(), time.monotonic()
                                res = loadgen.submit(
                                    load, s.url + "/invocations", bodies[rows][0], clients,
                                    args.warmup, args.seconds, f"r{rep}-{rows}-{clients}",
                                ).result()
                                server_cpu = s.cpu_seconds() - cpu0
                                wall = time.monotonic() - wall0
                                other = _busy() - busy0 - server_cpu - res["client_cpu_s"]
                                answered = res["ok_total"] + res["errors_total"]
                                res.update(rep=rep, server=name, rows=rows, clients=clients,
                                           server_cpu_ms_per_req=1000 * server_cpu
                                           / max(answered, 1),
                                           client_cpu_ms_per_req=1000 * res["client_cpu_s"]
                                           / max(answered, 1),
                                           server_cpu_share=server_cpu / wall,
                                           client_cpu_share=res["client_cpu_s"] / wall,
                                           other_cpu_share=max(other, 0.0) / wall)
                                runs.append(res)
                                if name == "batchscore+log":
                                    expected_logged += rows * res["ok_total"]
                                    expected_ids += res["ok_total"]
                                flag = f"  ERRORS {res['errors_total']}: " \
                                    f"{res['error_samples'][:2]}" if res["errors_total"] else ""
                                print(f"rep {rep} rows {rows:3d} clients {clients:3d} "
                                      f"{name:15s} {res['req_per_s']:8.1f} req/s  p50 "
                                      f"{res['p50_ms']:7.2f} ms  p99 {res['p99_ms']:7.2f} ms"
                                      f"  cpu ms/req srv {res['server_cpu_ms_per_req']:.2f} "
                                      f"cli {res['client_cpu_ms_per_req']:.2f}  other load "
                                      f"{res['other_cpu_share']:.2f}{flag}", flush=True)
            finally:
                codes = {name: s.stop() for name, s in servers.items()}
        rows_logged, ids_logged = logged_rows(ws.data.local_path("inference-logs"))
        ws.close()
    logging_check = {"expected_rows": expected_logged, "logged_rows": rows_logged,
                     "expected_request_ids": expected_ids, "logged_request_ids": ids_logged,
                     "ok": rows_logged == expected_logged and ids_logged == expected_ids}
    cells = summarise(runs, args.rows, args.clients)
    errors = {name: sum(r["errors_total"] for r in runs if r["server"] == name)
              for name in SERVERS}
    result = {
        "command": "benchmarks/online.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.node()} ({os.cpu_count()} vCPUs, Python "
                   f"{platform.python_version()})",
        "date": time.strftime("%Y-%m-%d"),
        "settings": {"seconds": args.seconds, "warmup": args.warmup, "repeat": args.repeat,
                     "clients": args.clients, "rows": args.rows},
        "servers": {name: " ".join([Path(s.command[0]).name, *s.command[1:]])
                    for name, s in servers.items()},
        "exit_codes": codes,
        "predictions": verified,
        "logging_check": logging_check,
        "errors": errors,
        "cells": cells,
        "runs": runs,
        "wall_s": time.time() - started,
    }
    print_table(cells)
    print(f"\npredictions: all servers agree with the model (max |diff| "
          f"{verified['max_abs_diff']:.2g})")
    print(f"request logging: {rows_logged} rows logged for {expected_logged} rows answered "
          f"({ids_logged} request ids for {expected_ids}): "
          f"{'ok' if logging_check['ok'] else 'MISMATCH'}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    failed = [f"{n} had {e} errors" for n, e in errors.items() if e]
    if not logging_check["ok"]:
        failed.append("the logged rows do not match the rows answered")
    if failed:
        print("online.py: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
