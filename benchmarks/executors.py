"""Executors: job start-up time and per-mini-batch overhead of ray against local.

Both executors run the same trivial job (``run()`` returns the file names) in the same run of
this program, interleaved. Start-up is the wall time of a one-mini-batch job; the overhead
per mini-batch is ((job of N mini-batches) - (one-mini-batch job)) / (N - 1) with W workers,
i.e. what each mini-batch costs the job on top of the scoring work. Ray is measured cold
(a local Ray instance started by the job: ``ray.init`` included) and warm (the process is
already connected; the job still starts its own actors, which is what every job pays on a
warm cluster).

Example:
    .venv/bin/python benchmarks/executors.py --minibatches 200 --workers 2 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
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


def job(root: Path, name: str, executor: str, script: Path, inputs: str, workers: int
        ) -> float:
    ws = init_workspace(root / f"ws-{name}")
    spec = spec_from_mapping({"scoring_script": str(script), "mini_batch_size": 1,
                              "max_concurrency_per_instance": workers})
    start = time.perf_counter()
    done = run_job(ws, spec, [inputs], str(root / f"out-{name}"), executor=executor)
    elapsed = time.perf_counter() - start
    assert done.state == "succeeded", done.reason
    ws.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minibatches", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    times: dict[str, list[float]] = {k: [] for k in (
        "local_start", "local_n", "ray_cold_start", "ray_start", "ray_n")}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        script = root / "score.py"
        script.write_text(SCRIPT)
        inputs = root / "inputs"
        inputs.mkdir()
        for i in range(args.minibatches):
            (inputs / f"f{i:06d}.txt").write_text(str(i))
        one = str(inputs / "f000000.txt")
        many = str(inputs)
        w = args.workers
        for rep in range(args.repeat):  # interleaved, so drift hits both alike
            if ray.is_initialized():
                ray.shutdown()
            times["ray_cold_start"].append(job(root, f"rc{rep}", "ray", script, one, w))
            times["ray_start"].append(job(root, f"r1{rep}", "ray", script, one, w))
            times["ray_n"].append(job(root, f"rn{rep}", "ray", script, many, w))
            times["local_start"].append(job(root, f"l1{rep}", "local", script, one, w))
            times["local_n"].append(job(root, f"ln{rep}", "local", script, many, w))
    med = {k: statistics.median(v) for k, v in times.items()}
    n = args.minibatches
    result = {
        "command": "benchmarks/executors.py " + " ".join(
            f"--{k} {v}" for k, v in vars(args).items() if k != "json" and v is not None),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python "
                   f"{platform.python_version()}, ray {ray.__version__}",
        "minibatches": n, "workers": w,
        "local_startup_s": round(med["local_start"], 3),
        "ray_startup_warm_s": round(med["ray_start"], 3),
        "ray_startup_cold_s": round(med["ray_cold_start"], 3),
        "local_overhead_ms_per_minibatch": round(
            1000 * (med["local_n"] - med["local_start"]) / (n - 1), 2),
        "ray_overhead_ms_per_minibatch": round(
            1000 * (med["ray_n"] - med["ray_start"]) / (n - 1), 2),
        "runs_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
