"""The consumer's read path: entries as Redis sends them, canonical events taken straight from
their fields, and the Parquet bytes of a landing (the same as pandas writes)."""

from __future__ import annotations

import io

import pytest

from batchscore.streaming.events import Reading, canonical_entry, parse_event
from batchscore.streaming.landing import _parquet
from batchscore.streaming.redis_source import _entries, decode_fields, fields_of
from batchscore.streaming.windows import Window, aggregate

CANONICAL = [b"device", b"3", b"sensor", b"1", b"timestamp", b"1535497200.5", b"value", b"2.25"]


def _pairs(**fields: bytes) -> list[bytes]:
    return [x for name, value in fields.items() for x in (name.encode(), value)]


@pytest.mark.parametrize(("pairs", "taken"), [
    (CANONICAL, True),
    (_pairs(device=b"3", sensor=b"1", timestamp=b"1535497200", value=b"-0.0"), True),
    (_pairs(device=b" 3", sensor=b"1", timestamp=b"1", value=b"2"), False),  # not stripped
    (_pairs(device=b"", sensor=b"1", timestamp=b"1", value=b"2"), False),
    (_pairs(device=b"3", sensor=b"1", timestamp=b"nan", value=b"2"), False),
    (_pairs(device=b"3", sensor=b"1", timestamp=b"-1", value=b"2"), False),
    (_pairs(device=b"3", sensor=b"1", timestamp=b"1", value=b"inf"), False),
    (_pairs(device=b"3", sensor=b"1", timestamp=b"1e30", value=b"2"), False),  # too far ahead
    (_pairs(device=b"3", sensor=b"1", timestamp=b"2018-08-28 23:00:05", value=b"2"), False),
    (_pairs(device=b"\xff", sensor=b"1", timestamp=b"1", value=b"2"), False),
    (_pairs(device=b"d" * 201, sensor=b"1", timestamp=b"1", value=b"2"), False),
    (_pairs(sensor=b"1", device=b"3", timestamp=b"1", value=b"2"), False),  # another order
    (_pairs(device=b"3", sensor=b"1", timestamp=b"1"), False),
    (_pairs(device=b"3", sensor=b"1", timestamp=b"1", value=b"2", extra=b"x"), False),
    (_pairs(Device=b"3", sensor=b"1", timestamp=b"1", value=b"2"), False),
])
def test_a_canonical_entry_is_read_as_the_full_path_reads_it(pairs, taken):
    """canonical_entry gives the full path's event, or None (then the full path decides)."""
    fast = canonical_entry(pairs, max_future_s=86400.0, now=1535497200.0)
    fields, undecodable = decode_fields(fields_of(pairs))
    full = None if undecodable else parse_event(fields, max_future_s=86400.0,
                                                now=1535497200.0)
    assert (fast is not None) == taken
    if taken:
        assert fast == full


def test_entries_of_every_reply_shape():
    raw2 = [[b"k", [[b"1-0", CANONICAL], [b"1-1", None]]]]
    raw3 = {b"k": [[b"1-0", CANONICAL], [b"1-1", None]]}
    converted = [[b"k", [(b"1-0", fields_of(CANONICAL)), (b"1-1", None)]]]
    converted3 = {b"k": [[(b"1-0", fields_of(CANONICAL)), (b"1-1", None)]]}
    for reply in (raw2, raw3):
        assert _entries(reply) == [("1-0", CANONICAL), ("1-1", {})]
    for reply in (converted, converted3):
        assert _entries(reply) == [("1-0", fields_of(CANONICAL)), ("1-1", {})]
    assert _entries([]) == _entries(None) == _entries({}) == []
    assert fields_of(CANONICAL) == {b"device": b"3", b"sensor": b"1",
                                    b"timestamp": b"1535497200.5", b"value": b"2.25"}


def test_landed_parquet_is_what_pandas_writes():
    window = Window(0, 60)
    for i in range(900):  # more rows than pyarrow converts in one thread by itself
        window.add(f"{i}-0", Reading(str(i % 3), str(i % 5), float(i // 15), float(i % 97)))
    raw = window.raw()
    for frame in (raw, aggregate(window, ["count", "mean", "first", "last"], raw)):
        expected = io.BytesIO()
        frame.to_parquet(expected, index=False, engine="pyarrow")
        assert _parquet(frame) == expected.getvalue()
    assert aggregate(window, ["mean"], raw).equals(aggregate(window, ["mean"]))
