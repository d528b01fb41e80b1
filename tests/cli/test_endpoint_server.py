"""`batchscore endpoint create|list|show|invoke|delete --server URL` act through a running
service (the remote backend), with the local backend's output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BATCHSCORE_WORKSPACE"}
    return subprocess.run([sys.executable, "-m", "batchscore", *args], capture_output=True,
                          text=True, env={**env, "BATCHSCORE_WORKSPACE": "/nonexistent"})


def test_endpoint_commands_through_the_service(ws, service, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50)})
    model = tmp_path / "model"
    model.mkdir()
    joblib.dump(LinearRegression().fit(x, 3 * x["a"] - x["b"]), model / "model.joblib")
    rows = ws.data.local_path("incoming", "rows.parquet")
    rows.parent.mkdir(parents=True)
    pd.DataFrame({"id": range(30), "a": np.linspace(0, 1, 30), "b": 0.5}).to_parquet(rows)
    s = ("--server", service)

    made = cli("endpoint", "create", "lin", "--model", str(model), "--keys", "id",
               "--features", "a,b", "--mini-batch-size", "10", *s)
    assert made.returncode == 0, made.stderr
    assert made.stdout == "endpoint lin created (tabular)\n"
    script = cli("endpoint", "create", "other", "--script", str(tmp_path / "s.py"), *s)
    assert script.returncode == 2
    assert "--server creates endpoints for --model only" in script.stderr
    assert [e["name"] for e in json.loads(cli("endpoint", "list", "--json", *s).stdout)] == [
        "lin"]

    done = cli("endpoint", "invoke", "lin", "-i", "incoming/*.parquet", "-o", "scored/lin/",
               "--wait", "--no-progress", *s)
    assert done.returncode == 0, done.stderr
    queued, finished = done.stdout.splitlines()
    job_id = queued.split()[1]
    assert queued.startswith(f"job {job_id} queued (run ")
    assert finished == f"job {job_id} succeeded: 30/30 items"
    shown = json.loads(cli("endpoint", "show", "lin", "--json", *s).stdout)
    assert [(i["job_id"], i["state"]) for i in shown["invocations"]] == [(job_id, "succeeded")]
    picked = cli("endpoint", "invoke", "lin", "-i", "incoming/*.parquet", "-o", "x/", "-d",
                 "default", "--wait", "--no-progress", *s)
    assert picked.returncode == 0, picked.stderr
    picked_id = picked.stdout.split()[1]
    assert picked.stdout.splitlines()[-1] == f"job {picked_id} succeeded: 30/30 items"
    ran = json.loads(cli("deployment", "list-jobs", "default", "--endpoint-name", "lin",
                         "--json", *s).stdout)
    assert picked_id in [j["job_id"] for j in ran]
    unknown = cli("endpoint", "invoke", "lin", "-i", "incoming/*.parquet", "-o", "x/", "-d",
                  "blue", *s)
    assert unknown.returncode == 2
    assert "blue" in unknown.stderr and "Traceback" not in unknown.stderr
    assert cli("endpoint", "delete", "lin", *s).stdout == "endpoint lin deleted\n"
    missing = cli("endpoint", "show", "lin", *s)
    assert missing.returncode == 2 and "the service answered 404" in missing.stderr
    assert "Traceback" not in missing.stderr
