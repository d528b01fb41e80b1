"""The examples run end to end through `batchscore job run`, with their deployment YAML as is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def sh(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return done


def test_diabetes_csv_scores_every_row_in_input_order(ws, tmp_path):
    ex = EXAMPLES / "diabetes-csv"
    sh(sys.executable, str(ex / "train.py"), "--out", str(tmp_path))
    sh(sys.executable, str(ex / "make_data.py"), str(tmp_path / "data"), "--files", "3")
    sh(sys.executable, "-m", "batchscore", "job", "run", str(ex / "deployment.yml"),
       "-i", str(tmp_path / "data" / "*.csv"), "--input-format", "csv",
       "--model-dir", str(tmp_path / "model"), "-o", str(tmp_path / "out"), "--no-progress",
       env={"BATCHSCORE_WORKSPACE": str(ws.settings.root)})
    rows = pd.concat(pd.read_csv(p) for p in sorted((tmp_path / "data").glob("*.csv")))
    model = joblib.load(tmp_path / "model" / "model.joblib")
    expected = model.predict(rows.drop(columns=["id"]))
    lines = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert [int(line.split()[0]) for line in lines] == rows["id"].tolist()
    got = [float(line.split()[1]) for line in lines]
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 1e-9


def test_image_files_one_line_per_image(ws, tmp_path):
    ex = EXAMPLES / "image-files"
    sh(sys.executable, str(ex / "make_data.py"), str(tmp_path / "images"), "--count", "25")
    sh(sys.executable, "-m", "batchscore", "job", "run", str(ex / "deployment.yml"),
       "-i", str(tmp_path / "images"), "-o", str(tmp_path / "out"), "--no-progress",
       env={"BATCHSCORE_WORKSPACE": str(ws.settings.root)})
    lines = (tmp_path / "out" / "results.txt").read_text().splitlines()
    names = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert [line.split()[0] for line in lines] == names
    # The generator puts the background colour in the file name; the script must find it.
    assert all(line.split()[-1] == line.split()[0].split("_")[2].split(".")[0]
               for line in lines)
