"""Workspace settings and their embedded defaults.

A workspace is one folder (default ``./.batchscore``) holding ``batchscore.toml``, the SQLite
state database and two local stores, ``data`` and ``system``. Every setting has a default;
real parts (PostgreSQL, Azure Blob, S3, a Ray cluster) are a URL away. Environment variables
override the file: ``BATCHSCORE_WORKSPACE``, ``BATCHSCORE_DATABASE_URL``,
``BATCHSCORE_DATA_STORE``, ``BATCHSCORE_SYSTEM_STORE``.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import tomli_w

from .errors import WorkspaceError

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_WORKSPACE",
    "ENV_MANAGERS",
    "WORKSPACE_FORMAT",
    "Settings",
    "find_workspace",
    "load_settings",
    "write_settings",
]

DEFAULT_WORKSPACE = ".batchscore"
ENV_MANAGERS = ("local", "virtualenv")  # where the workers run a job's script
CONFIG_FILE = "batchscore.toml"
WORKSPACE_FORMAT = 1  # bump when the layout of the folder changes incompatibly

_KNOWN = {
    "workspace": {"format"},
    "stores": {"data", "system"},
    "database": {"url"},
    "executor": {"kind", "max_workers", "ray_address", "env_manager"},
    "streams": {"redis_url"},
    "telemetry": {"otlp_endpoint"},
}


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one workspace (paths absolute, env overrides applied)."""

    root: Path
    data_store: str
    system_store: str
    database_url: str
    executor: str = "local"
    max_workers: int | None = None
    ray_address: str | None = None
    redis_url: str | None = None  # the broker of streams (Redis Streams)
    otlp_endpoint: str | None = None  # OpenTelemetry collector (batchscore.telemetry)
    # a job's script in batchscore's Python (local) or its environment's virtualenv, unless
    # the job says (--env-manager)
    env_manager: str = "local"

    def to_toml(self) -> dict[str, Any]:
        executor: dict[str, Any] = {"kind": self.executor}
        if self.max_workers is not None:
            executor["max_workers"] = self.max_workers
        if self.ray_address:
            executor["ray_address"] = self.ray_address
        if self.env_manager != "local":
            executor["env_manager"] = self.env_manager
        out: dict[str, Any] = {
            "workspace": {"format": WORKSPACE_FORMAT},
            "stores": {"data": self.data_store, "system": self.system_store},
            "database": {"url": self.database_url},
            "executor": executor,
        }
        if self.redis_url:
            out["streams"] = {"redis_url": self.redis_url}
        if self.otlp_endpoint:
            out["telemetry"] = {"otlp_endpoint": self.otlp_endpoint}
        return out


def find_workspace(path: str | os.PathLike[str] | None = None) -> Path:
    """The workspace folder: ``path``, else ``$BATCHSCORE_WORKSPACE``, else ``./.batchscore``."""
    chosen = path or os.environ.get("BATCHSCORE_WORKSPACE") or DEFAULT_WORKSPACE
    return Path(chosen).expanduser().resolve()


def default_settings(root: Path) -> Settings:
    return Settings(
        root=root,
        data_store=f"file://{root / 'data'}",
        system_store=f"file://{root / 'system'}",
        database_url=f"sqlite:///{root / 'state.db'}",
    )


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read ``batchscore.toml`` of the workspace at ``path`` (see :func:`find_workspace`)."""
    root = find_workspace(path)
    cfg_path = root / CONFIG_FILE
    if not cfg_path.is_file():
        raise WorkspaceError(
            f"no batchscore workspace at {root} (missing {CONFIG_FILE}); "
            "create one with `batchscore init`"
        )
    try:
        raw = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WorkspaceError(f"{cfg_path} is not valid TOML: {exc}") from None
    _check_keys(cfg_path, raw)
    fmt = raw.get("workspace", {}).get("format", WORKSPACE_FORMAT)
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise WorkspaceError(
            f"{cfg_path}: workspace.format must be a whole number from 1, not {fmt!r}"
        )
    if fmt > WORKSPACE_FORMAT:
        raise WorkspaceError(
            f"{cfg_path} has workspace format {fmt!r}, newer than this batchscore understands "
            f"(up to {WORKSPACE_FORMAT}); upgrade batchscore"
        )
    base = default_settings(root)
    stores = raw.get("stores", {})
    executor = raw.get("executor", {})
    settings = replace(
        base,
        data_store=_resolve_url(root, stores.get("data", base.data_store)),
        system_store=_resolve_url(root, stores.get("system", base.system_store)),
        database_url=_resolve_db(root, raw.get("database", {}).get("url", base.database_url)),
        executor=executor.get("kind", base.executor),
        max_workers=executor.get("max_workers"),
        ray_address=executor.get("ray_address"),
        redis_url=raw.get("streams", {}).get("redis_url"),
        otlp_endpoint=raw.get("telemetry", {}).get("otlp_endpoint"),
        env_manager=executor.get("env_manager", base.env_manager),
    )
    if settings.env_manager not in ENV_MANAGERS:
        raise WorkspaceError(f"{cfg_path}: executor.env_manager must be local or virtualenv, "
                             f"not {settings.env_manager!r}")
    return _apply_env(settings)


def write_settings(settings: Settings) -> Path:
    """Write ``settings`` as the workspace's ``batchscore.toml``; returns its path."""
    settings.root.mkdir(parents=True, exist_ok=True)
    cfg_path = settings.root / CONFIG_FILE
    cfg_path.write_text(tomli_w.dumps(settings.to_toml()), encoding="utf-8")
    return cfg_path


def _check_keys(cfg_path: Path, raw: dict[str, Any]) -> None:
    for section, values in raw.items():
        if section not in _KNOWN:
            raise WorkspaceError(
                f"{cfg_path}: unknown section [{section}]{_suggest(section, _KNOWN)}"
            )
        if not isinstance(values, dict):
            raise WorkspaceError(f"{cfg_path}: [{section}] must be a table")
        for key in values:
            if key not in _KNOWN[section]:
                raise WorkspaceError(
                    f"{cfg_path}: unknown key {section}.{key}{_suggest(key, _KNOWN[section])}"
                )


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _resolve_url(root: Path, url: str) -> str:
    """Store URLs: a plain path is relative to the workspace; URLs with a scheme stay."""
    if "://" in url:
        return url
    return f"file://{(root / url).resolve()}"


def _resolve_db(root: Path, url: str) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != "sqlite:///:memory:":
        path = Path(url[len(prefix) :])
        if not path.is_absolute():
            return f"{prefix}{(root / path).resolve()}"
    return url


def _apply_env(settings: Settings) -> Settings:
    env = os.environ
    return replace(
        settings,
        database_url=env.get("BATCHSCORE_DATABASE_URL", settings.database_url),
        data_store=env.get("BATCHSCORE_DATA_STORE", settings.data_store),
        system_store=env.get("BATCHSCORE_SYSTEM_STORE", settings.system_store),
    )
