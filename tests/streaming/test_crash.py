"""THE test: a consumer process killed with SIGKILL mid-stream, restarted, and every event
sent lands exactly once (in a window or kept aside as late), each entry id once."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis
from sqlalchemy import select
from stream_helpers import T0, landed_ids, read_area

from batchscore.state.tables import stream_landings
from batchscore.streaming import get_stream, send_events
from batchscore.streaming.landing import CRASH_POINTS
from batchscore.streaming.redis_source import GROUP

KEYS = [("1", "a"), ("1", "b"), ("2", "a")]


def sensor_events(n: int, seed: int = 7) -> list[dict[str, object]]:
    """``n`` events, two a second per key, some of them late (a few beyond the lateness)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        device, sensor = KEYS[i % len(KEYS)]
        t = i / 2
        if rng.random() < 0.05:
            t -= rng.uniform(0, 25)  # late: within the lateness or beyond it
        out.append({"device": device, "sensor": sensor, "timestamp": T0 + t,
                    "value": round(rng.gauss(20, 3), 3)})
    return out


def consumer(ws, name: str, *args: str, crash_at: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "BATCHSCORE_CRASH_AT"}
    env["BATCHSCORE_WORKSPACE"] = str(ws.settings.root)
    if crash_at:
        env["BATCHSCORE_CRASH_AT"] = crash_at
    return subprocess.Popen(
        [sys.executable, "-m", "batchscore", "stream", "consume", name, "--no-progress", *args],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_until(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"consumer ended early ({proc.returncode}): "
                                 f"{proc.stdout.read().decode() if proc.stdout else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        time.sleep(0.05)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def assert_exactly_once(ws, name: str, sent: list[dict[str, object]], ids: list[str],
                        redis_url: str) -> None:
    got = landed_ids(ws, name)
    assert len(got) == len(set(got)), "an entry landed twice"
    assert sorted(got) == sorted(ids), "an entry was lost or invented"
    windows, late = read_area(ws, name, "windows"), read_area(ws, name, "late")
    counted = collections.Counter()
    for (d, s), n in windows.groupby(["device", "sensor"])["count"].sum().items():
        counted[(d, s)] += int(n)
    if len(late):
        for (d, s), n in late.groupby(["device", "sensor"]).size().items():
            counted[(d, s)] += int(n)
    assert counted == collections.Counter((e["device"], e["sensor"]) for e in sent)
    with ws.engine.connect() as conn:
        states = {r.state for r in conn.execute(select(stream_landings.c.state))}
    assert states == {"landed"}
    row = get_stream(ws, name)
    assert row.events_landed + row.events_late == len(sent)
    assert row.events_landed == int(windows["count"].sum())
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.xpending(row.redis_key, GROUP)["pending"] == 0


@pytest.mark.slow
def test_consumer_killed_mid_stream_and_restarted_lands_every_event_exactly_once(
        ws, make_stream, redis_url):
    make_stream("s", window="10s", lateness="5s")
    sent = sensor_events(3000)
    ids = send_events(ws, "s", sent[:1500]).ids
    first = consumer(ws, "s", "--batch", "20")
    wait_until(lambda: get_stream(ws, "s").windows_landed >= 5, first)
    kill(first)  # mid-stream: windows landed, others open, entries pending

    def send_rest() -> None:
        for i in range(1500, 3000, 100):
            ids.extend(send_events(ws, "s", sent[i:i + 100]).ids)
            time.sleep(0.02)

    sender = threading.Thread(target=send_rest)
    sender.start()  # events keep arriving while the consumer restarts and is killed again
    second = consumer(ws, "s", "--batch", "20")
    landed = get_stream(ws, "s").windows_landed
    wait_until(lambda: get_stream(ws, "s").windows_landed >= landed + 5, second)
    kill(second)
    sender.join()
    last = consumer(ws, "s", "--batch", "20", "--until-idle", "1", "--close-all")
    out = finish(last)
    assert "done: stream s:" in out
    assert_exactly_once(ws, "s", sent, ids, redis_url)
    assert get_stream(ws, "s").events_late > 0  # the test data has late events


@pytest.mark.slow
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_killed_at_each_crash_point_lands_exactly_once(ws, make_stream, redis_url, point):
    make_stream("s", window="10s", lateness="5s")
    sent = sensor_events(240, seed=11)
    ids = send_events(ws, "s", sent).ids
    crashed = consumer(ws, "s", "--batch", "10", "--until-idle", "1", "--close-all",
                       crash_at=f"{point}:3")
    assert crashed.wait(120) == -signal.SIGKILL, crashed.stdout.read().decode()
    finish(consumer(ws, "s", "--batch", "10", "--until-idle", "1", "--close-all"))
    assert_exactly_once(ws, "s", sent, ids, redis_url)
