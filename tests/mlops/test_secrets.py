"""The secrets file's rules (where it may live, its mode, its syntax, the environment wins)
and the redaction of secrets in text and log records."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batchscore.cli import app
from batchscore.jobs.logs import JobLogs
from batchscore.redact import MASK, RedactingFilter, install_redaction, redact, secret_values
from batchscore.registry.models import registry_uri, safe_tag
from batchscore.secrets import (
    SECRETS_FILE_ENV,
    SecretsFileError,
    default_secrets_file,
    load_secrets,
)
from batchscore.workspace import init_workspace, open_workspace


@pytest.fixture(autouse=True)
def environ(tmp_path: Path) -> Iterator[None]:
    """os.environ exactly as it was after each test (loading secrets writes to it); no
    secrets file of the machine's user is read."""
    saved = dict(os.environ)
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    os.environ.pop(SECRETS_FILE_ENV, None)
    yield
    os.environ.clear()
    os.environ.update(saved)


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


# -- loading -------------------------------------------------------------------------------


def test_values_are_loaded_and_the_environment_wins(tmp_path):
    token, key, user = unique("tok"), unique("key"), unique("user")
    path = write(tmp_path / "s.env", f"# registry\nMLFLOW_TRACKING_TOKEN={token}\n\n"
                 f"export AZURE_STORAGE_KEY='{key} # not a comment'\n"
                 f'MLFLOW_TRACKING_USERNAME="{user}"\n')
    env = {"MLFLOW_TRACKING_USERNAME": "from-env"}
    assert load_secrets(path, environ=env) == ["MLFLOW_TRACKING_TOKEN", "AZURE_STORAGE_KEY"]
    assert env == {"MLFLOW_TRACKING_USERNAME": "from-env", "MLFLOW_TRACKING_TOKEN": token,
                   "AZURE_STORAGE_KEY": f"{key} # not a comment"}


def test_opening_a_workspace_loads_the_default_file_under_xdg_config_home(tmp_path):
    ws = init_workspace(tmp_path / "ws")
    ws.close()
    assert default_secrets_file() == tmp_path / "xdg" / "batchscore" / "secrets.env"
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    secret = unique("some")
    write(default_secrets_file(), f"MLFLOW_TRACKING_URI={uri}\nSOME_SECRET={secret}\n")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    ws = open_workspace(tmp_path / "ws")
    assert os.environ["SOME_SECRET"] == secret
    assert registry_uri(ws) == uri  # the registry comes from the secrets file
    ws.close()


def test_a_missing_default_file_is_fine_a_missing_named_file_is_not(tmp_path):
    assert load_secrets() == []  # $XDG_CONFIG_HOME/batchscore/secrets.env does not exist
    missing = tmp_path / "nope.env"
    os.environ[SECRETS_FILE_ENV] = str(missing)
    with pytest.raises(SecretsFileError, match=f"secrets file {missing} does not exist "
                       f"\\(named by {SECRETS_FILE_ENV}\\)"):
        load_secrets()
    os.environ[SECRETS_FILE_ENV] = ""  # empty: no secrets file at all
    write(default_secrets_file(), "NOT_LOADED_TOKEN=abcdefgh\n")
    assert load_secrets() == []
    assert "NOT_LOADED_TOKEN" not in os.environ


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o622])
def test_a_file_group_or_others_may_read_or_write_is_refused(tmp_path, mode):
    path = write(tmp_path / "s.env", "A_TOKEN=abcdefgh\n", mode)
    with pytest.raises(SecretsFileError) as caught:
        load_secrets(path, environ={})
    assert str(caught.value) == (f"secrets file {path} may be read or written by group or "
                                 f"others (mode {mode:04o}); make it private with "
                                 f"`chmod 600 {path}`")


def test_a_file_inside_the_workspace_is_refused(tmp_path):
    ws = init_workspace(tmp_path / "ws")
    ws.close()
    path = write(tmp_path / "ws" / "secrets.env", "A_TOKEN=abcdefgh\n")
    os.environ[SECRETS_FILE_ENV] = str(path)
    with pytest.raises(SecretsFileError, match=f"secrets file {path} lies inside the "
                       f"workspace {tmp_path / 'ws'}, where it would be copied"):
        open_workspace(tmp_path / "ws")
    assert "A_TOKEN" not in os.environ


def test_a_file_inside_a_git_work_tree_is_refused_also_through_a_link(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    path = write(repo / "config" / "secrets.env", "A_TOKEN=abcdefgh\n")
    with pytest.raises(SecretsFileError, match=f"secrets file {path} lies inside the git "
                       f"work tree {repo}, where it could be committed; move it outside"):
        load_secrets(path, environ={})
    link = tmp_path / "outside.env"
    link.symlink_to(path)
    with pytest.raises(SecretsFileError, match=f"inside the git work tree {repo}"):
        load_secrets(link, environ={})


def test_a_folder_is_not_a_secrets_file(tmp_path):
    with pytest.raises(SecretsFileError, match=f"secrets file {tmp_path} is not a regular"):
        load_secrets(tmp_path, environ={})


def test_a_malformed_line_is_named_by_number_without_its_content(tmp_path):
    secret = unique("hunter")
    path = write(tmp_path / "s.env", f"GOOD_TOKEN=abcdefgh\n# comment\nnot an assignment "
                 f"{secret}\n")
    env: dict[str, str] = {}
    with pytest.raises(SecretsFileError) as caught:
        load_secrets(path, environ=env)
    assert str(caught.value) == (f"secrets file {path}, line 3: not a KEY=VALUE line (a value "
                                 "with spaces or # needs quotes)")
    assert env == {}  # nothing is loaded from a file with a bad line
    path = write(tmp_path / "t.env", "A=1\nLONELY_KEY\n")
    with pytest.raises(SecretsFileError, match="line 2: 'LONELY_KEY' has no '=' and no value"):
        load_secrets(path, environ=env)
    path.write_bytes(b"A_TOKEN=\xff\xfe\n")
    with pytest.raises(SecretsFileError, match=f"secrets file {path} is not UTF-8 text"):
        load_secrets(path, environ=env)


def test_the_cli_reports_a_refused_file_in_one_line(tmp_path):
    ws = init_workspace(tmp_path / "ws")
    ws.close()
    path = write(tmp_path / "s.env", "A_TOKEN=abcdefgh\n", 0o644)
    result = CliRunner().invoke(app, ["model", "list"], env={
        "BATCHSCORE_WORKSPACE": str(tmp_path / "ws"), SECRETS_FILE_ENV: str(path)})
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"error: secrets file {path} may be read or written by group or "
                             f"others (mode 0644); make it private with `chmod 600 {path}`\n")


