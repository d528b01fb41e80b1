"""Sensor events: (device, sensor, timestamp, value), and their validation.

An event arrives as a mapping of fields (a JSON object over HTTP, a CSV row, a JSON line, the
fields of a Redis Streams entry). Field names are matched case-insensitively, and ``ts`` is
accepted for ``timestamp`` (the sensor data's own header is ``TS,Device,Sensor,Value``):

- ``device``, ``sensor``: non-empty text or whole numbers (kept as text);
- ``timestamp``: ISO 8601 (``2018-08-28 23:00:05.000``, ``2018-08-28T23:00:05Z``; no zone means
  UTC) or UNIX seconds, and not further in the future than the stream allows;
- ``value``: a finite number (or its text).

Every bad field of every event is reported (index, field, problem), so that a whole batch can
be refused at once with everything that is wrong in it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import EventBatchError, EventProblem

__all__ = [
    "FIELDS",
    "Reading",
    "canonical_entry",
    "format_time",
    "parse_event",
    "parse_time",
    "validate_events",
]

FIELDS = ("device", "sensor", "timestamp", "value")
_ALIASES = {"ts": "timestamp"}
_MAX_ID = 200  # characters of a device or sensor name
_CANONICAL = {"device", "sensor", "timestamp", "value"}
_PLAIN = (str, float, int)


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading: ``timestamp`` in UNIX seconds (UTC)."""

    device: str
    sensor: str
    timestamp: float
    value: float

    def to_fields(self) -> dict[str, str]:
        """The canonical fields of a Redis Streams entry (text, exact round trip)."""
        return {"device": self.device, "sensor": self.sensor,
                "timestamp": repr(self.timestamp), "value": repr(self.value)}


def format_time(seconds: float) -> str:
    """``seconds`` as ISO 8601 in UTC (``2018-08-28T23:00:05Z``), for messages; a time past
    the calendar's (year 9999) as UNIX seconds."""
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"{seconds:g} (UNIX seconds)"


def parse_time(value: Any) -> float:
    """UNIX seconds from ISO 8601 text or a number; ValueError says what is wrong."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("is empty")
        try:
            seconds = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{value!r} is neither ISO 8601 nor UNIX seconds") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            seconds = parsed.timestamp()
    else:
        raise ValueError(f"{value!r} ({type(value).__name__}) is not a time")
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite time")
    if seconds < 0:
        raise ValueError(f"{value!r} is before 1970")
    return seconds


def _name(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{value!r} ({type(value).__name__}) must be text or a whole number")
    text = str(value).strip()
    if not text:
        raise ValueError("is empty")
    if len(text) > _MAX_ID:
        raise ValueError(f"is longer than {_MAX_ID} characters")
    return text


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    else:
        raise ValueError(f"{value!r} ({type(value).__name__}) is not a number")
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _fields(raw: Mapping[Any, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        name = name.strip().lower()
        name = _ALIASES.get(name, name)
        found[name] = value.decode() if isinstance(value, bytes) else value
    return found


def parse_event(raw: Any, index: int = 0, *, max_future_s: float | None = None,
                now: float | None = None) -> Reading | list[EventProblem]:
    """The event in ``raw``, or the list of what is wrong with it (``index`` names it)."""
    fast = _canonical(raw, max_future_s, now)
    if fast is not None:
        return fast
    if not isinstance(raw, Mapping):
        return [EventProblem(index, "*", f"must be an object with the fields {', '.join(FIELDS)}"
                             f", got {type(raw).__name__}")]
    fields = _fields(raw)
    problems: list[EventProblem] = []
    parsed: dict[str, Any] = {}
    for field in FIELDS:
        value = fields.get(field)
        if value is None:
            problems.append(EventProblem(index, field, "is missing"))
            continue
        try:
            if field in ("device", "sensor"):
                parsed[field] = _name(value, field)
            elif field == "timestamp":
                parsed[field] = parse_time(value)
            else:
                parsed[field] = _number(value)
        except ValueError as exc:
            problems.append(EventProblem(index, field, str(exc)))
    if "timestamp" in parsed and max_future_s is not None:
        limit = (time.time() if now is None else now) + max_future_s
        if parsed["timestamp"] > limit:
            problems.append(EventProblem(
                index, "timestamp", f"{format_time(parsed['timestamp'])} is more than "
                f"{max_future_s:g}s in the future (the stream's max_future)"))
    if problems:
        return problems
    return Reading(parsed["device"], parsed["sensor"], parsed["timestamp"], parsed["value"])


def _canonical(raw: Any, max_future_s: float | None, now: float | None) -> Reading | None:
    """The event of a canonical entry (what :meth:`Reading.to_fields` writes), quickly; None
    for anything else, which the full path then parses or explains."""
    if type(raw) is not dict or raw.keys() != _CANONICAL:
        return None
    return _plain_reading(raw["device"], raw["sensor"], raw["timestamp"], raw["value"],
                          max_future_s, now)


_CANONICAL_NAMES = (b"device", b"sensor", b"timestamp", b"value")


def canonical_entry(pairs: list[Any], max_future_s: float | None = None,
                    now: float | None = None) -> Reading | None:
    """The event of a Redis Streams entry's fields as Redis sends them (``[name, value, ...]``,
    bytes) when they are exactly what :meth:`Reading.to_fields` writes, in its order, and
    valid; None for anything else (then decode the fields and :func:`parse_event` them)."""
    if len(pairs) != 8 or (pairs[0], pairs[2], pairs[4], pairs[6]) != _CANONICAL_NAMES:
        return None
    try:
        device, sensor = pairs[1].decode(), pairs[3].decode()
        timestamp, value = pairs[5].decode(), pairs[7].decode()
    except (AttributeError, UnicodeDecodeError):
        return None
    return _plain_reading(device, sensor, timestamp, value, max_future_s, now)


def _plain_reading(device: Any, sensor: Any, timestamp: Any, value: Any,
                   max_future_s: float | None, now: float | None) -> Reading | None:
    if not (type(device) is str and type(sensor) is str and 0 < len(device) <= _MAX_ID
            and 0 < len(sensor) <= _MAX_ID and device == device.strip()
            and sensor == sensor.strip()):
        return None
    if type(timestamp) not in _PLAIN or type(value) not in _PLAIN:
        return None  # booleans, lists, None: the full path says what is wrong
    try:
        seconds, number = float(timestamp), float(value)
    except ValueError:
        return None
    if not (math.isfinite(seconds) and seconds >= 0 and math.isfinite(number)):
        return None
    limit = None if max_future_s is None else (time.time() if now is None else now) + max_future_s
    if limit is not None and seconds > limit:
        return None
    return Reading(device, sensor, seconds, number)


def validate_events(raws: Iterable[Any], *, source: str = "batch",
                    max_future_s: float | None = None, now: float | None = None,
                    first_index: int = 0) -> list[Reading]:
    """Every event of ``raws``; raises :class:`EventBatchError` naming every bad one."""
    now = time.time() if now is None else now
    events: list[Reading] = []
    problems: list[EventProblem] = []
    total = 0
    for i, raw in enumerate(raws, start=first_index):
        total += 1
        result = parse_event(raw, i, max_future_s=max_future_s, now=now)
        if isinstance(result, Reading):
            events.append(result)
        else:
            problems.extend(result)
    if problems:
        raise EventBatchError(source, problems, total)
    return events
