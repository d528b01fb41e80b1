"""Tumbling windows, the watermark and the allowed lateness, one rule at a time."""

from __future__ import annotations

import pandas as pd
import pytest

from batchscore.errors import SpecError
from batchscore.streaming import Reading, TumblingWindows, aggregate
from batchscore.streaming.windows import check_aggregates


def ev(t: float, value: float = 1.0, device: str = "d", sensor: str = "s") -> Reading:
    return Reading(device, sensor, float(t), value)


def feed(windows: TumblingWindows, *times: float) -> list[bool]:
    """Add events at ``times``; True for each that went to a window, False for late ones."""
    return [windows.add(f"{t}-0", ev(t)) is not None for t in times]


def test_events_go_to_the_window_holding_their_time():
    w = TumblingWindows(60, 30)
    feed(w, 0, 59.999, 60, 125)
    assert {s: len(win) for s, win in w.open.items()} == {0: 2, 60: 1, 120: 1}
    assert w.window_of(-0.5) == -60


def test_a_window_closes_when_the_watermark_reaches_its_end():
    w = TumblingWindows(60, 30)
    feed(w, 10, 50, 89)
    assert w.watermark == 59 and w.due() == []
    feed(w, 90)  # watermark 60: the window [0, 60) is complete
    (due,) = w.due()
    assert (due.start, due.end, len(due)) == (0, 60, 2)
    assert list(w.open) == [60] and w.due() == []


def test_late_events_within_the_lateness_go_to_their_window():
    w = TumblingWindows(60, 30)
    assert feed(w, 85, 5, 40) == [True, True, True]  # watermark 55 < 60: [0, 60) is open
    assert len(w.open[0]) == 2


def test_events_for_a_closed_window_are_late_and_never_merged():
    w = TumblingWindows(60, 30)
    feed(w, 10, 95)  # watermark 65: [0, 60) closed
    assert feed(w, 59) == [False]
    (due,) = w.due()
    assert due.entry_ids == ["10-0"]  # the late event is not in it


def test_an_event_is_judged_by_the_events_before_it_not_by_batching():
    w = TumblingWindows(60, 0)
    assert feed(w, 30, 120, 50) == [True, True, False]


def test_the_watermark_never_goes_back():
    w = TumblingWindows(60, 30)
    feed(w, 200, 100)
    assert w.watermark == 170 and w.max_event_time == 200


def test_a_restored_watermark_keeps_landed_windows_closed():
    w = TumblingWindows(60, 30, watermark=120.0, max_event_time=150.0)
    assert feed(w, 100, 119.5, 125) == [False, False, True]
    assert w.watermark == 120


def test_zero_lateness_closes_at_the_first_event_past_the_end():
    w = TumblingWindows(10, 0)
    feed(w, 1, 9.5)
    assert w.due() == []
    feed(w, 10)
    assert [x.start for x in w.due()] == [0]


def test_close_all_lands_every_open_window_and_later_events_are_late():
    w = TumblingWindows(60, 300)
    feed(w, 1, 70, 130)
    assert [x.start for x in w.close_all()] == [0, 60, 120]
    assert w.watermark == 180 and not w.open and not w.held
    assert feed(w, 150, 185) == [False, True]


def test_due_windows_come_oldest_first_and_leave_the_held_set():
    w = TumblingWindows(10, 0)
    assert feed(w, 25, 5, 15) == [True, False, False]  # watermark 25: [0,10), [10,20) closed
    assert [x.start for x in w.due()] == []
    assert w.held == {"25-0"}
    feed(w, 40)
    assert [x.start for x in w.due()] == [20]
    assert w.held == {"40-0"}


def test_invalid_settings_are_refused():
    with pytest.raises(SpecError, match="whole number of seconds"):
        TumblingWindows(0, 0)
    with pytest.raises(SpecError, match="whole number of seconds"):
        TumblingWindows(1.5, 0)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="lateness must be 0 or more"):
        TumblingWindows(60, -1)


def test_aggregates_per_device_and_sensor():
    w = TumblingWindows(60, 0)
    for i, (t, v, d, s) in enumerate([(5, 3.0, "b", "x"), (1, 1.0, "a", "x"), (2, 5.0, "a", "x"),
                                      (3, 7.0, "a", "y"), (4, 2.0, "a", "x")]):
        w.add(f"1-{i}", ev(t, v, d, s))
    window = w.open[0]
    out = aggregate(window, ["mean", "min", "max", "sum", "first", "last", "std", "median"])
    assert list(out.columns) == ["device", "sensor", "window_start", "window_end", "count",
                                 "sum", "mean", "min", "max", "std", "median", "first", "last"]
    assert out[["device", "sensor"]].values.tolist() == [["a", "x"], ["a", "y"], ["b", "x"]]
    ax = out.iloc[0]
    assert (ax["count"], ax["sum"], ax["mean"], ax["min"], ax["max"]) == (3, 8.0, 8 / 3, 1.0, 5.0)
    assert (ax["first"], ax["last"], ax["median"]) == (1.0, 2.0, 2.0)  # by time, not arrival
    assert ax["std"] == pytest.approx(pd.Series([1.0, 5.0, 2.0]).std())
    assert ax["window_start"] == pd.Timestamp(0, unit="s", tz="UTC")
    assert ax["window_end"] == pd.Timestamp(60, unit="s", tz="UTC")
    assert out["count"].tolist() == [3, 1, 1] and str(out["count"].dtype) == "int64"


def test_count_is_always_there_and_unknown_aggregates_are_refused():
    assert check_aggregates(["max", "MEAN"]) == ["count", "mean", "max"]
    with pytest.raises(SpecError, match="unknown aggregate 'avg'; choose from count, sum"):
        check_aggregates(["avg"])
