"""Triggers: storage triggers (a new blob starts exactly one pipeline run) and schedules."""

from .blob_ledger import ledger
from .blobs import Blob, list_blobs
from .definitions import (
    Trigger,
    TriggerNotFoundError,
    create_trigger,
    get_trigger,
    list_triggers,
    remove_trigger,
)
from .watch import TriggerLoop, scan_storage, tick_schedule

__all__ = [
    "Blob",
    "Trigger",
    "TriggerLoop",
    "TriggerNotFoundError",
    "create_trigger",
    "get_trigger",
    "ledger",
    "list_blobs",
    "list_triggers",
    "remove_trigger",
    "scan_storage",
    "tick_schedule",
]
