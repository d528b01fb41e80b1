"""Tumbling windows with a watermark and an allowed lateness (pure, in memory).

Time is cut into windows ``[k * length, (k + 1) * length)`` seconds since the epoch (UTC). The
**watermark** is the latest event time seen minus the allowed lateness; it never goes back. A
window **closes** once the watermark reaches its end: it is then due to land, with one row of
aggregates per (device, sensor). An event whose window is still open goes to it, however late
it is (that is the allowed lateness); an event whose window has closed is **late**: the caller
keeps it aside (it is never merged into a landed window, and never dropped).

The order of events decides: each event is judged against the watermark of the events before
it, so that the outcome does not depend on how events are batched.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from ..errors import SpecError
from .events import Reading

__all__ = ["AGGREGATES", "TumblingWindows", "Window", "aggregate", "check_aggregates"]

# The aggregates a stream may ask for (pandas' own names); ``count`` is always there.
AGGREGATES = ("count", "sum", "mean", "min", "max", "std", "median", "first", "last")


def check_aggregates(names: Iterable[str]) -> list[str]:
    """The aggregates in their canonical order, ``count`` first; SpecError for unknown ones."""
    wanted = [n.strip().lower() for n in names if n.strip()]
    unknown = [n for n in wanted if n not in AGGREGATES]
    if unknown:
        raise SpecError(f"unknown aggregate {unknown[0]!r}; choose from {', '.join(AGGREGATES)}")
    return [a for a in AGGREGATES if a == "count" or a in wanted]


@dataclass
class Window:
    """An open window and its raw events (entry ids in arrival order)."""

    start: int
    end: int
    entry_ids: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    sensors: list[str] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, entry_id: str, event: Reading) -> None:
        self.entry_ids.append(entry_id)
        self.devices.append(event.device)
        self.sensors.append(event.sensor)
        self.timestamps.append(event.timestamp)
        self.values.append(event.value)

    def __len__(self) -> int:
        return len(self.entry_ids)

    def raw(self) -> pd.DataFrame:
        """The window's events: entry_id, device, sensor, timestamp (UTC), value."""
        return pd.DataFrame({
            "entry_id": pd.Series(self.entry_ids, dtype="string"),
            "device": pd.Series(self.devices, dtype="string"),
            "sensor": pd.Series(self.sensors, dtype="string"),
            "timestamp": pd.to_datetime(pd.Series(self.timestamps, dtype="float64"), unit="s",
                                        utc=True),
            "value": pd.Series(self.values, dtype="float64"),
        })


def aggregate(window: Window, aggregates: list[str],
              raw: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (device, sensor) of ``window``: device, sensor, window_start, window_end and
    the aggregates of ``value`` (``count`` always), sorted by device and sensor. ``raw``: the
    window's :meth:`Window.raw` when the caller has it already."""
    raw = (window.raw() if raw is None else raw).sort_values("timestamp", kind="stable")
    names = check_aggregates(aggregates)
    out = (raw.groupby(["device", "sensor"], sort=True)["value"].agg(names).reset_index())
    out.insert(2, "window_start", pd.Timestamp(window.start, unit="s", tz="UTC"))
    out.insert(3, "window_end", pd.Timestamp(window.end, unit="s", tz="UTC"))
    out["count"] = out["count"].astype("int64")
    return out


class TumblingWindows:
    """The open windows of one stream, its watermark, and what closes when."""

    def __init__(self, length_s: int, lateness_s: float, *, watermark: float | None = None,
                 max_event_time: float | None = None) -> None:
        if length_s < 1 or int(length_s) != length_s:
            raise SpecError(f"window length must be a whole number of seconds from 1, "
                            f"got {length_s!r}")
        if lateness_s < 0:
            raise SpecError(f"allowed lateness must be 0 or more seconds, got {lateness_s!r}")
        self.length, self.lateness = int(length_s), float(lateness_s)
        self.max_event_time = max_event_time
        self._floor = watermark  # a watermark reached before (persisted), or by close_all()
        self.open: dict[int, Window] = {}
        self.held: set[str] = set()  # entry ids in open windows

    @property
    def watermark(self) -> float | None:
        """Latest event time minus the lateness, never below a watermark reached before."""
        candidates = [w for w in (self._floor, None if self.max_event_time is None
                                  else self.max_event_time - self.lateness) if w is not None]
        return max(candidates) if candidates else None

    def window_of(self, timestamp: float) -> int:
        """The start of the window that holds ``timestamp``."""
        return math.floor(timestamp / self.length) * self.length

    def is_closed(self, start: int) -> bool:
        mark = self.watermark
        return mark is not None and start + self.length <= mark

    def add(self, entry_id: str, event: Reading) -> Window | None:
        """Put ``event`` into its window and return the window, or None when that window has
        closed already (the event is late: keep it aside). Then advance the watermark."""
        start = self.window_of(event.timestamp)
        if self.is_closed(start):
            placed = None
        else:
            placed = self.open.get(start)
            if placed is None:
                placed = self.open[start] = Window(start, start + self.length)
            placed.add(entry_id, event)
            self.held.add(entry_id)
        if self.max_event_time is None or event.timestamp > self.max_event_time:
            self.max_event_time = event.timestamp
        return placed

    def due(self) -> list[Window]:
        """The open windows the watermark has closed, oldest first; they leave the open set."""
        closed = sorted(s for s in self.open if self.is_closed(s))
        return [self._take(s) for s in closed]

    def close_all(self) -> list[Window]:
        """End of input: close every open window (the watermark moves to the last end)."""
        if self.open:
            last_end = max(self.open) + self.length
            self._floor = max(self._floor or last_end, last_end)
        return self.due()

    def _take(self, start: int) -> Window:
        window = self.open.pop(start)
        self.held.difference_update(window.entry_ids)
        return window

    @property
    def open_events(self) -> int:
        return sum(len(w) for w in self.open.values())
