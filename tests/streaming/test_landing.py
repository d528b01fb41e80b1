"""Landing: the time-partitioned layout, atomic files, and the intent that makes a landing
exactly-once when the consumer fails half-way (files removed, entries landed again)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy import select
from stream_helpers import T0, events, landed_ids, read_area

from batchscore.state.tables import stream_landings
from batchscore.streaming import consume, get_stream, partition_of, send_events, window_file
from batchscore.streaming import landing as landing_module


def test_partition_keys_and_window_file_names():
    assert partition_of(T0 + 3599, "hour") == ("date=2018-08-28/hour=23", T0 + 3600)
    assert partition_of(T0 + 3600, "hour") == ("date=2018-08-29/hour=00", T0 + 7200)
    assert partition_of(T0, "day") == ("date=2018-08-28", T0 + 3600)
    assert window_file(T0 + 90) == "2018-08-28T230130Z.parquet"


def test_layout_columns_and_success_markers(ws, make_stream):
    make_stream("s", window="10min", lateness="1min")
    ids = send_events(ws, "s", events(list(range(0, 7200, 60)), devices=("1", "2"))).ids
    consume(ws, "s", until_idle_s=0.3, close_all=True)
    files = ws.data.list("streams/s")
    windows = [f for f in files if f.startswith("streams/s/windows/")]
    assert windows[:2] == ["streams/s/windows/date=2018-08-28/hour=23/2018-08-28T230000Z.parquet",
                           "streams/s/windows/date=2018-08-28/hour=23/2018-08-28T231000Z.parquet"]
    assert "streams/s/windows/date=2018-08-28/hour=23/_SUCCESS" in windows
    assert "streams/s/windows/date=2018-08-29/hour=00/_SUCCESS" in windows
    assert len([f for f in windows if f.endswith(".parquet")]) == 12
    assert not [f for f in files if ".tmp-" in f]
    one = pd.read_parquet(ws.data.local_path(windows[0]))
    assert list(one.columns) == ["device", "sensor", "window_start", "window_end", "count",
                                 "mean", "min", "max"]
    assert one[["device", "count", "min", "max"]].values.tolist() == [
        ["1", 10, 0.0, 540.0], ["2", 10, 0.0, 540.0]]
    raw = pd.read_parquet(ws.data.local_path(windows[0].replace("/windows/", "/raw/")))
    assert list(raw.columns) == ["entry_id", "device", "sensor", "timestamp", "value"]
    assert raw["entry_id"].tolist() == ids[:20]
    marker = json.loads(ws.data.read_text("streams/s/windows/date=2018-08-28/hour=23/_SUCCESS"))
    assert (marker["windows"], marker["events"]) == (6, 120)
    # The partition folders read as one dataset (the markers are skipped).
    assert len(pd.read_parquet(ws.data.local_path("streams/s/windows"))) == 24


def test_daily_partitions(ws, make_stream):
    make_stream("s", window="1h", partition="day")
    send_events(ws, "s", events([0, 3600, 7200]))
    consume(ws, "s", until_idle_s=0.3, close_all=True)
    assert [f.split("/", 3)[3] for f in ws.data.list("streams/s/windows")] == [
        "date=2018-08-28/2018-08-28T230000Z.parquet", "date=2018-08-28/_SUCCESS",
        "date=2018-08-29/2018-08-29T000000Z.parquet",
        "date=2018-08-29/2018-08-29T010000Z.parquet"]  # the 29th is not over: no marker


class Crash(Exception):
    pass


def crash_at(monkeypatch, point: str, nth: int) -> None:
    """Make the landing fail at ``point`` the ``nth`` time it is reached (in this process)."""
    hits = {"n": 0}

    def fail(name: str) -> None:
        if name == point:
            hits["n"] += 1
            if hits["n"] == nth:
                raise Crash(name)

    monkeypatch.setattr(landing_module, "crash_point", fail)


def ledger(ws):
    with ws.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(stream_landings))]


def test_files_of_an_unfinished_landing_are_removed_and_landed_again(ws, make_stream,
                                                                     monkeypatch):
    make_stream("s", window="60s", lateness="0s")
    sent = events([0, 30, 61, 90, 125, 20, 190, 250])  # 20 is late once 125 arrived
    ids = send_events(ws, "s", sent).ids
    crash_at(monkeypatch, "stream-files-written", 2)
    with pytest.raises(Crash):
        consume(ws, "s", until_idle_s=0.3, batch=3)
    half = [row for row in ledger(ws) if row["state"] == "writing"]
    assert half and all(ws.data.exists(row["path"]) for row in half)  # files, no commit
    monkeypatch.undo()
    consume(ws, "s", until_idle_s=0.3, close_all=True, batch=3)
    assert all(row["state"] == "landed" for row in ledger(ws))
    got = landed_ids(ws, "s")
    assert sorted(got) == sorted(ids) and len(got) == len(set(got))
    referenced = {p for row in ledger(ws) for p in (row["path"], row["raw_path"]) if p}
    on_disk = {f for f in ws.data.list("streams/s") if f.endswith(".parquet")}
    assert on_disk == referenced  # nothing half-landed is left behind
    assert read_area(ws, "s", "late")["entry_id"].tolist() == [ids[5]]
    row = get_stream(ws, "s")
    assert (row.events_landed, row.events_late) == (7, 1)


def test_entries_landed_but_not_acknowledged_are_only_acknowledged(ws, make_stream,
                                                                   monkeypatch):
    make_stream("s", window="60s", lateness="0s")
    ids = send_events(ws, "s", events([0, 30, 61, 90, 125, 20, 190])).ids
    crash_at(monkeypatch, "stream-landed", 2)
    with pytest.raises(Crash):
        consume(ws, "s", until_idle_s=0.3, batch=3)
    monkeypatch.undo()
    stats = consume(ws, "s", until_idle_s=0.3, close_all=True, batch=3)
    assert stats.duplicates > 0
    got = landed_ids(ws, "s")
    assert sorted(got) == sorted(ids) and len(got) == len(set(got))
    row = get_stream(ws, "s")
    assert row.events_landed + row.events_late == len(ids)
