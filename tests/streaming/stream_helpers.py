"""Helpers of the streaming tests: events to send, reading back what landed, the test client
(imported here, where its deprecation warning is silenced)."""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from batchscore.workspace import Workspace

with warnings.catch_warnings():  # starlette warns about its own httpx-based test client
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

__all__ = ["T0", "TestClient", "events", "landed_ids", "read_area"]

T0 = 1535497200.0  # 2018-08-28 23:00:00 UTC, the hour the sensor data starts


def events(times: list[float], devices: tuple[str, ...] = ("1",),
           sensors: tuple[str, ...] = ("1",)) -> list[dict[str, Any]]:
    """One event per time, device and sensor; the value is the time's offset from T0."""
    return [{"device": d, "sensor": s, "timestamp": T0 + t, "value": float(t)}
            for t in times for d in devices for s in sensors]


def read_area(ws: Workspace, name: str, area: str) -> pd.DataFrame:
    """Every Parquet file of ``streams/NAME/AREA`` (windows, raw, late, rejected) as one frame."""
    files = [p for p in ws.data.list(f"streams/{name}/{area}") if p.endswith(".parquet")]
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(ws.data.local_path(p)) for p in files],
                     ignore_index=True)


def landed_ids(ws: Workspace, name: str) -> list[str]:
    """The entry ids of every event that landed: in a window (raw), late or rejected."""
    ids: list[str] = []
    for area in ("raw", "late", "rejected"):
        frame = read_area(ws, name, area)
        if len(frame):
            ids += frame["entry_id"].tolist()
    return ids
