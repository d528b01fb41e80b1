"""Parallel job YAMLs (type: parallel) run on the entry-script engine: program_arguments
reach init() in sys.argv, inputs and outputs are substituted, --set changes the YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from azureml.az_helpers import fitted
from batchscore.azureml.parallel import apply_sets, load_parallel_job
from batchscore.errors import UsageError
from batchscore.registry.assets import register_data, register_model
from batchscore.workspace import Workspace


def _expected(data: Path, threshold: float, prefix: str) -> list[str]:
    import pandas as pd

    model = fitted()
    lines = []
    for path in sorted(data.glob("*.csv")):
        for row, score in enumerate(model.predict_proba(pd.read_csv(path))[:, 1]):
            lines.append(f"{path.name} {row} {prefix}{int(score >= threshold)}")
    return lines


def test_parallel_job_runs_with_its_program_arguments(layout, cli, ws: Workspace) -> None:
    root = layout("parallel-heart")
    result = cli(root, "job", "create", "-f", "job.yml", "--no-progress")
    assert result.exit_code == 0, result.output
    out = Path(ws.data.local_path("azureml", "heart-batch-score"))
    lines = (out / "job_output_file" / "parallel_run_step.txt").read_text().splitlines()
    assert sorted(lines) == sorted(_expected(root / "data", 0.5, "class-"))
    # init() ran in each worker with the arguments parsed, the environment variable set
    inits = list((out / "job_output_path").glob("init-*.txt"))
    assert inits and all(p.read_text() == "hello 0.5\n" for p in inits)
    job = load_parallel_job(ws, root / "job.yml")
    assert job.spec.logging_level == "debug" and job.spec.error_threshold == 5
    assert job.spec.max_concurrency_per_instance == 2
    assert job.spec.retry_settings.max_retries == 2
    assert job.arguments[:2] == ["--model", str(root / "model")]
    assert "--copy_logs_to_parent" in job.arguments


def test_mini_batch_error_threshold_is_enforced(layout, cli, ws: Workspace) -> None:
    root = layout("parallel-heart")
    (root / "src" / "failing.py").write_text(
        "def init():\n    pass\n\n"
        "def run(mini_batch):\n"
        "    if any(p.endswith('-1.csv') for p in mini_batch):\n"
        "        raise ValueError('unreadable file')\n"
        "    return [p for p in mini_batch]\n")
    sets = ["--set", "task.entry_script=failing.py", "--set", "retry_settings.max_retries=0"]
    tolerated = cli(root, "job", "create", "-f", "job.yml", "--no-progress", *sets)
    assert tolerated.exit_code == 0, tolerated.output  # the YAML's threshold: 5
    refused = cli(root, "job", "create", "-f", "job.yml", "--no-progress", *sets,
                  "--set", "mini_batch_error_threshold=0", "--set", "name=strict")
    assert refused.exit_code != 0
    assert "1 mini-batch(es) failed, more than mini_batch_error_threshold=0" \
        in refused.output
    job = load_parallel_job(ws, root / "job.yml", ["mini_batch_error_threshold=-1"])
    assert job.spec.mini_batch_error_threshold == -1
    assert load_parallel_job(ws, root / "job.yml").spec.mini_batch_error_threshold == 5


def test_set_changes_inputs_and_outputs(layout, cli, ws: Workspace, tmp_path: Path) -> None:
    root = layout("parallel-heart")
    other = tmp_path / "other"
    (other / "data").mkdir(parents=True)
    first = sorted((root / "data").glob("*.csv"))[0]
    (other / "data" / first.name).write_text(first.read_text())
    result = cli(root, "job", "create", "-f", "job.yml", "--no-progress",
                 "--set", f"inputs.score_data.path={other / 'data'}",
                 "--set", "inputs.threshold=0.9",
                 "--set", f"outputs.job_output_file.path={other / 'out' / 'scores.txt'}")
    assert result.exit_code == 0, result.output
    lines = (other / "out" / "scores.txt").read_text().splitlines()
    assert sorted(lines) == sorted(_expected(other / "data", 0.9, "class-"))


def test_inputs_from_registered_assets(layout, ws: Workspace) -> None:
    root = layout("parallel-heart")
    register_data(ws, "heart-data", str(root / "data"))
    register_model(ws, "heart-model", str(root / "model"))
    job = load_parallel_job(ws, root / "job.yml", [
        "inputs.score_data.path=azureml:heart-data@latest",
        "inputs.score_model.path=azureml:heart-model:1",
        "inputs.score_model.type=custom_model"])
    assert job.inputs == [str(root / "data")]
    model_folder = Path(job.arguments[1])
    assert model_folder.name == "model" and (model_folder / "model.pkl").is_file()
    assert model_folder != root / "model"  # the registry's copy


@pytest.mark.parametrize(("sets", "message"), [
    (["type=command"], "type is 'command'"),
    (["task.type=run_command"], "only run_function runs"),
    (["input_data=data/"], "input_data must be ${{inputs.NAME}}"),
    (["input_data=${{inputs.nothing}}"], "not among the job's inputs"),
    (["task.program_arguments=--x ${{outputs.nope}}"], "refers to ${{outputs.nope}}"),
    (["inputs.score_data.type=mltable"], "is an mltable"),
    (["inputs.score_data.path="], "has no path"),
    (["task.entry_script="], "task.entry_script is required"),
    (["queue=fast"], "unknown key 'queue'"),
    (["task.command=python x.py"], "unknown key task.command"),
    (["mini_batch_size=0"], "mini_batch_size: must be at least 1"),
    (["mini_batch_error_threshold=-2"], "mini_batch_error_threshold: Input should be"),
    (["inputs.score_model.path=azureml:nope:1", "inputs.score_model.type=custom_model"],
     "no registered model named 'nope'"),
    (["bad"], "expected KEY.PATH=VALUE"),
])
def test_bad_parallel_jobs_are_one_clear_error(layout, ws: Workspace, sets: list[str],
                                               message: str) -> None:
    root = layout("parallel-heart")
    with pytest.raises(UsageError, match=_escape(message)):
        load_parallel_job(ws, root / "job.yml", sets)


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_cli_errors_are_one_line(layout, cli) -> None:
    root = layout("parallel-heart")
    result = cli(root, "job", "create", "-f", "missing.yml")
    assert result.exit_code == 2 and "does not exist" in result.output
    assert "Traceback" not in result.output


def test_apply_sets_makes_nested_keys() -> None:
    raw = apply_sets({"inputs": {"a": 1}}, ["inputs.a.path=x", "outputs.o.path=y"])
    assert raw == {"inputs": {"a": {"value": 1, "path": "x"}}, "outputs": {"o": {"path": "y"}}}