# -- redaction -------------------------------------------------------------------------------


def test_redact_masks_secret_variables_url_passwords_and_connection_string_parts():
    token, key, password, sas = unique("tok"), unique("ak"), unique("pw"), unique("sv")
    env = {"MLFLOW_TRACKING_TOKEN": token, "DATABASE": f"postgresql://u:{password}@h/db",
           "AZURE_STORAGE_CONNECTION_STRING": f"AccountName=acct;AccountKey={key};X=y",
           "OTHER_CONNECTION_STRING": f"BlobEndpoint=https://b;SharedAccessSignature={sas}",
           "HOME": "/home/someone", "SHORT_KEY": "abc", "FLAG_TOKEN": "true"}
    text = (f"t={token} url=postgresql://u:{password}@h/db bare={password} key={key} "
            f"other=https://a:b@c home=/home/someone short=abc flag=true sas={sas}")
    assert redact(text, env) == ("t=*** url=postgresql://u:***@h/db bare=*** key=*** "
                                 "other=https://a:***@c home=/home/someone short=abc flag=true "
                                 "sas=***")
    found = set(secret_values(env))
    assert {token, password, key, f"AccountName=acct;AccountKey={key};X=y"} <= found
    assert not {"/home/someone", "abc", "true"} & found


def test_secrets_from_the_file_are_masked_by_their_names_alone(tmp_path):
    password, token = unique("pw"), unique("tok")
    path = write(tmp_path / "s.env", "MLFLOW_TRACKING_USERNAME=postgres\n"
                 f"MLFLOW_TRACKING_URI=postgresql://postgres:{password}@db.example/mlflow\n"
                 f"MLFLOW_TRACKING_TOKEN={token}\n")
    env: dict[str, str] = {}
    load_secrets(path, environ=env)
    assert redact(f"postgresql://postgres:{password}@db.example/mlflow as postgres, "
                  f"{password} {token}", env) == (
        "postgresql://postgres:***@db.example/mlflow as postgres, *** ***")
    assert safe_tag(f"sqlite:///x?{token}") == f"sqlite:///x?{token}"  # not in os.environ
    os.environ.update(env)
    assert safe_tag(f"sqlite:///x?{token}") == "sqlite:///x?***"


def test_log_records_are_redacted_whatever_their_logger_and_shape(capsys):
    token = unique("tok")
    os.environ["SERVICE_API_TOKEN"] = token
    install_redaction()
    install_redaction()  # idempotent: one factory
    logger = logging.getLogger(f"elsewhere.{uuid.uuid4().hex}")  # not under batchscore
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("%s - %s %d", "client", f"token {token}", 200)
        try:
            raise RuntimeError(f"cannot connect to postgresql://u:{token}@h/db")
        except RuntimeError:
            logger.exception("failed: %(url)s", {"url": f"https://u:{token}@h"})
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert token not in err
    assert "client - token *** 200" in err
    assert "failed: https://u:***@h" in err
    assert "RuntimeError: cannot connect to postgresql://u:***@h/db" in err
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s %s %s %s %s",
                               ("1.2.3.4", "GET", f"/?t={token}", "1.1", 200), None)
    assert RedactingFilter().filter(record) is True
    assert record.args == ("1.2.3.4", "GET", "/?t=***", "1.1", 200)  # the shape is kept


def test_job_logs_are_redacted(tmp_path, ws):
    token = unique("tok")
    os.environ["MY_TOKEN"] = token
    logs = JobLogs(ws.system, "job-1")
    logs.event("started", url=f"postgresql://u:{token}@h/db", env={"k": token})
    logs.error(0, 1, "w", "failed", f"Traceback ...\nValueError: {token}")
    logs.timings([{"item": token}])
    logs.overview({"reason": token}, force=True)
    for name in ("events.jsonl", "errors.txt", "timings.jsonl", "overview.json"):
        text = (logs.folder / name).read_text()
        assert token not in text and MASK in text, name


def test_the_command_refuses_a_readable_secrets_file_in_one_line(tmp_path) -> None:
    import subprocess
    import sys

    loose = tmp_path / "outside" / "secrets.env"
    loose.parent.mkdir()
    loose.write_text("BATCHSCORE_TOKEN=abcdef123456\n")
    loose.chmod(0o644)
    env = {**os.environ, "BATCHSCORE_SECRETS_FILE": str(loose)}
    done = subprocess.run([sys.executable, "-m", "batchscore", "job", "list", "--server",
                           "http://127.0.0.1:9"], capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error:") and "Traceback" not in done.stderr
    assert str(loose) in done.stderr and "abcdef123456" not in done.stderr
