"""Storage triggers and schedules: one run per blob version, across restarts and outages."""

from __future__ import annotations

import os
from unittest import mock

import pytest
from sqlalchemy import select

from batchscore.errors import SpecError
from batchscore.pipelines import list_runs
from batchscore.state.tables import trigger_ledger
from batchscore.triggers import (
    TriggerLoop,
    create_trigger,
    get_trigger,
    list_triggers,
    remove_trigger,
    tick_schedule,
)


def put(ws, rel, data=b"video"):
    ws.data.write_bytes(rel, data)


def storage_trigger(ws, **kw):
    args = dict(prefix="incoming/", pattern="*.mp4", output="outgoing/",
                params={"style": "7"}, settle_seconds=1.0)
    return create_trigger(ws, "videos", "video-style", **{**args, **kw})


def test_each_new_blob_starts_exactly_one_run_once_stable(ws):
    put(ws, "incoming/old.mp4")
    storage_trigger(ws)
    loop = TriggerLoop(ws)
    put(ws, "incoming/new.mp4")
    put(ws, "incoming/notes.txt")
    put(ws, "incoming/.hidden.mp4")
    assert loop.scan_once(now=1000.0) == []  # seen once: maybe still uploading
    put(ws, "incoming/growing.mp4", b"v")
    assert loop.scan_once(now=1000.5) == []
    started = loop.scan_once(now=1001.2)
    assert [r.params["input"] for r in started] == ["incoming/new.mp4"]
    assert started[0].params["style"] == "7" and started[0].params["output"] == "outgoing/"
    put(ws, "incoming/growing.mp4", b"video, more of it")  # still being written
    assert loop.scan_once(now=1002.0) == []
    assert [r.params["input"] for r in loop.scan_once(now=1003.5)] == ["incoming/growing.mp4"]
    assert loop.scan_once(now=1010.0) == []
    # A restarted service (a new loop, nothing in memory) starts nothing again.
    restarted = TriggerLoop(ws)
    assert restarted.scan_once(now=2000.0) == [] and restarted.scan_once(now=2010.0) == []
    runs = list_runs(ws.engine)
    assert sorted(r.params["input"] for r in runs) == ["incoming/growing.mp4",
                                                       "incoming/new.mp4"]
    assert all(r.state == "queued" and r.trigger_id for r in runs)


def test_existing_blobs_are_processed_only_when_asked(ws):
    put(ws, "incoming/old.mp4")
    storage_trigger(ws, settle_seconds=0, process_existing=True)
    assert [r.params["input"] for r in TriggerLoop(ws).scan_once()] == ["incoming/old.mp4"]


def test_the_same_name_uploaded_again_is_a_new_run(ws):
    storage_trigger(ws, settle_seconds=0)
    loop = TriggerLoop(ws)
    put(ws, "incoming/a.mp4", b"first")
    first = loop.scan_once()
    put(ws, "incoming/a.mp4", b"second upload")
    path = ws.data.local_path("incoming/a.mp4")
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
    second = loop.scan_once()
    assert len(first) == len(second) == 1 and first[0].id != second[0].id
    with ws.engine.connect() as conn:
        versions = conn.execute(select(trigger_ledger.c.version)).scalars().all()
    assert len(set(versions)) == 2


def test_an_unreachable_store_backs_off_and_catches_up(ws):
    storage_trigger(ws, settle_seconds=0)
    loop = TriggerLoop(ws, interval=1.0)
    put(ws, "incoming/a.mp4")
    with mock.patch("batchscore.triggers.watch.list_blobs",
                    side_effect=ConnectionError("store down")):
        assert loop.scan_once(now=100.0) == []
        health = next(iter(loop.health.values()))
        assert health.failures == 1 and "store down" in health.last_error
        assert loop.scan_once(now=100.5) == []  # waiting: not even tried
        assert loop.scan_once(now=101.5) == [] and health.failures == 2
        assert health.retry_at == 103.5  # twice as long each time
    assert loop.scan_once(now=103.0) == []
    assert len(loop.scan_once(now=104.0)) == 1
    assert health.failures == 0 and health.last_error is None
    assert loop.scan_once(now=200.0) == []


def test_marker_files_gate_the_blobs_of_their_folder(ws):
    storage_trigger(ws, pattern="*.mp4", marker="trigger*", settle_seconds=60)
    loop = TriggerLoop(ws)
    put(ws, "incoming/batch1/a.mp4")
    assert loop.scan_once() == []
    put(ws, "incoming/batch1/trigger.txt", b"")
    assert [r.params["input"] for r in loop.scan_once()] == ["incoming/batch1/a.mp4"]


def test_a_blob_that_fails_validation_is_recorded_as_a_failed_run(ws):
    storage_trigger(ws, settle_seconds=0, pattern="*")
    put(ws, "incoming/readme.txt")
    [run] = TriggerLoop(ws).scan_once()
    assert run.state == "failed" and "must be a video" in run.reason
    assert TriggerLoop(ws).scan_once() == []


def test_trigger_validation(ws):
    with pytest.raises(SpecError, match="overlap"):
        create_trigger(ws, "t", "video-style", prefix="incoming/", output="incoming/out/")
    with pytest.raises(SpecError, match="output folder"):
        create_trigger(ws, "t", "video-style", prefix="incoming/")
    with pytest.raises(SpecError, match="cron expression"):
        create_trigger(ws, "t", "video-style", cron="every day",
                       params={"input": "a.mp4", "output": "o/"})
    with pytest.raises(SpecError, match="style"):
        create_trigger(ws, "t", "video-style", prefix="in/", output="out/",
                       params={"style": "nope"})
    with pytest.raises(Exception, match="leaves the data store"):
        create_trigger(ws, "t", "video-style", prefix="../system/", output="out/")
    with pytest.raises(Exception, match="no pipeline"):
        create_trigger(ws, "t", "nope", prefix="in/", output="out/")
    storage_trigger(ws)
    with pytest.raises(SpecError, match="exists already"):
        storage_trigger(ws)
    assert [t.name for t in list_triggers(ws.engine)] == ["videos"]
    remove_trigger(ws, "videos")
    assert list_triggers(ws.engine) == []


def test_a_schedule_starts_one_run_per_tick_and_collapses_missed_ones(ws):
    trigger = create_trigger(ws, "hourly", "video-style", cron="0 * * * *",
                             params={"input": "in/a.mp4", "output": "out/"})
    start = trigger.cursor
    assert tick_schedule(ws, trigger, now=start + 1) is None or start % 3600 == 0
    next_hour = (start // 3600 + 1) * 3600
    run = tick_schedule(ws, get_trigger(ws.engine, "hourly"), now=next_hour + 5)
    assert run is not None and run.run_key.endswith(f":{next_hour:.0f}")
    assert tick_schedule(ws, get_trigger(ws.engine, "hourly"), now=next_hour + 10) is None
    # down for 5 hours: one run for the latest tick, not five
    later = tick_schedule(ws, get_trigger(ws.engine, "hourly"), now=next_hour + 5 * 3600 + 1)
    assert later is not None and later.run_key.endswith(f":{next_hour + 5 * 3600:.0f}")
    # the same tick again (a restart that read an old cursor) is refused by the run key
    stale = get_trigger(ws.engine, "hourly")
    object.__setattr__(stale, "cursor", next_hour + 4 * 3600)
    assert tick_schedule(ws, stale, now=next_hour + 5 * 3600 + 2) is None
    assert len(list_runs(ws.engine)) == 2
