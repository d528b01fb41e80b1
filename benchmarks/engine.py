"""Engine overhead: a job on trivial work against a bare loop calling the same run().

Both score the same files with the same scoring script in the same run of this program:
the bare loop imports the script and calls ``run(mini_batch)`` in one process; the job runs
it through the full engine (planning, state database, worker processes, parts, logs, ordered
assembly, atomic commit). Reported: wall times, the engine's overhead per mini-batch
((job - bare) / mini-batches), and the throughput ratio.

Scaling mode (``--scaling 1000,10000,100000,1000000``): each size runs in fresh processes,
so each figure is its own: the setup (writing the files, timing the bare loop), the planning
(``submit_job``: listing, plan, state records) and the run (``execute``: the runner and its
workers). Printed per size: planning and run seconds, the engine's overhead per mini-batch,
the runner's CPU time per mini-batch, and the peak RSS of the planning process and of the
runner process (workers not counted).
With ``--resume`` the run is killed (``os._exit``, as ``kill -9``) once 90% of the
mini-batches are done, and a new process resumes the job: printed, the seconds from the
resume's start to its first newly finished mini-batch; the run time is then the killed run's
and the resume's together (one restart included).
With ``--glob`` the job's input is a wildcard (``inputs/*.txt``) instead of the folder, and
with ``--plan-only`` each size is only planned (no run): the planning's peak RSS over a glob of
N files, say.

Example:
    .venv/bin/python benchmarks/engine.py --minibatches 1000 --workers 2
    .venv/bin/python benchmarks/engine.py --scaling 1000,10000,100000 --workers 2 --resume
    .venv/bin/python benchmarks/engine.py --scaling 10000,200000 --glob --plan-only
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from batchscore import init_workspace, run_job, spec_from_mapping

SCRIPT = """
import os
def run(mini_batch):
    return [os.path.basename(p) for p in mini_batch]
