"""--env-manager virtualenv: the deployment's environment becomes a cached virtualenv, and
the workers run the script in it while the driver stays in batchscore's environment."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from batchscore.errors import InputError, SpecError
from batchscore.jobs.environment import environment_requirements
from batchscore.registry.envs import build_env, env_key
from batchscore.workspace import Workspace


def test_conda_file_becomes_pip_requirements(tmp_path: Path) -> None:
    (tmp_path / "conda.yaml").write_text(
        "dependencies:\n  - python=3.8\n  - pip\n  - conda-forge::numpy=1.26.4\n"
        "  - pip:\n    - scikit-learn==1.1.3\n    - mlflow<3\n")
    assert environment_requirements({"conda_file": "conda.yaml"}, tmp_path, "d.yml") == [
        "numpy==1.26.4", "scikit-learn==1.1.3", "mlflow<3"]
    assert environment_requirements("azureml:AzureML-sklearn@latest", tmp_path, "d") == []
    inline = {"conda_file": {"dependencies": [{"pip": ["six==1.16.0"]}]}}
    assert environment_requirements(inline, tmp_path, "d") == ["six==1.16.0"]
    with pytest.raises(SpecError, match=r"conda_file 'nope\.yaml' does not exist"):
        environment_requirements({"conda_file": "nope.yaml"}, tmp_path, "d.yml")


def test_job_runs_in_the_deployment_environment(layout, cli, ws: Workspace) -> None:
    """six 1.16.0 in the job's environment, another six in batchscore's; two workers share
    the one cached environment."""
    import six

    assert six.__version__ != "1.16.0"
    root = layout("six-env")
    result = cli(root, "job", "run", "deployment.yml", "--input", "data", "--output", "out",
                 "--env-manager", "virtualenv", "--no-progress")
    assert result.exit_code == 0, result.output
    lines = sorted((root / "out" / "predictions.csv").read_text().splitlines())
    env = build_env(["six==1.16.0"]).parent.parent  # cached: at once
    assert lines == [f"{n}.txt 1.16.0 {env}" for n in "abc"]
    assert Path(sys.prefix) != env
    # local (the default) runs the same script in batchscore's environment
    result = cli(root, "job", "run", "deployment.yml", "--input", "data", "--output", "out2",
                 "--no-progress")
    assert result.exit_code == 0, result.output
    assert all(f" {six.__version__} " in line
               for line in (root / "out2" / "predictions.csv").read_text().splitlines())


def test_an_environment_that_cannot_be_built_is_one_error(layout, cli, ws: Workspace) -> None:
    root = layout("six-env")
    (root / "environment" / "conda.yaml").write_text(
        "dependencies:\n  - pip:\n    - six==0.0.0.999\n")
    result = cli(root, "job", "run", "deployment.yml", "--input", "data", "--output", "out",
                 "--env-manager", "virtualenv", "--no-progress")
    assert result.exit_code == 2, result.output
    assert "the environment cannot be built" in result.output
    assert "six" in result.output and "Traceback" not in result.output
    assert not (root / "out").exists()
    with pytest.raises(InputError, match="cannot be built"):
        build_env(["six==0.0.0.999"])
    assert env_key(["a", "b"]) == env_key(["b", "a"])


def test_a_script_failing_in_its_environment_fails_its_mini_batch(layout, cli,
                                                                  ws: Workspace) -> None:
    root = layout("six-env")
    (root / "code" / "score.py").write_text(
        "def run(mini_batch):\n    raise ValueError('bad batch')\n")
    result = cli(root, "job", "run", "deployment.yml", "--input", "data", "--output", "out",
                 "--env-manager", "virtualenv", "--no-progress", "--max-retries", "0")
    assert result.exit_code == 0, result.output  # error_threshold -1: failures allowed
    from batchscore.jobs import job_logs, list_jobs

    (job,) = list_jobs(ws)
    assert (job.items_succeeded, job.items_failed) == (0, 3)
    assert "ValueError: bad batch" in job_logs(ws, job.id).errors


def test_a_missing_conda_file_matters_under_virtualenv_only(layout, cli, ws: Workspace
                                                           ) -> None:
    root = layout("six-env")
    (root / "environment" / "conda.yaml").unlink()
    result = cli(root, "job", "run", "deployment.yml", "--input", "data", "--output", "out",
                 "--env-manager", "virtualenv")
    assert result.exit_code == 2, result.output
    assert "environment.conda_file 'environment/conda.yaml' does not exist" in result.output
    result = cli(root, "job", "run", "deployment.yml", "--input", "data", "--output", "out",
                 "--no-progress")
    assert "No module named 'six'" not in result.output  # six is in batchscore's environment
    assert result.exit_code == 0, result.output


def test_another_python_is_said(layout, cli, ws: Workspace) -> None:
    root = layout("six-env")
    conda = root / "environment" / "conda.yaml"
    conda.write_text(conda.read_text().replace("python=3.11", "python=3.8"))
    result = cli(root, "job", "run", "deployment.yml", "--input", "data", "--output", "out",
                 "--env-manager", "virtualenv", "--no-progress")
    assert result.exit_code == 0, result.output
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert (f"note: the environment asks for Python 3.8; its virtualenv uses this machine's "
            f"Python {here}") in result.output


def test_a_deployment_with_its_own_environment(layout, cli, ws: Workspace) -> None:
    root = layout("six-env")
    assert cli(root, "endpoint", "create", "-f", "endpoint.yml").exit_code == 0
    result = cli(root, "deployment", "create", "-f", "deployment.yml", "--env-manager",
                 "virtualenv")
    assert result.exit_code == 0, result.output
    result = cli(root, "endpoint", "invoke", "six", "--input", "data", "--output", "out",
                 "--wait", "--no-progress")
    assert result.exit_code == 0, result.output
    env = build_env(["six==1.16.0"]).parent.parent
    assert sorted((root / "out" / "predictions.csv").read_text().splitlines()) == \
        [f"{n}.txt 1.16.0 {env}" for n in "abc"]


def test_the_workspace_setting_alone_chooses_virtualenv(layout, cli, ws: Workspace) -> None:
    """executor.env_manager = "virtualenv": a deployment with a conda file runs its workers in
    the virtualenv with no flag; --env-manager local wins; a deployment that names no
    environment stays in batchscore's."""
    import six

    config = ws.settings.root / "batchscore.toml"
    config.write_text(config.read_text().replace(
        "[executor]\n", '[executor]\nenv_manager = "virtualenv"\n'))
    root = layout("six-env")
    assert cli(root, "endpoint", "create", "-f", "endpoint.yml").exit_code == 0
    made = cli(root, "deployment", "create", "-f", "deployment.yml")
    assert made.exit_code == 0, made.output
    result = cli(root, "endpoint", "invoke", "six", "--input", "data", "--output", "out",
                 "--wait", "--no-progress")
    assert result.exit_code == 0, result.output
    env = build_env(["six==1.16.0"]).parent.parent
    assert sorted((root / "out" / "predictions.csv").read_text().splitlines()) == \
        [f"{n}.txt 1.16.0 {env}" for n in "abc"]
    result = cli(root, "endpoint", "invoke", "six", "--input", "data", "--output", "local",
                 "--env-manager", "local", "--wait", "--no-progress")
    assert result.exit_code == 0, result.output
    assert all(f" {six.__version__} {sys.prefix}" in line
               for line in (root / "local" / "predictions.csv").read_text().splitlines())
    plain = root / "plain.yml"
    plain.write_text("\n".join(line for line in (root / "deployment.yml").read_text()
                               .splitlines() if not line.startswith(("environment:", "  "))))
    result = cli(root, "job", "run", "plain.yml", "--code", "code", "--scoring-script",
                 "score.py", "--input", "data", "--output", "plain", "--no-progress")
    assert result.exit_code == 0, result.output
    assert all(f" {six.__version__} {sys.prefix}" in line
               for line in (root / "plain" / "predictions.csv").read_text().splitlines())
    bad = cli(root, "endpoint", "invoke", "six", "--input", "data", "--output", "x",
              "--env-manager", "conda")
    assert bad.exit_code == 2 and "Traceback" not in bad.output


