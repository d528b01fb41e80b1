"""A poison message never stops a stream: an entry XADDed straight into Redis that cannot be
decoded (fields that are not UTF-8) or validated goes to the dead-letter stream with the
reason, is acknowledged, and the consumer goes on; the good events before and after it land,
also when the consumer that read it died and another one takes over."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid

import pytest
import redis

from batchscore.streaming import consume, create_stream, delete_stream, get_stream
from batchscore.streaming.redis_source import GROUP
from batchscore.workspace import Workspace
from streaming.stream_helpers import T0, landed_ids, read_area

POISON = b"\xff\xfe dev"  # not UTF-8


def raw_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)  # bytes in, bytes out: what any producer may write


def good(t: float, device: str = "1") -> dict[bytes, bytes]:
    return {b"device": device.encode(), b"sensor": b"1", b"timestamp": repr(T0 + t).encode(),
            b"value": repr(float(t)).encode()}


def dead_letters(r: redis.Redis, key: str) -> list[dict[bytes, bytes]]:
    return [fields for _id, fields in r.xrange(f"{key}:dead-letter")]


@pytest.fixture
def stream_key(ws: Workspace, redis_url: str) -> str:
    key = f"test:{uuid.uuid4().hex}"
    create_stream(ws, "s", window="10s", lateness="0s", redis_url=redis_url, redis_key=key)
    return key


def test_a_non_utf8_entry_is_dead_lettered_and_the_good_ones_around_it_land(
        ws: Workspace, redis_url: str, stream_key: str) -> None:
    r = raw_client(redis_url)
    before = [r.xadd(stream_key, good(t)).decode() for t in (0, 1, 2)]
    poison = r.xadd(stream_key, {**good(3), b"device": POISON}).decode()
    after = [r.xadd(stream_key, good(t)).decode() for t in (4, 12, 25)]
    stats = consume(ws, "s", until_idle_s=0.3, close_all=True)
    assert (stats.events, stats.rejected, stats.dead_lettered) == (6, 1, 1)
    got = landed_ids(ws, "s")
    assert sorted(got) == sorted([*before, poison, *after]) and len(set(got)) == len(got)
    rejected = read_area(ws, "s", "rejected")
    assert rejected["entry_id"].tolist() == [poison]
    problem = rejected["problem"].iloc[0]
    assert problem == "device: is not UTF-8 text: b'\\xff\\xfe dev'"
    (letter,) = dead_letters(r, stream_key)
    assert letter[b"entry_id"].decode() == poison
    assert letter[b"reason"].decode() == problem
    assert letter[b"field:device"] == POISON  # the entry as it came, byte for byte
    assert letter[b"field:value"] == b"3.0"
    assert r.xpending(stream_key, GROUP)["pending"] == 0
    row = get_stream(ws, "s")
    assert (row.events_landed, row.events_rejected) == (6, 1)
    delete_stream(ws, "s", purge=True)  # purging a stream removes its dead letters too
    assert r.exists(stream_key, f"{stream_key}:dead-letter") == 0


def test_undecodable_names_and_invalid_values_go_to_the_dead_letter_stream_too(
        ws: Workspace, redis_url: str, stream_key: str) -> None:
    r = raw_client(redis_url)
    bad_name = r.xadd(stream_key, {**good(1), b"\xc3(": b"x"}).decode()
    invalid = r.xadd(stream_key, {**good(2), b"value": b"warm"}).decode()
    ok = r.xadd(stream_key, good(3)).decode()
    stats = consume(ws, "s", until_idle_s=0.3, close_all=True)
    assert (stats.events, stats.rejected) == (1, 2)
    letters = {fields[b"entry_id"].decode(): fields for fields in dead_letters(r, stream_key)}
    assert set(letters) == {bad_name, invalid}
    assert letters[bad_name][b"reason"] == b"a field name is not UTF-8 text: b'\\xc3('"
    assert letters[invalid][b"reason"] == b"value: 'warm' is not a number"
    assert ok in landed_ids(ws, "s")
    assert r.xpending(stream_key, GROUP)["pending"] == 0


@pytest.mark.parametrize("holder", ["same-name", "another"])
def test_a_poison_entry_left_pending_by_a_dead_consumer_does_not_wedge_the_next(
        ws: Workspace, redis_url: str, stream_key: str, holder: str) -> None:
    """The entry was delivered to a consumer that died before acknowledging it: the next one
    re-reads it as its own pending entry (same name) or claims it (another name)."""
    r = raw_client(redis_url)
    ids = [r.xadd(stream_key, good(t)).decode() for t in (0, 1)]
    poison = r.xadd(stream_key, {**good(2), b"sensor": b"\x80"}).decode()
    ids += [r.xadd(stream_key, good(t)).decode() for t in (3, 15)]
    name = socket.gethostname() if holder == "same-name" else "died"
    delivered = r.xreadgroup(GROUP, name, {stream_key: ">"})  # and never acknowledged
    assert len(delivered[0][1]) == 5
    stats = consume(ws, "s", until_idle_s=0.3, close_all=True)
    assert (stats.events, stats.rejected) == (4, 1)
    assert sorted(landed_ids(ws, "s")) == sorted([*ids, poison])
    assert [f[b"entry_id"].decode() for f in dead_letters(r, stream_key)] == [poison]
    assert r.xpending(stream_key, GROUP)["pending"] == 0
    # a restart finds nothing left to do, and adds no second dead letter
    again = consume(ws, "s", until_idle_s=0.3, close_all=True)
    assert (again.read, again.rejected) == (0, 0)
    assert len(dead_letters(r, stream_key)) == 1


def test_killed_after_landing_a_poison_entry_it_is_dead_lettered_once(
        ws: Workspace, redis_url: str, stream_key: str) -> None:
    """Killed between landing the rejected entry and acknowledging it: the restarted consumer
    finds it landed, and adds its dead letter with the acknowledgement, once."""
    r = raw_client(redis_url)
    poison = r.xadd(stream_key, {**good(0), b"device": POISON}).decode()
    ok = r.xadd(stream_key, good(1)).decode()
    env = {k: v for k, v in os.environ.items() if k != "BATCHSCORE_CRASH_AT"}
    env["BATCHSCORE_WORKSPACE"] = str(ws.settings.root)
    command = [sys.executable, "-m", "batchscore", "stream", "consume", "s", "--no-progress",
               "--batch", "1", "--until-idle", "1", "--close-all"]
    crashed = subprocess.run(command, env={**env, "BATCHSCORE_CRASH_AT": "stream-landed:1"},
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=240)
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    assert dead_letters(r, stream_key) == []
    # the poison entry landed, not acknowledged; the next one may be pending too (the
    # consumer's read-ahead asked for it before landing this batch): it lands on the next run
    pending = {e["message_id"].decode()
               for e in r.xpending_range(stream_key, GROUP, "-", "+", 10)}
    assert poison in pending and pending <= {poison, ok}
    done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [f[b"entry_id"].decode() for f in dead_letters(r, stream_key)] == [poison]
    assert sorted(landed_ids(ws, "s")) == sorted([poison, ok])
    assert r.xpending(stream_key, GROUP)["pending"] == 0
