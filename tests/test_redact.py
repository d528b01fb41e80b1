"""batchscore.redact: the one place that hides secrets in URLs, environments and what API
clients see (issue 16). The log redaction itself is tested in tests/mlops/test_secrets.py."""

from __future__ import annotations

import ast
import os
import threading
from pathlib import Path

import batchscore
from batchscore.redact import (
    MASK,
    hide_environment,
    hide_password,
    hide_userinfo,
    public_text,
    public_value,
    redact,
    safe_url,
    secret_values,
)

SRC = Path(batchscore.__file__).resolve().parent


def test_urls() -> None:
    assert hide_password("see postgresql://u:s3cret@h/db and x://a:b@c") == \
        "see postgresql://u:***@h/db and x://a:***@c"
    assert hide_password("no url here") == "no url here"
    assert hide_userinfo("redis://user:s3cret@h:6379/0") == "redis://***@h:6379/0"
    assert safe_url("postgresql+psycopg://u:s3cret@h:5432/db") == \
        "postgresql+psycopg://u:***@h:5432/db"
    assert "s3cret" not in safe_url("not a url://u:s3cret@h")


def test_environment_values_never_show() -> None:
    spec = {"environment_variables": {"API_KEY": "s3cret", "MODE": "fast"},
            "nested": [{"environment_variables": {"TOKEN": "t0ken"}}], "other": 1}
    assert hide_environment(spec) == {
        "environment_variables": {"API_KEY": MASK, "MODE": MASK},
        "nested": [{"environment_variables": {"TOKEN": MASK}}], "other": 1}


def test_public_locations() -> None:
    stores = [("/srv/ws/data", ""), ("/srv/ws/system", "system:")]
    assert public_value("/srv/ws/data/in/x.csv", stores) == "in/x.csv"
    assert public_value("/srv/ws/system/scripts/a", stores) == "system:scripts/a"
    assert public_value("/home/me/private.csv", stores) == "…/private.csv"
    assert public_value("postgresql://u:pw123456@h/db", stores) == "postgresql://u:***@h/db"
    assert public_text("failed on /srv/ws/data/in/x.csv", stores) == "failed on in/x.csv"


def test_no_other_module_defines_a_redaction_function() -> None:
    """hide_password, safe_url, redact... live in redact.py only (they were in four modules)."""
    names = {"hide_password", "safe_url", "hide_userinfo", "hide_environment", "redact",
             "redact_value", "public_text", "public_value"}
    found = [f"{path.relative_to(SRC)}: {node.name}"
             for path in sorted(SRC.rglob("*.py")) if path != SRC / "redact.py"
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.FunctionDef) and node.name in names]
    assert not found, found


def test_a_secret_put_in_the_environment_is_masked_from_the_next_call_on(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The process's secrets are read again whenever the environment has changed (through
    os.environ, by any thread), and only then."""
    text = "token is Zq9-secret-value-1234 here"
    monkeypatch.delenv("BENCH_API_TOKEN", raising=False)
    assert redact(text) == text
    first = secret_values()
    assert secret_values() == first  # unchanged environment: the same answer
    monkeypatch.setenv("BENCH_API_TOKEN", "Zq9-secret-value-1234")
    assert redact(text) == f"token is {MASK} here"
    assert "Zq9-secret-value-1234" in secret_values()
    monkeypatch.setenv("BENCH_API_TOKEN", "Other-secret-5678")  # changed in place
    assert redact(text) == text
    assert redact("Other-secret-5678") == MASK
    done = threading.Event()

    def other_thread() -> None:
        os.environ["BENCH_API_TOKEN"] = "Thread-secret-9012"
        done.set()

    threading.Thread(target=other_thread).start()
    assert done.wait(30)
    assert redact("Thread-secret-9012") == MASK
    monkeypatch.delenv("BENCH_API_TOKEN")
    assert redact("Thread-secret-9012") == "Thread-secret-9012"
