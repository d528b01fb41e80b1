"""``batchscore stream``: create, send, consume, show, list, delete; bad input is one line."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis
from stream_helpers import landed_ids
from typer.testing import CliRunner

from batchscore.cli import app
from batchscore.streaming import get_stream
from batchscore.streaming.lease import Lease
from cli.cli_checks import assert_one_error

SENSOR_CSV = """TS,Device,Sensor,Value
2018-08-28 23:00:05.000,1,1,10.16
2018-08-28 23:00:05.000,1,4,84.53
2018-08-28 23:00:35.000,1,1,10.5
2018-08-28 23:01:05.000,1,1,11.0
2018-08-28 23:02:05.000,1,4,80.0
"""


@pytest.fixture
def run(ws, monkeypatch):
    monkeypatch.delenv("BATCHSCORE_REDIS_URL", raising=False)
    runner = CliRunner()

    def call(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(app, list(args),
                             env={"BATCHSCORE_WORKSPACE": str(ws.settings.root), **(env or {})})

    return call


@pytest.fixture
def key() -> str:
    return f"test:{uuid.uuid4().hex}"


def test_create_send_consume_show_list_delete(ws, run, redis_url, key, tmp_path):
    result = run("stream", "create", "s", "--window", "1min", "--lateness", "0s",
                 "--aggregates", "mean,max", "--redis-key", key,
                 env={"BATCHSCORE_REDIS_URL": redis_url})
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == ("stream s: 60s windows, lateness 0s, count,mean,max; lands "
                                     "in streams/s/ of the data store")
    assert get_stream(ws, "s").redis_url is None  # the workspace default, at use
    data = tmp_path / "sensor.csv"
    data.write_text(SENSOR_CSV)
    result = run("stream", "send", "s", str(data), env={"BATCHSCORE_REDIS_URL": redis_url})
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "sent 5 events to stream s"
    lines = tmp_path / "more.jsonl"
    lines.write_text(json.dumps({"device": "2", "sensor": "1", "timestamp":
                                 "2018-08-28T23:03:00Z", "value": 1}) + "\n\n")
    assert run("stream", "send", "s", str(lines),
               env={"BATCHSCORE_REDIS_URL": redis_url}).exit_code == 0
    result = run("stream", "consume", "s", "--until-idle", "0.3", "--no-progress",
                 env={"BATCHSCORE_REDIS_URL": redis_url})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("done: stream s: read 6, landed 5 events in 3 windows, late "
                                    "0, rejected 0, duplicates 0, partitions closed 0, open 1 "
                                    "windows (1 events), watermark 2018-08-28T23:03:00Z")
    result = run("stream", "show", "s", env={"BATCHSCORE_REDIS_URL": redis_url})
    assert result.exit_code == 0, result.output
    assert "events received     5" in result.stdout and "windows landed      3" in result.stdout
    assert "pending in Redis    1" in result.stdout
    result = run("stream", "show", "s", "--json", env={"BATCHSCORE_REDIS_URL": redis_url})
    assert json.loads(result.stdout)["events_landed"] == 5
    result = run("stream", "list")
    assert result.stdout.split() == ["s", "60s", "received", "5", "windows", "3", "watermark",
                                     "2018-08-28T23:03:00Z"]
    assert len(landed_ids(ws, "s")) == 5
    result = run("stream", "delete", "s", "--purge", env={"BATCHSCORE_REDIS_URL": redis_url})
    assert result.exit_code == 0 and result.stdout.strip() == "deleted stream s and its data"
    assert not ws.data.exists("streams/s")
    assert redis.Redis.from_url(redis_url).exists(key) == 0
    assert run("stream", "list", "--json").stdout.strip() == "[]"


@pytest.mark.parametrize(("args", "message"), [
    (["--window", "7s"], "window '7s' (7s) does not divide a hour (3600s)"),
    (["--window", "0.5s"], "window must be a whole number of seconds from 1s"),
    (["--window", "soon"], "window must be a duration such as 60s, 5min or 1h, got 'soon'"),
    (["--lateness", "-5s"], "lateness must be 0 or more seconds"),
    (["--aggregates", "mean,avg"], "unknown aggregate 'avg'"),
    (["--partition", "week"], "partition must be one of hour, day, got 'week'"),
    (["--endpoint", "score"], "an endpoint needs an output and an output needs an endpoint"),
    (["--endpoint", "nope", "--endpoint-output", "scores/"], "no endpoint named 'nope'"),
    (["--endpoint", "x", "--endpoint-output", "../up"], "leaves the data store"),
    (["--redis", "http://localhost:6379"], "must start with redis://, rediss:// or unix://"),
])
def test_bad_create_options_are_one_line(run, redis_url, args, message):
    assert_one_error(run("stream", "create", "s", "--redis", redis_url, *args), message)


def test_a_stream_needs_a_redis_url(run):
    assert_one_error(run("stream", "create", "s"),
                     "has no Redis URL and the workspace no default; set BATCHSCORE_REDIS_URL")


def test_an_existing_name_and_unreachable_redis(run, redis_url, key):
    assert run("stream", "create", "s", "--redis", redis_url, "--redis-key", key).exit_code == 0
    assert_one_error(run("stream", "create", "s", "--redis", redis_url),
                     "a stream named 's' exists already")
    assert_one_error(run("stream", "create", "t", "--redis", "redis://127.0.0.1:1/0"),
                     "cannot reach Redis at redis://127.0.0.1:1/0", code=1)


def test_a_file_with_bad_events_is_refused_whole(ws, run, redis_url, key, tmp_path):
    assert run("stream", "create", "s", "--redis", redis_url, "--redis-key", key).exit_code == 0
    bad = tmp_path / "bad.csv"
    bad.write_text(SENSOR_CSV + "2018-08-28 23:03:05.000,1,1,n/a\n,1,1,2\n")
    line = assert_one_error(run("stream", "send", "s", str(bad)),
                            f"{bad}: 2 of 7 events are bad, nothing was written")
    assert "event 5: value: 'n/a' is not a number" in line and "event 6: timestamp" in line
    assert redis.Redis.from_url(redis_url).xlen(key) == 0
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"device": 1}\n{oops\n')
    assert_one_error(run("stream", "send", "s", str(broken)), "line 2: not JSON")
    assert_one_error(run("stream", "send", "s", str(tmp_path / "none.csv")), "does not exist")
    (tmp_path / "x.txt").write_text("")
    assert_one_error(run("stream", "send", "s", str(tmp_path / "x.txt")),
                     "expected .csv or .jsonl")
    assert_one_error(run("stream", "send", "s", str(bad), "--batch", "0"), "--batch must be")


def test_consume_errors(run, redis_url, key):
    assert_one_error(run("stream", "consume", "nope", "--no-progress"),
                     "no stream named 'nope'")
    assert run("stream", "create", "s", "--redis", redis_url, "--redis-key", key).exit_code == 0
    assert_one_error(run("stream", "consume", "s", "--batch", "0"), "--batch must be 1 or more")
    assert_one_error(run("stream", "show", "nope"), "no stream named 'nope'")
    assert_one_error(run("stream", "delete", "nope"), "no stream named 'nope'")


def test_a_second_consumer_is_refused(ws, run, redis_url, key):
    assert run("stream", "create", "s", "--redis", redis_url, "--redis-key", key).exit_code == 0
    Lease(ws, "s").acquire()  # this live process consumes it
    assert_one_error(run("stream", "consume", "s", "--no-progress"),
                     "stream 's' is being consumed by")


@pytest.mark.slow
def test_commands_through_the_service(ws, run, service, redis_url, key, tmp_path):
    result = run("stream", "create", "s", "--window", "1min", "--lateness", "0s", "--redis",
                 redis_url, "--redis-key", key, "--server", service)
    assert result.exit_code == 0, result.output
    data = tmp_path / "sensor.csv"
    data.write_text(SENSOR_CSV)
    bad = tmp_path / "bad.csv"
    bad.write_text(SENSOR_CSV + "2018-08-28 23:03:05.000,1,1,n/a\n")
    assert_one_error(run("stream", "send", "s", str(bad), "--server", service),
                     "event 5: value: 'n/a' is not a number")
    result = run("stream", "send", "s", str(data), "--batch", "2", "--server", service)
    assert result.stdout.strip() == "sent 5 events to stream s", result.output
    deadline = time.monotonic() + 60  # the service's consumer starts within its scan interval
    while get_stream(ws, "s").windows_landed < 2:
        assert time.monotonic() < deadline, run("stream", "show", "s", "--server", service).output
        time.sleep(0.2)
    shown = json.loads(run("stream", "show", "s", "--json", "--server", service).stdout)
    assert (shown["events_landed"], shown["pending"], shown["consumer"]["state"]) == (
        4, 1, "consuming")
    assert run("stream", "list", "--server", service).stdout.split()[:4] == [
        "s", "60s", "received", "4"]
    assert_one_error(run("stream", "show", "nope", "--server", service),
                     "the service answered 404")
    result = run("stream", "delete", "s", "--purge", "--server", service)
    assert result.exit_code == 0, result.output
    assert run("stream", "list", "--json").stdout.strip() == "[]"
