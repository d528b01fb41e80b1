"""The MLOps errors, all :class:`~batchscore.errors.UsageError` (exit code 2)::

    UsageError
    ├── ProjectError        a project folder without params.yaml / a module it needs
    ├── DataTestError       data that fails the project's data tests (names the columns)
    └── ModelNotFoundError  no registered model, version or alias of that name
"""

from __future__ import annotations

from ..errors import UsageError
from ..registry.models import ModelNotFoundError  # the registry's (a lower layer)

__all__ = ["DataTestError", "ModelNotFoundError", "ProjectError"]


class ProjectError(UsageError):
    """A project folder is missing params.yaml or a module, or its params are not valid."""


class DataTestError(UsageError):
    """The data failed the project's data tests; the message names every failing column."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("data tests failed:\n  " + "\n  ".join(problems))
