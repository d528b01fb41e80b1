"""Job specs: Azure ML deployment YAML as it is, CLI flags over it, clear refusals."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batchscore.cli import app
from batchscore.errors import SpecError
from batchscore.jobs import JobSpec, RetrySettings, list_jobs, load_spec, spec_from_mapping
from batchscore.jobs.spec import parse_size

AZURE = """\
$schema: https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json
name: heart-classifier
description: A heart condition classifier for batch inference
endpoint_name: heart-classifier-batch
type: model
model:
  name: heart-classifier-sklpipe
  path: model
environment:
  name: batch-mlflow-xgboost
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
  conda_file: environment/conda.yaml
code_configuration:
  code: code
  scoring_script: batch_driver.py
compute: azureml:batch-cluster
resources:
  instance_count: 2
settings:
  max_concurrency_per_instance: 3
  mini_batch_size: 10
  output_action: append_row
  output_file_name: predictions.csv
  retry_settings:
    max_retries: 4
    timeout: 100
  error_threshold: -1
  logging_level: INFO
  environment_variables:
    MODEL_KIND: xgboost
    BATCH_SIZE: 32
tags:
  team: cardio
"""


def write(folder: Path, text: str, name: str = "deployment.yml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_full_azure_deployment_yaml(tmp_path):
    write(tmp_path / "deploy" / "environment", "dependencies:\n  - python=3.10\n  - pip:\n"
          "    - xgboost==1.7.6\n", "conda.yaml")
    spec = load_spec(write(tmp_path / "deploy", AZURE))
    base = tmp_path / "deploy"
    assert spec == JobSpec(
        name="heart-classifier",
        code=str(base / "code"),
        scoring_script="batch_driver.py",
        model_dir=str(base / "model"),
        mini_batch_size=10,
        output_action="append_row",
        output_file_name="predictions.csv",
        retry_settings=RetrySettings(max_retries=4, timeout=100.0),
        error_threshold=-1,
        logging_level="info",
        max_concurrency_per_instance=3,
        instance_count=2,
        environment_variables={"MODEL_KIND": "xgboost", "BATCH_SIZE": "32"},
        requirements=["xgboost==1.7.6"],  # used with --env-manager virtualenv
        options={"environment_note": "the environment asks for Python 3.10; its virtualenv "
                 f"uses this machine's Python {sys.version_info[0]}.{sys.version_info[1]}"},
    )
    assert spec.script_path == base / "code" / "batch_driver.py"
    assert spec.workers == 6


def test_settings_at_the_top_level(tmp_path):
    spec = load_spec(write(tmp_path, """
        scoring_script: score.py
        mini_batch_size: 5kb
        output_action: summary_only
        retry_settings: {max_retries: 0, timeout: 2.5}
        error_threshold: 7
        max_concurrency_per_instance: 2
        instance_count: 3
        input_format: csv
        partition_keys: [region, day]
        input_encoding: latin-1
    """))
    assert spec.scoring_script == str(tmp_path / "score.py")
    assert spec.code is None and spec.script_path == tmp_path / "score.py"
    assert (spec.mini_batch_size, spec.output_action, spec.error_threshold) == (
        "5kb", "summary_only", 7)
    assert spec.retry_settings == RetrySettings(max_retries=0, timeout=2.5)
    assert (spec.input_format, spec.partition_keys, spec.input_encoding) == (
        "csv", ["region", "day"], "latin-1")
    assert spec.workers == 6


def test_relative_paths_resolve_against_the_yaml_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "project" / "deploy", """
        model:
          path: ../models/m1
        code_configuration:
          code: ../src
          scoring_script: score.py
    """)
    spec = load_spec("project/deploy/deployment.yml")
    assert spec.model_dir == str(tmp_path / "project" / "models" / "m1")
    assert spec.code == str(tmp_path / "project" / "src")
    assert spec.script_path == tmp_path / "project" / "src" / "score.py"
    # model as a plain string, absolute paths kept
    other = load_spec(write(tmp_path / "x", f"model: {tmp_path}/abs\nscoring_script: s.py\n"))
    assert other.model_dir == f"{tmp_path}/abs"
    assert other.scoring_script == str(tmp_path / "x" / "s.py")


def test_overrides_win_and_none_means_not_given(tmp_path):
    path = write(tmp_path, AZURE)
    spec = load_spec(path, mini_batch_size=3, logging_level=None, instance_count=1,
                     input_format="csv")
    assert (spec.mini_batch_size, spec.logging_level, spec.instance_count, spec.input_format) == (
        3, "info", 1, "csv")


def test_empty_yaml_is_all_defaults(tmp_path):
    spec = load_spec(write(tmp_path, ""))
    assert spec == JobSpec() and spec.mini_batch_size == 10
    assert spec.retry_settings == RetrySettings(max_retries=3, timeout=30.0)


@pytest.mark.parametrize(("value", "expected"), [
    (10, 10), ("10", 10), (" 7 ", 7), (4.0, 4), ("10kb", "10kb"), ("1.5MB", "1.5mb"),
    ("512", 512),
])
def test_mini_batch_size_counts_and_sizes(value, expected):
    assert spec_from_mapping({"mini_batch_size": value}).mini_batch_size == expected


@pytest.mark.parametrize(("text", "size"), [
    ("1", 1), ("10kb", 10240), ("1.5 mb", 1572864), ("2GB", 2 * 1024**3), ("100b", 100),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_a_size_of_the_whole_file_is_the_whole_file():
    """"NNNb" for a file of NNN bytes holds all its rows, whatever NNN (in floats, 25 rows
    in 28 bytes came out as 24: one mini-batch of 24 rows and one of 1)."""
    from batchscore.io.sizes import rows_per_batch

    assert all(rows_per_batch(f"{n}b", 25, n) == 25 for n in range(25, 20_000))
    assert rows_per_batch("10kb", 1000, 100_008) == 102
    assert rows_per_batch("1b", 1000, 100_008) == 1
    assert rows_per_batch("10b", 100, 50) == 10  # under a byte a row: a byte a row


@pytest.mark.parametrize(("raw", "message"), [
    ({"mini_batch_sise": 3}, "unknown key 'mini_batch_sise' (did you mean 'mini_batch_size'?)"),
    ({"endpoint": "x"}, "unknown key 'endpoint' (did you mean 'endpoint_name'?)"),
    ({"settings": {"eror_threshold": 1}},
     "unknown key settings.eror_threshold (did you mean 'error_threshold'?)"),
    ({"settings": {"retry_settings": {"max_retrys": 1}}},
     "unknown key retry_settings.max_retrys (did you mean 'max_retries'?)"),
    ({"retry_settings": {"timout": 1}},
     "unknown key retry_settings.timout (did you mean 'timeout'?)"),
    ({"resources": {"instance_cont": 1}},
     "unknown key resources.instance_cont (did you mean 'instance_count'?)"),
    ({"code_configuration": {"scoring_scrpt": "s.py"}},
     "unknown key code_configuration.scoring_scrpt (did you mean 'scoring_script'?)"),
    ({"settings": [1]}, "settings must be a mapping, not list"),
    ({"model": {"pth": "m"}}, "unknown key model.pth"),
    ({"model": "azureml:heart"}, "'azureml:heart' names no version"),
    ({"mini_batch_size": 0}, "mini_batch_size: must be at least 1 (got 0)"),
    ({"mini_batch_size": "0kb"}, "mini_batch_size: '0kb': a size must be more than 0"),
    ({"mini_batch_size": "lots"},
     "mini_batch_size: 'lots' is neither a count nor a size such as '10kb' or '1mb'"),
    ({"mini_batch_size": True}, "mini_batch_size: must be a count or a size such as '10kb'"),
    ({"mini_batch_size": 2.5}, "mini_batch_size: must be a count or a size such as '10kb' "
     "(got 2.5)"),
    ({"output_action": "bogus"},
     "output_action: Input should be 'append_row' or 'summary_only' (got 'bogus')"),
    ({"error_threshold": -5},
     "error_threshold: Input should be greater than or equal to -1 (got -5)"),
    ({"retry_settings": {"timeout": 0}},
     "retry_settings.timeout: Input should be greater than 0 (got 0)"),
    ({"retry_settings": {"max_retries": -1}},
     "retry_settings.max_retries: Input should be greater than or equal to 0 (got -1)"),
    ({"output_file_name": "a/b.csv"}, "output_file_name: must be a plain file name"),
    ({"max_concurrency_per_instance": 0}, "max_concurrency_per_instance: Input should be "
     "greater than or equal to 1 (got 0)"),
    ({"logging_level": "loud"}, "logging_level: Input should be 'debug'"),
    ({"input_format": "xlsx"}, "input_format: Input should be 'files', 'csv' or 'parquet'"),
    ({"input_encoding": "klingon"}, "input_encoding: unknown text encoding 'klingon'"),
])
def test_bad_specs_name_the_key_and_the_value(raw, message):
    with pytest.raises(SpecError) as exc:
        spec_from_mapping(raw, source="d.yml")
    assert str(exc.value).startswith("d.yml: ")
    assert message in str(exc.value)


@pytest.mark.parametrize(("text", "message"), [
    ("a: [\n", "is not valid YAML: "),
    ("- 1\n", "must be a mapping, not list"),
])
def test_bad_yaml_files(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    assert str(exc.value).startswith(f"job spec '{path}' ") and message in str(exc.value)


def test_missing_yaml(tmp_path):
    with pytest.raises(SpecError, match=r"^job spec '.*nope\.yml' does not exist$"):
        load_spec(tmp_path / "nope.yml")


def test_fingerprint_covers_settings_and_script_bytes(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("def run(mb):\n    return mb\n")
    a = spec_from_mapping({"scoring_script": str(script)})
    assert a.fingerprint() == spec_from_mapping({"scoring_script": str(script)}).fingerprint()
    assert a.fingerprint() != spec_from_mapping(
        {"scoring_script": str(script), "mini_batch_size": 2}).fingerprint()
    before = a.fingerprint()
    script.write_text("def run(mb):\n    return list(mb)\n")
    assert a.fingerprint() != before


# -- the CLI flags over the YAML -------------------------------------------------------------

def test_cli_flags_override_yaml_and_timeout_merges_with_max_retries(ws, tmp_path):
    deploy = tmp_path / "deploy"
    path = write(deploy, AZURE)
    code = deploy / "code"
    code.mkdir()
    (code / "batch_driver.py").write_text("def run(mini_batch):\n    return mini_batch\n")
    (deploy / "model").mkdir()
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text("a")
    result = CliRunner().invoke(app, [
        "job", "run", str(path), "-i", str(inputs), "-o", str(tmp_path / "out"),
        "--timeout", "7", "--mini-batch-size", "4", "--error-threshold", "2",
        "--instance-count", "1", "--max-concurrency-per-instance", "1",
        "--env", "EXTRA=1", "--env", "BATCH_SIZE=64",
        "--output-file-name", "scores.txt", "--no-progress", "-w", str(ws.settings.root)])
    assert result.exit_code == 0, result.output
    [job] = list_jobs(ws)
    spec = JobSpec(**job.spec)
    assert spec.retry_settings == RetrySettings(max_retries=4, timeout=7.0)  # YAML's 4 kept
    assert (spec.mini_batch_size, spec.error_threshold, spec.workers) == (4, 2, 1)
    assert spec.environment_variables == {"MODEL_KIND": "xgboost", "BATCH_SIZE": "64",
                                          "EXTRA": "1"}  # --env adds to the YAML's
    assert spec.output_file_name == "scores.txt"
    assert (spec.name, spec.code, spec.model_dir) == (
        "heart-classifier", str(code), str(deploy / "model"))
    assert (tmp_path / "out" / "scores.txt").read_text() == f"{inputs}/a.txt\n"


def test_cli_max_retries_alone_keeps_yaml_timeout(ws, tmp_path):
    path = write(tmp_path, "scoring_script: s.py\nretry_settings: {max_retries: 1, timeout: 9}\n")
    (tmp_path / "s.py").write_text("def run(mini_batch):\n    return mini_batch\n")
    (tmp_path / "a.txt").write_text("a")
    result = CliRunner().invoke(app, [
        "job", "run", str(path), "-i", str(tmp_path / "a.txt"), "-o", str(tmp_path / "out"),
        "--max-retries", "0", "--no-progress", "-w", str(ws.settings.root)])
    assert result.exit_code == 0, result.output
    [job] = list_jobs(ws)
    assert job.spec["retry_settings"] == {"max_retries": 0, "timeout": 9.0}
