"""Redis Streams end to end: consumer group, acknowledgements after landing, pending entries
re-read and claimed again, late and rejected entries kept aside, one consumer at a time."""

from __future__ import annotations

import collections
import threading

import pytest
import redis
from stream_helpers import T0, events, landed_ids, read_area

from batchscore.streaming import (
    StreamBusyError,
    StreamConsumer,
    consume,
    get_stream,
    send_events,
)
from batchscore.streaming.lease import Lease
from batchscore.streaming.redis_source import GROUP


def client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def per_key(frame) -> dict[tuple[str, str], int]:
    return {(d, s): int(n) for (d, s), n in frame.groupby(["device", "sensor"])["count"].sum()
            .items()}


def test_windows_land_after_the_watermark_and_open_ones_stay_pending(ws, make_stream,
                                                                     redis_url):
    stream = make_stream("s", window="60s", lateness="30s")
    sent = events(list(range(0, 600, 10)), devices=("1", "2"), sensors=("a",))
    ids = send_events(ws, "s", sent).ids
    stats = consume(ws, "s", until_idle_s=0.3, batch=25)
    # max time 590: watermark 560, windows up to [480, 540) closed, [540, 600) still open.
    assert (stats.windows, stats.events, stats.open_windows) == (9, 108, 1)
    r = client_for(redis_url)
    assert r.xpending(stream.redis_key, GROUP)["pending"] == 12  # the open window's entries
    row = get_stream(ws, "s")
    assert (row.windows_landed, row.events_landed, row.watermark) == (9, 108, T0 + 560)
    # A new consumer re-reads the pending entries; at the end of input it lands them too.
    again = consume(ws, "s", until_idle_s=0.3, close_all=True)
    assert (again.read, again.windows, again.events, again.duplicates) == (12, 1, 12, 0)
    assert r.xpending(stream.redis_key, GROUP)["pending"] == 0
    assert sorted(landed_ids(ws, "s")) == sorted(ids)
    windows = read_area(ws, "s", "windows")
    assert per_key(windows) == {("1", "a"): 60, ("2", "a"): 60}
    assert windows["count"].tolist() == [6] * 20
    assert windows["mean"].iloc[0] == 25.0  # values 0, 10, ..., 50


def test_late_events_are_kept_aside_never_merged(ws, make_stream):
    make_stream("s", window="60s", lateness="0s")
    send_events(ws, "s", events([0, 30, 60, 125]))
    consume(ws, "s", until_idle_s=0.3)
    before = read_area(ws, "s", "windows")
    assert before["window_start"].tolist() == [pd_ts(0), pd_ts(60)]
    late_ids = send_events(ws, "s", events([45, 119, 170])).ids  # 45, 119: windows landed
    stats = consume(ws, "s", until_idle_s=0.3)
    assert (stats.late, stats.windows) == (2, 0)
    late = read_area(ws, "s", "late")
    assert sorted(late["entry_id"]) == sorted(late_ids[:2])
    assert late["window_start"].tolist() == [pd_ts(0), pd_ts(60)]
    assert read_area(ws, "s", "windows").equals(before)  # landed windows are never touched
    assert get_stream(ws, "s").events_late == 2


def pd_ts(offset: float):
    import pandas as pd

    return pd.Timestamp(T0 + offset, unit="s", tz="UTC")


def test_bad_entries_in_redis_are_rejected_kept_aside_and_acknowledged(ws, make_stream,
                                                                      redis_url):
    stream = make_stream("s", max_future="1h")
    r = client_for(redis_url)
    good = r.xadd(stream.redis_key, {"device": "1", "sensor": "1", "timestamp": str(T0),
                                     "value": "1.5"})
    bad = [r.xadd(stream.redis_key, fields) for fields in (
        {"device": "1", "timestamp": str(T0), "value": "2"},
        {"device": "1", "sensor": "1", "timestamp": str(T0), "value": "warm"},
        {"device": "1", "sensor": "1", "timestamp": "9999999999", "value": "2"},
        {"device": "1", "sensor": "1", "timestamp": "Tuesday", "value": "2"},
    )]
    stats = consume(ws, "s", until_idle_s=0.3, close_all=True)
    assert (stats.rejected, stats.events) == (4, 1)
    rejected = read_area(ws, "s", "rejected").set_index("entry_id")
    assert list(rejected.index) == bad
    problems = rejected["problem"].tolist()
    assert problems[0] == "sensor: is missing"
    assert problems[1] == "value: 'warm' is not a number"
    assert "in the future" in problems[2] and "neither ISO 8601" in problems[3]
    assert '"value": "warm"' in rejected["fields"].iloc[1]  # the entry as it came
    assert r.xpending(stream.redis_key, GROUP)["pending"] == 0
    assert landed_ids(ws, "s").count(good) == 1
    assert get_stream(ws, "s").events_rejected == 4


