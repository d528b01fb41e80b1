"""The container recipe: its files, and its model folder served on its own (no registry)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import sklearn
from mlflow.version import VERSION as MLFLOW_VERSION

from batchscore.mlops import promote, train_evaluate_register
from batchscore.mlops.release import SAMPLE_ROWS

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "diabetes"


@pytest.fixture
def recipe(mws, tmp_path):  # type: ignore[no-untyped-def]
    """Where the recipe goes (not written yet); diabetes/1 is in production."""
    train_evaluate_register(mws, PROJECT, overrides={"train.alpha": "1"})
    promote(mws, "diabetes")
    return tmp_path / "recipe" / "image"


@pytest.fixture
def written(cli, recipe):  # type: ignore[no-untyped-def]
    """The recipe of diabetes@production, written by the command."""
    result = cli("model", "dockerfile", "diabetes@production", "--out", str(recipe))
    assert result.exit_code == 0, result.output
    return recipe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_recipe_holds_dockerfile_requirements_model_and_readme(cli, recipe):
    result = cli("model", "dockerfile", "diabetes@production", "--out", str(recipe))
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"wrote the recipe of diabetes/1 to {recipe}\n"
                             f"build it: docker build -t batchscore-diabetes:1 {recipe}\n")
    assert sorted(p.name for p in recipe.iterdir()) == [
        "Dockerfile", "README.md", "model", "requirements.txt", "wheels"]
    docker = (recipe / "Dockerfile").read_text()
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"FROM python:{py}-slim\n" in docker
    assert "COPY requirements.txt /srv/requirements.txt\n" in docker
    assert "RUN pip install --find-links /srv/wheels -r /srv/requirements.txt\n" in docker
    assert "COPY model/ /srv/model/\n" in docker
    assert ('ENTRYPOINT ["batchscore", "model", "serve", "--model-dir", "/srv/model", '
            '"--host", "0.0.0.0", "--port", "8080"]\n') in docker
    assert "EXPOSE 8080\n" in docker and "USER scorer\n" in docker
    requirements = [line for line in (recipe / "requirements.txt").read_text().splitlines()
                    if not line.startswith("#")]
    assert requirements == [f"mlflow=={MLFLOW_VERSION}", f"scikit-learn=={sklearn.__version__}",
                            "batchscore[service,mlops]==0.1.0"]
    model = recipe / "model"
    assert (model / "MLmodel").is_file() and (model / "requirements.txt").is_file()
    assert '"name": "diabetes"' in (model / "batchscore-model.json").read_text()
    readme = (recipe / "README.md").read_text()
    assert ("docker build -t batchscore-diabetes:1 . && docker run --rm -p 8080:8080 "
            "batchscore-diabetes:1") in readme


def test_the_model_folder_serves_on_its_own(written, tmp_path):
    """`batchscore model serve --model-dir`, as the image's entrypoint runs it, with no
    workspace and no registry in reach."""
    port = free_port()
    env = {**os.environ, "BATCHSCORE_WORKSPACE": str(tmp_path / "no-workspace"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'empty.db'}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchscore", "model", "serve", "--model-dir",
         str(written / "model"), "--port", str(port)], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"{url}/ping").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the served model folder never answered"
            time.sleep(0.2)
        assert httpx.get(f"{url}/version").json() == {"model": "diabetes", "version": "1"}
        scored = httpx.post(f"{url}/invocations", json={"instances": SAMPLE_ROWS})
        assert scored.status_code == 200, scored.text
        predictions = scored.json()["predictions"]
        assert len(predictions) == 2 and np.isfinite(predictions).all()
        assert httpx.post(f"{url}/invocations",
                          json={"instances": [[*SAMPLE_ROWS[0], 0]]}).status_code == 400
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout:
            proc.stdout.close()
    assert not (tmp_path / "no-workspace").exists()  # nothing was logged anywhere


def test_bad_input(cli, written, tmp_path):
    recipe = written
    result = cli("model", "dockerfile", "diabetes@production", "--out", str(recipe))
    assert result.exit_code == 2
    assert f"--out {recipe} is not empty; choose an empty folder or pass --force" in (
        result.stderr)
    again = cli("model", "dockerfile", "diabetes/1", "--out", str(recipe), "--force")
    assert again.exit_code == 0, again.output
    missing = cli("model", "dockerfile", "nope@production", "--out", str(tmp_path / "x"))
    assert missing.exit_code == 2 and "no registered model named 'nope'" in missing.stderr
    assert not (tmp_path / "x").exists()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "is a file, not a folder" in cli("model", "dockerfile", "diabetes/1", "--out",
                                            str(a_file)).stderr
    no_model = cli("model", "serve", "--model-dir", str(tmp_path))
    assert no_model.exit_code == 2
    assert f"model folder {tmp_path} is not an MLflow model: it has no MLmodel file" in (
        no_model.stderr)
    both = cli("model", "serve", "diabetes@production", "--model-dir", str(tmp_path))
    assert both.exit_code == 2 and "give either a model reference" in both.stderr