TABULAR = """\
import sys

import six


def run(mini_batch):
    out = mini_batch.copy()
    out["score"] = out["x"] * 2
    out["six"] = six.__version__
    out["prefix"] = sys.prefix
    return out[["x", "score", "six", "prefix"]]
"""


def _tabular(root: Path, requirements: list[str]) -> None:
    (root / "code" / "score.py").write_text(TABULAR)
    (root / "rows").mkdir()
    (root / "rows" / "a.csv").write_text("x\n1\n2\n3\n")
    (root / "rows" / "b.csv").write_text("x\n4\n5\n")
    pip = "".join(f"      - {r}\n" for r in requirements)
    (root / "environment" / "conda.yaml").write_text(
        f"dependencies:\n  - python=3.11\n  - pip\n  - pip:\n{pip}")


def test_dataframe_mini_batches_cross_into_the_virtualenv(layout, cli, ws: Workspace) -> None:
    """input_format csv: each mini-batch's DataFrame reaches run() in the virtualenv (read
    with its own pandas), and the DataFrame run() returns comes back as the output rows."""
    import pandas
    import pyarrow

    root = layout("six-env")
    requirements = ["six==1.16.0", f"pandas=={pandas.__version__}",
                    f"pyarrow=={pyarrow.__version__}"]
    _tabular(root, requirements)
    result = cli(root, "job", "run", "deployment.yml", "--input", "rows", "--output", "out",
                 "--input-format", "csv", "--mini-batch-size", "2", "--env-manager",
                 "virtualenv", "--no-progress")
    assert result.exit_code == 0, result.output
    env = build_env(requirements).parent.parent
    lines = (root / "out" / "predictions.csv").read_text().splitlines()
    assert sorted(lines) == sorted(f"{x} {2 * x} 1.16.0 {env}" for x in range(1, 6))
    assert not list((ws.system.local_path("jobs")).rglob("*.parquet"))  # frames removed


def test_dataframe_mini_batches_need_pandas_in_the_environment(layout, cli,
                                                               ws: Workspace) -> None:
    root = layout("six-env")
    _tabular(root, ["six==1.16.0"])
    result = cli(root, "job", "run", "deployment.yml", "--input", "rows", "--output", "out",
                 "--input-format", "csv", "--env-manager", "virtualenv", "--no-progress",
                 "--max-retries", "0")
    assert "its environment needs pandas and pyarrow" in result.output, result.output
    assert not (root / "out" / "predictions.csv").exists()


def test_ray_actors_run_the_script_in_the_virtualenv(layout, cli, ws: Workspace,
                                                      ray_cluster) -> None:
    """On Ray each actor stays in batchscore's Python and starts the script in the node's
    cached virtualenv, built there from the same requirements."""
    root = layout("six-env")
    result = cli(root, "job", "run", "deployment.yml", "--input", "data", "--output", "out",
                 "--env-manager", "virtualenv", "--executor", "ray", "--ray-address",
                 ray_cluster.address, "--no-progress")
    assert result.exit_code == 0, result.output
    env = build_env(["six==1.16.0"]).parent.parent
    assert sorted((root / "out" / "predictions.csv").read_text().splitlines()) == \
        [f"{n}.txt 1.16.0 {env}" for n in "abc"]
