"""The control plane: REST API under ``/api/v1``, dashboard, metrics, auth, run slots and the
trigger loop, in one process (``batchscore serve``)."""

from .app import create_app
from .auth import ROLES, create_token, list_tokens, revoke_token
from .context import ServiceConfig

__all__ = ["ROLES", "ServiceConfig", "create_app", "create_token", "list_tokens",
           "revoke_token"]
