"""The Redis stream is trimmed to what is acknowledged and landed, and never further: entries
of windows still open (pending), entries not yet delivered, and entries another consumer
group has not acknowledged all stay."""

from __future__ import annotations

import uuid

import pytest
import redis

from batchscore.streaming import StreamConsumer, consume, create_stream, send_events
from batchscore.streaming.redis_source import GROUP
from batchscore.workspace import Workspace
from streaming.stream_helpers import events, landed_ids


def client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


@pytest.fixture
def make_stream(ws: Workspace, redis_url: str):  # type: ignore[no-untyped-def]
    def make(**options: str) -> str:
        key = f"test:{uuid.uuid4().hex}"
        create_stream(ws, "s", redis_url=redis_url, redis_key=key, **options)
        return key

    return make


def test_landed_entries_are_trimmed_and_pending_ones_stay(ws, redis_url, make_stream):
    key = make_stream(window="60s", lateness="30s")
    ids = send_events(ws, "s", events(list(range(0, 600, 10)), devices=("1", "2"))).ids
    stats = consume(ws, "s", until_idle_s=0.3)
    assert (stats.events, stats.open_events) == (108, 12)
    r = client_for(redis_url)
    # what landed is gone from Redis; the open window's 12 entries are still there, pending
    assert r.xlen(key) == 12 and stats.trimmed == 108
    assert [i for i, _ in r.xrange(key)] == ids[-12:]
    assert r.xpending(key, GROUP)["pending"] == 12
    # a restarted consumer lands them from Redis, and trims them in turn
    later = send_events(ws, "s", events([700])).ids  # not yet delivered: it stays
    again = StreamConsumer(ws, "s").run(max_events=12)
    assert again.events == 0 and r.xlen(key) == 13  # rebuilt the window, landed nothing yet
    done = consume(ws, "s", until_idle_s=0.3, close_all=True)
    assert done.events == 13
    assert r.xlen(key) == 0
    assert sorted(landed_ids(ws, "s")) == sorted(ids + later)


def test_an_acknowledged_entry_after_a_pending_one_stays_until_that_one_lands(
        ws, redis_url, make_stream):
    key = make_stream(window="60s", lateness="0s")
    r = client_for(redis_url)
    first = send_events(ws, "s", events([0])).ids  # its window stays open: pending
    bad = r.xadd(key, {"device": "1", "sensor": "1", "timestamp": "0", "value": "warm"})
    second = send_events(ws, "s", events([30])).ids
    stats = consume(ws, "s", until_idle_s=0.3)
    assert (stats.rejected, stats.open_events, stats.acked) == (1, 2, 1)
    # the rejected entry is acknowledged, but it comes after a pending one: nothing is trimmed
    assert [i for i, _ in r.xrange(key)] == [*first, bad, *second]
    consume(ws, "s", until_idle_s=0.3, close_all=True)
    assert r.xlen(key) == 0


def test_entries_another_group_has_not_acknowledged_stay(ws, redis_url, make_stream):
    key = make_stream(window="10s", lateness="0s")
    r = client_for(redis_url)
    r.xgroup_create(key, "analytics", id="0")  # someone else's reader of the same stream
    ids = send_events(ws, "s", events(list(range(0, 40, 2)))).ids
    consume(ws, "s", until_idle_s=0.3, close_all=True)
    assert r.xlen(key) == 20  # landed here, but "analytics" has read none of it
    # "analytics" reads 15 and acknowledges the first 12: those 12 can go, no more
    got = r.xreadgroup("analytics", "a1", {key: ">"}, count=15)[0][1]
    r.xack(key, "analytics", *[i for i, _ in got[:12]])
    assert consume(ws, "s", until_idle_s=0.3).trimmed == 12
    assert [i for i, _ in r.xrange(key)] == ids[12:]
    assert sorted(landed_ids(ws, "s")) == sorted(ids)


def test_a_stream_without_a_consumer_group_is_never_trimmed(redis_url):
    from batchscore.streaming.redis_source import trim_acknowledged

    r = client_for(redis_url)
    key = f"test:{uuid.uuid4().hex}"
    r.xadd(key, {"a": "1"})
    assert trim_acknowledged(r, key) == 0
    assert r.xlen(key) == 1
