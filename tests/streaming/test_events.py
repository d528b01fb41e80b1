"""Event validation: every bad field of every event is named; good events parse exactly."""

from __future__ import annotations

import math

import pytest

from batchscore.errors import InputError
from batchscore.streaming import EventBatchError, Reading, parse_event, validate_events
from batchscore.streaming.events import parse_time

NOW = 1_700_000_000.0


def test_fields_are_matched_case_insensitively_and_ts_is_timestamp():
    event = parse_event({"TS": "2018-08-28 23:00:05.000", "Device": 1, "Sensor": "4",
                         "Value": "84.53"})
    assert event == Reading("1", "4", 1535497205.0, 84.53)


@pytest.mark.parametrize(("text", "seconds"), [
    ("2018-08-28T23:00:05Z", 1535497205.0),
    ("2018-08-28T23:00:05+02:00", 1535497205.0 - 7200),
    ("2018-08-28 23:00:05.250", 1535497205.25),
    (1535497205, 1535497205.0),
    ("1535497205.5", 1535497205.5),
])
def test_timestamps_iso_8601_or_unix_seconds_no_zone_is_utc(text, seconds):
    assert parse_time(text) == seconds


def test_canonical_redis_fields_round_trip_exactly():
    event = Reading("dev", "temp", 1535497205.123456, 0.1 + 0.2)
    assert parse_event(event.to_fields()) == event


@pytest.mark.parametrize(("raw", "field", "problem"), [
    ({"sensor": "1", "timestamp": 1.0, "value": 1}, "device", "is missing"),
    ({"device": "1", "timestamp": 1.0, "value": 1}, "sensor", "is missing"),
    ({"device": "1", "sensor": "1", "value": 1}, "timestamp", "is missing"),
    ({"device": "1", "sensor": "1", "timestamp": 1.0}, "value", "is missing"),
    ({"device": "1", "sensor": "1", "timestamp": 1.0, "value": None}, "value", "is missing"),
    ({"device": "1", "sensor": "1", "timestamp": 1.0, "value": "hot"}, "value",
     "'hot' is not a number"),
    ({"device": "1", "sensor": "1", "timestamp": 1.0, "value": True}, "value",
     "True is not a number"),
    ({"device": "1", "sensor": "1", "timestamp": 1.0, "value": "nan"}, "value",
     "not a finite number"),
    ({"device": "1", "sensor": "1", "timestamp": 1.0, "value": [1]}, "value",
     "is not a number"),
    ({"device": "", "sensor": "1", "timestamp": 1.0, "value": 1}, "device", "is empty"),
    ({"device": 1.5, "sensor": "1", "timestamp": 1.0, "value": 1}, "device",
     "must be text or a whole number"),
    ({"device": "1", "sensor": "1", "timestamp": "yesterday", "value": 1}, "timestamp",
     "neither ISO 8601 nor UNIX seconds"),
    ({"device": "1", "sensor": "1", "timestamp": "2018-13-45T00:00:00", "value": 1},
     "timestamp", "neither ISO 8601 nor UNIX seconds"),
    ({"device": "1", "sensor": "1", "timestamp": -5, "value": 1}, "timestamp", "before 1970"),
    ({"device": "1", "sensor": "1", "timestamp": math.inf, "value": 1}, "timestamp",
     "not a finite time"),
    ({"device": "1", "sensor": "1", "timestamp": NOW + 7200, "value": 1}, "timestamp",
     "more than 3600s in the future"),
])
def test_each_bad_field_is_named(raw, field, problem):
    result = parse_event(raw, 7, max_future_s=3600, now=NOW)
    assert isinstance(result, list) and len(result) == 1, result
    assert (result[0].index, result[0].field) == (7, field)
    assert problem in result[0].problem


def test_a_timestamp_within_max_future_is_accepted():
    assert isinstance(parse_event({"device": "1", "sensor": "1", "timestamp": NOW + 3500,
                                   "value": 1}, max_future_s=3600, now=NOW), Reading)


def test_not_an_object():
    (problem,) = parse_event(["1", "1", 1.0, 2.0], 3)
    assert (problem.index, problem.field) == (3, "*") and "must be an object" in problem.problem


def test_a_batch_names_every_bad_event_and_every_bad_field():
    batch = [
        {"device": "1", "sensor": "1", "timestamp": NOW, "value": 1},
        {"device": "1", "timestamp": "soon", "value": "x"},
        {"device": "1", "sensor": "1", "timestamp": NOW, "value": 2},
        {"device": "1", "sensor": "1", "timestamp": NOW + 86400, "value": 3},
    ]
    with pytest.raises(EventBatchError) as caught:
        validate_events(batch, source="upload.csv", max_future_s=3600, now=NOW)
    error = caught.value
    assert isinstance(error, InputError)
    assert [(p.index, p.field) for p in error.problems] == [
        (1, "sensor"), (1, "timestamp"), (1, "value"), (3, "timestamp")]
    assert str(error).startswith("upload.csv: 2 of 4 events are bad, nothing was written: "
                                 "event 1: sensor: is missing; event 1: timestamp:")


def test_the_message_lists_ten_problems_and_counts_the_rest():
    batch = [{"device": "1", "sensor": "1", "timestamp": NOW, "value": "x"}] * 13
    with pytest.raises(EventBatchError) as caught:
        validate_events(batch, now=NOW)
    assert len(caught.value.problems) == 13
    assert str(caught.value).endswith("; and 3 more")


def test_good_batches_keep_their_order():
    batch = [{"device": "a", "sensor": "t", "timestamp": NOW + i, "value": i} for i in range(5)]
    assert [e.value for e in validate_events(batch, now=NOW)] == [0, 1, 2, 3, 4]
