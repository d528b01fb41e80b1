"""The exceptions of the streaming package.

::

    UsageError
    ├── StreamNotFoundError     no stream has that name
    ├── StreamBusyError         another live consumer holds the stream's lease
    └── InputError
        └── EventBatchError     a batch of events with bad events (each one named)
    BatchscoreError
    └── StreamUnavailableError  the stream's Redis cannot be reached, or the lease was lost
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import BatchscoreError, InputError, UsageError

__all__ = [
    "EventBatchError",
    "EventProblem",
    "StreamBusyError",
    "StreamNotFoundError",
    "StreamUnavailableError",
]

_SHOWN = 10  # problems named in the message; all of them are in ``problems``


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


class StreamNotFoundError(UsageError):
    """No stream has the given name."""


class StreamBusyError(UsageError):
    """Another live consumer holds the stream's lease."""


class EventBatchError(InputError):
    """A batch holds bad events; nothing of it was written. ``problems`` names every one."""

    def __init__(self, source: str, problems: list[EventProblem], total: int) -> None:
        self.source, self.problems, self.total = source, problems, total
        bad = len({p.index for p in problems})
        shown = "; ".join(str(p) for p in problems[:_SHOWN])
        more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        super().__init__(f"{source}: {bad} of {total} events are bad, nothing was written: "
                         f"{shown}{more}")


class StreamUnavailableError(BatchscoreError):
    """The stream's Redis cannot be reached, or a consumer lost its lease."""
