"""Engine overhead: a job on trivial work against a bare loop calling the same run().

Both score the same files with the same scoring script in the same run of this program:
the bare loop imports the script and calls ``run(mini_batch)`` in one process; the job runs
it through the full engine (planning, state database, worker processes, parts, logs, ordered
assembly, atomic commit). Reported: wall times, the engine's overhead per mini-batch
((job - bare) / mini-batches), and the throughput ratio.

Example:
    .venv/bin/python benchmarks/engine.py --minibatches 1000 --workers 2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import tempfile
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minibatches", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1, help="files per mini-batch")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
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