def test_a_dead_consumers_pending_entries_are_claimed_by_another(ws, make_stream, redis_url):
    stream = make_stream("s", window="10s", lateness="5s")
    ids = send_events(ws, "s", events(list(range(0, 100, 2)), sensors=("a", "b"))).ids
    # Consumer "a" reads 30 entries and goes away with its open window's entries pending.
    first = StreamConsumer(ws, "s", consumer="a", batch=10).run(max_events=30)
    assert first.open_events > 0
    r = client_for(redis_url)
    owners = {c["name"]: c["pending"] for c in r.xpending(stream.redis_key, GROUP)["consumers"]}
    assert owners == {"a": first.open_events}
    second = StreamConsumer(ws, "s", consumer="b", batch=10).run(until_idle_s=0.3,
                                                                 close_all=True)
    assert second.read == len(ids) - 30 + first.open_events
    assert r.xpending(stream.redis_key, GROUP)["pending"] == 0
    got = landed_ids(ws, "s")
    assert sorted(got) == sorted(ids) and len(set(got)) == len(got)


def test_entries_deleted_from_redis_while_pending_are_dropped_and_counted(ws, make_stream,
                                                                          redis_url):
    stream = make_stream("s", window="60s", lateness="0s")
    ids = send_events(ws, "s", events([1, 2, 3])).ids
    StreamConsumer(ws, "s", consumer="a").run(until_idle_s=0.2)  # all three pending
    r = client_for(redis_url)
    r.xdel(stream.redis_key, ids[1])
    stats = StreamConsumer(ws, "s", consumer="a").run(until_idle_s=0.2, close_all=True)
    assert (stats.deleted, stats.events) == (1, 2)
    assert r.xpending(stream.redis_key, GROUP)["pending"] == 0


def test_one_consumer_at_a_time(ws, make_stream):
    make_stream("s")
    holder = Lease(ws, "s")
    holder.acquire()
    with pytest.raises(StreamBusyError, match=r"is being consumed by .*stop that consumer"):
        consume(ws, "s", until_idle_s=0.1)
    holder.release()
    consume(ws, "s", until_idle_s=0.1)  # free again
    expired = Lease(ws, "s", seconds=-1)  # a holder that stopped renewing
    expired.acquire()
    consume(ws, "s", until_idle_s=0.1)


def test_a_stop_request_ends_the_consumer_and_releases_the_lease(ws, make_stream):
    make_stream("s")
    stop = threading.Event()
    consumer = StreamConsumer(ws, "s", block_ms=100)
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    send_events(ws, "s", events([0, 1]))
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert get_stream(ws, "s").lease_owner is None


def test_many_keys_and_windows_land_exactly_once_per_key(ws, make_stream):
    make_stream("s", window="5s", lateness="3s", aggregates=["sum"])
    sent = events([t / 2 for t in range(0, 240)], devices=("1", "2", "3"), sensors=("x", "y"))
    for i in range(0, len(sent), 500):
        send_events(ws, "s", sent[i:i + 500])
    consume(ws, "s", until_idle_s=0.3, close_all=True, batch=97)
    windows = read_area(ws, "s", "windows")
    expected = collections.Counter((e["device"], e["sensor"]) for e in sent)
    assert per_key(windows) == dict(expected)
    assert windows.groupby(["device", "sensor"])["sum"].sum().round(6).tolist() == [
        round(sum(t / 2 for t in range(240)), 6)] * 6


def test_entries_read_ahead_by_a_consumer_that_stops_stay_pending_and_land_once(ws, make_stream,
                                                                             redis_url):
    """The next batch is asked for before this one lands; a consumer that stops then leaves
    it pending (unread), and the next run lands every entry exactly once."""
    stream = make_stream("s", window="10s", lateness="0s")
    ids = send_events(ws, "s", events(list(range(100)))).ids
    stop = threading.Event()

    def after_a_batch(stats) -> None:  # type: ignore[no-untyped-def]
        if stats.read >= 10:
            stop.set()

    first = StreamConsumer(ws, "s", consumer="a", batch=10, progress=after_a_batch).run(stop)
    assert first.read == 10 and first.events < 10  # the open window's entries wait
    r = client_for(redis_url)
    assert r.xpending(stream.redis_key, GROUP)["pending"] >= 10 - first.events
    again = StreamConsumer(ws, "s", consumer="a", batch=10).run(until_idle_s=0.3,
                                                                close_all=True)
    assert again.duplicates == 0
    assert r.xpending(stream.redis_key, GROUP)["pending"] == 0
    got = landed_ids(ws, "s")
    assert sorted(got) == sorted(ids) and len(set(got)) == len(got)


def test_a_read_ahead_stops_at_max_events(ws, make_stream, redis_url):
    stream = make_stream("s", window="10s", lateness="0s")
    send_events(ws, "s", events(list(range(50))))
    stats = StreamConsumer(ws, "s", consumer="a", batch=7).run(max_events=20)
    assert stats.read == 20
    r = client_for(redis_url)
    info = r.xinfo_consumers(stream.redis_key, GROUP)
    assert {c["name"]: c["pending"] for c in info} == {"a": 20 - stats.events}
