"""The backends the CLI calls: one interface, two implementations.

:class:`Backend` is every operation a command performs; :class:`LocalBackend` does it with this
workspace's own functions, :class:`RemoteBackend` through a running service's REST API
(:class:`batchscore.client.Client`). :func:`open_backend` is the one place that chooses: a
command parses its options, calls the backend it is given, and prints. Reads answer the JSON
shapes the service sends (dicts), so that a command prints both alike. The operations that run
something to its end (a job, an invocation, a pipeline run, a video) say what happens through a
:class:`Reporter` the command passes, and answer the exit code (0, or 1 for a job that did not
succeed; refusals and failures are BatchscoreErrors).
"""

from __future__ import annotations

from .base import (
    FINISHED,
    JSON,
    Backend,
    EndpointRequest,
    Reporter,
    StylizeRequest,
    snapshot,
)

__all__ = [
    "FINISHED",
    "JSON",
    "Backend",
    "EndpointRequest",
    "Reporter",
    "StylizeRequest",
    "open_backend",
    "snapshot",
]


def open_backend(workspace: str | None = None, server: str | None = None,
                 token: str | None = None) -> Backend:
    """The service at ``server`` (with ``token``) when one is given, else the workspace
    (``--workspace`` / ``$BATCHSCORE_WORKSPACE`` / ``./.batchscore``, opened on first use)."""
    if server:
        from .remote import RemoteBackend

        return RemoteBackend(server, token)
    from .local import LocalBackend

    return LocalBackend(workspace)
