"""What is wrong with one event of a batch (:class:`EventProblem`), and the streaming
package's errors, defined in :mod:`batchscore.errors`::

    UsageError
    ├── StreamBusyError         another live consumer holds the stream's lease
    ├── NotFoundError
    │   └── StreamNotFoundError no stream has that name
    └── InputError
        └── EventBatchError     a batch of events with bad events (each one named)
    UnavailableError
    └── StreamUnavailableError  the stream's Redis cannot be reached, or the lease was lost
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import (
    EventBatchError,
    StreamBusyError,
    StreamNotFoundError,
    StreamUnavailableError,
)

__all__ = [
    "EventBatchError",
    "EventProblem",
    "StreamBusyError",
    "StreamNotFoundError",
    "StreamUnavailableError",
]


@dataclass(frozen=True)
class EventProblem:
    """What is wrong with one event of a batch: its index, the field, and the problem."""

    index: int
    field: str
    problem: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"event {self.index}: {self.field}: {self.problem}"
