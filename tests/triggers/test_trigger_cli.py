"""`batchscore trigger add/list/remove` and `batchscore token` on a workspace."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from batchscore.cli import app
from batchscore.service.auth import verify_token


def run(*args):
    return CliRunner().invoke(app, list(args))


def test_trigger_add_list_remove(ws):
    w = ["-w", str(ws.settings.root)]
    ws.data.write_bytes("incoming/old.mp4", b"x")
    r = run("trigger", "add", "videos", "--prefix", "incoming/", "--pattern", "*.mp4",
            "--pipeline", "video-style", "--param", "style=7", "--output", "outgoing/", *w)
    assert r.exit_code == 0, r.output
    assert "trigger videos (storage) -> video-style" in r.output
    listed = json.loads(run("trigger", "list", "--json", *w).stdout)
    assert [(t["name"], t["params"]) for t in listed] == [("videos", {"style": "7"})]
    r = run("trigger", "add", "bad", "--prefix", "../system/", "--output", "o/", *w)
    assert r.exit_code == 2 and "leaves the data store" in r.output
    r = run("trigger", "add", "bad", "--prefix", "in/", "--output", "o/", "--param", "x", *w)
    assert r.exit_code == 2 and "KEY=VALUE" in r.output
    assert run("trigger", "remove", "videos", *w).exit_code == 0
    assert run("trigger", "remove", "videos", *w).exit_code == 2


def test_token_create_prints_a_token_stored_hashed(ws):
    w = ["-w", str(ws.settings.root)]
    r = run("token", "create", "ci", "--role", "operator", *w)
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    assert verify_token(ws.engine, token).role == "operator"
    assert "ci  operator  last used 2" in run("token", "list", *w).stdout
    assert run("token", "create", "x", "--role", "root", *w).exit_code == 2
    assert run("token", "revoke", "ci", *w).exit_code == 0
    assert verify_token(ws.engine, token) is None