"""


def bare_loop(script: Path, batches: list[list[str]]) -> tuple[float, list[str]]:
    spec = importlib.util.spec_from_file_location("bench_score", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    start = time.perf_counter()
    lines: list[str] = []
    for batch in batches:
        lines.extend(module.run(batch))
    return time.perf_counter() - start, lines


def engine(root: Path, script: Path, inputs: Path, size: int, workers: int, rep: int
           ) -> float:
    ws = init_workspace(root / f"ws{rep}")
    spec = spec_from_mapping({"scoring_script": str(script), "mini_batch_size": size,
                              "max_concurrency_per_instance": workers})
    start = time.perf_counter()
    job = run_job(ws, spec, [str(inputs)], str(root / f"out{rep}"))
    elapsed = time.perf_counter() - start
    assert job.state == "succeeded", job.reason
    ws.close()
    return elapsed


def _peak_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process alone: the runner, not its workers. On a
    shared machine it moves less than wall time does with the load of others."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _step(args: argparse.Namespace) -> dict[str, object]:
    """One step of one scaling point, in this (fresh) process."""
    root = Path(args.root)
    n = args.minibatches
    if args.step == "setup":
        script = root / "score.py"
        script.write_text(SCRIPT)
        inputs = root / "inputs"
        inputs.mkdir()
        for i in range(n):
            (inputs / f"f{i:07d}.txt").write_text(str(i))
        spec_ = importlib.util.spec_from_file_location("bench_score", script)
        assert spec_ and spec_.loader
        module = importlib.util.module_from_spec(spec_)
        spec_.loader.exec_module(module)
        start = time.perf_counter()
        with os.scandir(inputs) as entries:  # one file a mini-batch: order does not matter
            for entry in entries:
                module.run([entry.path])
        return {"bare_s": time.perf_counter() - start}
    from batchscore import init_workspace, open_workspace

    if args.step == "plan":
        from batchscore.jobs.control import submit_job

        ws = init_workspace(root / "ws", database_url=args.database or None)
        spec = spec_from_mapping({"scoring_script": str(root / "score.py"),
                                  "mini_batch_size": 1,
                                  "max_concurrency_per_instance": args.workers})
        start = time.perf_counter()
        source = str(root / "inputs") + ("/*.txt" if args.glob else "")
        job, _ = submit_job(ws, spec, [source], str(root / "out"))
        elapsed = time.perf_counter() - start
        ws.close()
        return {"plan_s": elapsed, "plan_peak_mib": _peak_mib(), "job": job.id}
    from batchscore.jobs.runner import execute
    from batchscore.state.jobs import minibatch_counts

    ws = open_workspace(root / "ws")
    first: list[float] = []
    done_at_start = [minibatch_counts(ws.engine, args.job).get("done", 0)]
    start = time.perf_counter()
    cpu = _cpu_s()

    def progress(snap) -> None:  # type: ignore[no-untyped-def]
        if not first and snap.minibatches_done > done_at_start[0]:
            first.append(time.perf_counter() - start)
        if args.step == "run-kill" and snap.minibatches_done >= 0.9 * n:
            sys.stdout.write(json.dumps({"killed_at": snap.minibatches_done,
                                         "run_s": time.perf_counter() - start,
                                         "run_cpu_s": _cpu_s() - cpu,
                                         "run_peak_mib": _peak_mib()}) + "\n")
            sys.stdout.flush()
            os._exit(9)

    job = execute(ws, args.job, progress=progress)
    elapsed = time.perf_counter() - start
    assert job.state == "succeeded", job.reason
    ws.close()
    return {"run_s": elapsed, "run_cpu_s": _cpu_s() - cpu, "run_peak_mib": _peak_mib(),
            "first_done_s": first[0] if first else None,
            "done_at_start": done_at_start[0]}


def _child(root: Path, step: str, n: int, workers: int, job: str = "", database: str = "",
           glob: bool = False) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--step", step, "--root", str(root), "--minibatches",
           str(n), "--workers", str(workers), "--job", job, "--database", database,
           *(["--glob"] if glob else [])]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"{step} of {n} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def _postgres(stack: contextlib.ExitStack, durable: bool = False) -> Callable[[int], str]:
    """A throw-away PostgreSQL server (the tests' helper, which turns ``fsync``,
    ``synchronous_commit`` and ``full_page_writes`` off); with ``durable`` they are turned
    back on, as on a production server: each commit then waits for its WAL to be flushed.
    Returns: a function that makes a new database and gives its URL."""
    from sqlalchemy import create_engine, text

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from servers import postgres_server

    server = stack.enter_context(postgres_server())
    if durable:
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(text(f"ALTER SYSTEM SET {setting} = on"))
            conn.execute(text("SELECT pg_reload_conf()"))
        deadline = time.monotonic() + 30
        while True:  # the server reads its configuration again on its own time
            with admin.connect() as conn:
                shown = [conn.execute(text(f"SHOW {setting}")).scalar() for setting in
                         ("fsync", "synchronous_commit", "full_page_writes")]
            if shown == ["on"] * 3:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"PostgreSQL did not turn durability on: {shown}")
            time.sleep(0.1)
        admin.dispose()

    def new_database(n: int) -> str:
        engine = create_engine(server, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f"CREATE DATABASE bench_{n}"))
        engine.dispose()
        return server.rsplit("/", 1)[0] + f"/bench_{n}"

    return new_database


def scaling(sizes: list[int], workers: int, resume: bool, postgres: bool = False,
            glob: bool = False, plan_only: bool = False, durable: bool = False
            ) -> list[dict[str, object]]:
    rows = []
    with contextlib.ExitStack() as stack:
        new_database = _postgres(stack, durable) if postgres else None
        for n in sizes:
            rows.append(_point(n, workers, resume,
                               new_database(n) if new_database else "", glob, plan_only))
    return rows


def _point(n: int, workers: int, resume: bool, database: str, glob: bool = False,
           plan_only: bool = False) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        row: dict[str, object] = {"minibatches": n}
        row.update(_child(root, "setup", n, workers))
        row.update(_child(root, "plan", n, workers, database=database, glob=glob))
        if plan_only:
            result = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()
                      if k != "job"}
            print(json.dumps(result), flush=True)
            return result
        if resume:
            killed = _child(root, "run-kill", n, workers, str(row["job"]))
            run = _child(root, "run", n, workers, str(row["job"]))
            row.update({"killed_at": killed["killed_at"],
                        "resume_first_done_s": run["first_done_s"],
                        "resume_done_at_start": run["done_at_start"],
                        # the whole job's run: up to the kill, then the resume
                        "run_s": float(killed["run_s"]) + float(run["run_s"]),
                        "run_cpu_s": float(killed["run_cpu_s"]) + float(run["run_cpu_s"]),
                        "run_peak_mib": max(float(killed["run_peak_mib"]),
                                            float(run["run_peak_mib"]))})
        else:
            row.update(_child(root, "run", n, workers, str(row["job"])))
        job_s = float(row["plan_s"]) + float(row["run_s"])  # type: ignore[arg-type]
        row["overhead_ms_per_minibatch"] = round(
            1000 * (job_s - float(row["bare_s"])) / n, 3)  # type: ignore[arg-type]
        row["runner_cpu_ms_per_minibatch"] = round(
            1000 * float(row["run_cpu_s"]) / n, 3)  # type: ignore[arg-type]
        result = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()
                  if k != "job"}
        print(json.dumps(result), flush=True)  # before removing the files (minutes at 1M)
    return result


def _table(rows: list[dict[str, object]], resume: bool) -> str:
    head = ("| mini-batches | planning | run | overhead / mini-batch | runner CPU / "
            "mini-batch | planning peak RSS | runner peak RSS |")
    rule = "| --- | --- | --- | --- | --- | --- | --- |"
    if resume:
        head += " killed at | resume: first new mini-batch done after |"
        rule += " --- | --- |"
    body = []
    if rows and "run_s" not in rows[0]:  # --plan-only
        return "\n".join(["| files | planning | planning peak RSS |", "| --- | --- | --- |",
                          *(f"| {r['minibatches']:,} | {r['plan_s']} s | "
                            f"{r['plan_peak_mib']} MiB |" for r in rows)])
    for r in rows:
        line = (f"| {r['minibatches']:,} | {r['plan_s']} s | {r['run_s']} s | "
                f"{r['overhead_ms_per_minibatch']} ms | "
                f"{r['runner_cpu_ms_per_minibatch']} ms | {r['plan_peak_mib']} MiB | "
                f"{r['run_peak_mib']} MiB |")
        if resume:
            line += f" {r['killed_at']:,} | {r['resume_first_done_s']} s |"
        body.append(line)
    return "\n".join([head, rule, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minibatches", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1, help="files per mini-batch")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--scaling", help="comma-separated numbers of mini-batches (of one "
                        "file each), each run in fresh processes; prints a table")
    parser.add_argument("--resume", action="store_true",
                        help="scaling mode: kill each run at 90%% and time the resume")
    parser.add_argument("--postgres", action="store_true",
                        help="scaling mode: the state database on a throw-away PostgreSQL "
                        "server (tests/servers.py) instead of SQLite")
    parser.add_argument("--durable", action="store_true",
                        help="with --postgres: fsync, synchronous_commit and "
                        "full_page_writes on (the tests' server turns them off)")
    parser.add_argument("--glob", action="store_true",
                        help="scaling mode: the input is a wildcard over the files "
                        "(inputs/*.txt), not their folder")
    parser.add_argument("--plan-only", action="store_true",
                        help="scaling mode: plan each size, do not run it")
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(_step(args)), flush=True)
        return
    if args.scaling:
        sizes = [int(x) for x in args.scaling.split(",")]
        rows = scaling(sizes, args.workers, args.resume, args.postgres, args.glob,
                       args.plan_only, args.durable)
        command = f"benchmarks/engine.py --scaling {args.scaling} --workers {args.workers}" \
            + "".join(f" --{flag.replace('_', '-')}" for flag in
                      ("resume", "postgres", "durable", "glob", "plan_only")
                      if getattr(args, flag))
        print(f"\n{command}  ({platform.machine()} Python {platform.python_version()})\n")
        print(_table(rows, args.resume))
        if args.json:
            args.json.write_text(json.dumps({"command": command, "rows": rows}, indent=2)
                                 + "\n")
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        script = root / "score.py"
        script.write_text(SCRIPT)
        inputs = root / "inputs"
        inputs.mkdir()
        n_files = args.minibatches * args.size
        for i in range(n_files):
            (inputs / f"f{i:06d}.txt").write_text(str(i))
        files = sorted(str(p) for p in inputs.iterdir())
        batches = [files[i : i + args.size] for i in range(0, n_files, args.size)]
        bare = []
        jobs = []
        for rep in range(args.repeat):  # interleaved, so drift hits both alike
            bare.append(bare_loop(script, batches)[0])
            jobs.append(engine(root, script, inputs, args.size, args.workers, rep))
    bare_s, job_s = statistics.median(bare), statistics.median(jobs)
    result = {
        "command": "benchmarks/engine.py " + " ".join(
            f"--{k} {v}" for k, v in vars(args).items() if k != "json" and v is not None),
        "machine": f"{platform.machine()} {platform.python_version()}",
        "minibatches": args.minibatches, "files_per_minibatch": args.size,
        "workers": args.workers,
        "bare_loop_s": round(bare_s, 4), "job_s": round(job_s, 4),
        "overhead_ms_per_minibatch": round(1000 * (job_s - bare_s) / args.minibatches, 3),
        "throughput_ratio_job_over_bare": round(bare_s / job_s, 5),
        "job_runs_s": [round(x, 3) for x in jobs], "bare_runs_s": [round(x, 4) for x in bare],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
