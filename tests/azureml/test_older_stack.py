"""The core install beside an older stack (NumPy 1.26, pandas 2.x, scikit-learn 1.1, MLflow
2.x), the user's own environment: deployments run with ``--env-manager local``.

These tests run only in that stack (.ci/lowest.sh's third venv, ``$VENV-oldstack``); in the
main venv (scikit-learn 1.6+, MLflow 3) they skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

sklearn = pytest.importorskip("sklearn")
mlflow = pytest.importorskip("mlflow")
if not sklearn.__version__.startswith("1.1."):
    pytest.skip(f"the older stack's tests (scikit-learn 1.1; here {sklearn.__version__})",
                allow_module_level=True)

from azureml.az_helpers import expected  # noqa: E402
from batchscore.jobs import load_spec, run_job  # noqa: E402
from batchscore.workspace import Workspace  # noqa: E402


def _labels(path: Path) -> dict[str, list[int]]:
    got: dict[str, list[int]] = {}
    for line in path.read_text().splitlines():
        name, _, label = line.split()
        got.setdefault(name, []).append(int(label))
    return got


def test_the_stack_is_the_older_one() -> None:
    import numpy
    import pandas

    assert numpy.__version__.startswith("1.26."), numpy.__version__
    assert pandas.__version__.startswith("2."), pandas.__version__
    assert mlflow.__version__.startswith("2."), mlflow.__version__


def test_pickled_model_script_job_with_env_manager_local(layout, cli, ws: Workspace) -> None:
    """heart-custom: a scikit-learn 1.1 model pickled with joblib, registered in the MLflow 2
    registry; the entry script's init() loads it from AZUREML_MODEL_DIR, run() scores CSVs."""
    root = layout("heart-custom")
    assert cli(root, "model", "create", "--name", "heart-classifier-sklearn", "--path",
               "model", "--version", "1").exit_code == 0
    result = cli(root, "job", "run", "deployment.yml", "--input", "data", "--output", "out",
                 "--env-manager", "local", "--no-progress")
    assert result.exit_code == 0, result.output
    got = _labels(root / "out" / "predictions.csv")
    assert got == expected(root / "data")
    assert sum(len(v) for v in got.values()) > 0


def test_run_job_with_a_local_model_folder(layout, ws: Workspace) -> None:
    """The same script through batchscore.jobs.run_job, the model a local folder."""
    root = layout("heart-custom")
    spec = load_spec(root / "deployment.yml", model_dir=str(root / "model"))
    job = run_job(ws, spec, [str(root / "data")], str(root / "out"))
    assert job.state == "succeeded", job.reason
    assert _labels(root / "out" / "predictions.csv") == expected(root / "data")


def test_mlflow_2_model_deploys_without_a_script(layout, cli, ws: Workspace) -> None:
    """heart-mlflow: an MLflow 2.x model (mlflow.sklearn.save_model of a 1.1 classifier),
    registered from model.yml, run as a job with --env-manager local, no scoring script."""
    root = layout("heart-mlflow")
    assert "sklearn" in (root / "model" / "MLmodel").read_text()
    assert cli(root, "model", "create", "-f", "model.yml").exit_code == 0
    result = cli(root, "job", "run", "deployment.yml", "--input", "data", "--output", "out",
                 "--env-manager", "local", "--no-progress")
    assert result.exit_code == 0, result.output
    import pandas as pd

    frame = pd.read_csv(root / "out" / "predictions.csv", names=["row", "prediction", "file"])
    want = expected(root / "data")
    assert len(frame) == sum(len(v) for v in want.values())
    for name, labels in want.items():
        part = frame[frame["file"] == name].sort_values("row")
        assert part["prediction"].tolist() == labels


def test_allow_nan_from_the_older_tag_api() -> None:
    """scikit-learn 1.1 has no sklearn.utils.get_tags: the tag comes from _get_tags()."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    from batchscore.tabular.models import _allows_nan

    X = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0] * 5, "b": [1.0, 0.0, 1.0, 0.0] * 5})
    assert _allows_nan(HistGradientBoostingRegressor(max_iter=5).fit(X, X["b"]))
    assert not _allows_nan(LinearRegression().fit(X.fillna(0), X["b"]))
    assert not _allows_nan(object())
