"""A workspace opened for use: its settings, state database and stores."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine

from .config import Settings, default_settings, find_workspace, load_settings, write_settings
from .errors import WorkspaceError
from .secrets import init_secrets
from .state import connect, create_database
from .storage import Store

__all__ = ["Workspace", "init_workspace", "machine_dir", "open_workspace", "private_dir",
           "write_private"]


@dataclass
class Workspace:
    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)

    @cached_property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = connect(self.settings.database_url)
        return self._engine

    @cached_property
    def data(self) -> Store:
        return Store(self.settings.data_store, "data")

    @cached_property
    def system(self) -> Store:
        return Store(self.settings.system_store, "system")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def init_workspace(
    path: str | os.PathLike[str] | None = None,
    *,
    database_url: str | None = None,
    data_store: str | None = None,
    system_store: str | None = None,
    redis_url: str | None = None,
    exist_ok: bool = True,
) -> Workspace:
    """Create a workspace (settings file, state database, local stores) and open it."""
    root = find_workspace(path)
    init_secrets(root)
    if (root / "batchscore.toml").exists():
        if not exist_ok:
            raise WorkspaceError(f"a workspace already exists at {root}")
        ws = open_workspace(root)
        ws.engine  # noqa: B018 - opens (and upgrades) the database
        return ws
    settings = default_settings(root)
    if database_url:
        settings = _replace(settings, database_url=database_url)
    if data_store:
        settings = _replace(settings, data_store=data_store)
    if system_store:
        settings = _replace(settings, system_store=system_store)
    if redis_url:
        settings = _replace(settings, redis_url=redis_url)
    private_dir(root)
    if settings.database_url.startswith("sqlite:///") and settings.database_url != \
            "sqlite:///:memory:":
        _private_file(Path(settings.database_url[len("sqlite:///"):]))
    engine = create_database(settings.database_url)
    write_settings(settings)
    ws = Workspace(load_settings(root), engine)
    for store in (ws.data, ws.system):
        store.fs.makedirs(store.root, exist_ok=True)
    return ws


def open_workspace(path: str | os.PathLike[str] | None = None) -> Workspace:
    """Open the workspace at ``path`` (default ``$BATCHSCORE_WORKSPACE`` or ``./.batchscore``).

    The secrets file is loaded first (:func:`batchscore.secrets.init_secrets`), so that its
    variables (``BATCHSCORE_DATABASE_URL``, ``MLFLOW_TRACKING_URI``, ...) apply."""
    root = find_workspace(path)
    init_secrets(root)
    return Workspace(load_settings(root))


def private_dir(path: str | os.PathLike[str]) -> Path:
    """The folder ``path``, made if missing, readable by its owner only (0700). Parents
    that are made are 0700 as well."""
    folder = Path(path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


def machine_dir(*parts: str) -> Path:
    """``$TMPDIR/batchscore-<uid>/<parts>``: where this user's batchscore keeps what it holds
    on this machine outside a workspace (copies of remote models and scoring scripts, the
    registry's downloads, a remote system store's staging and scratch, runner logs). Only
    the root is made here (0700); callers make what is below it.

    The root is this user's alone: a shared temporary folder is writable by every user, and
    a folder there that another user made first could hold a model or script that a job
    would then load, or receive what a job writes. A root that is a link, is not this
    user's, or that others may write to is refused with what to do."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    root = Path(tempfile.gettempdir()) / f"batchscore-{uid if uid is not None else 'user'}"
    root.parent.mkdir(parents=True, exist_ok=True)  # a $TMPDIR not made yet
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700)
    info = os.lstat(root)
    if uid is not None:
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid \
                or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise WorkspaceError(
                f"{root} is not a private folder of this user (uid {uid}): it is a link, "
                f"another user's, or others may write to it; remove it, or set TMPDIR to a "
                "folder of your own")
        if info.st_mode & 0o077:
            os.chmod(root, 0o700)
    return root.joinpath(*parts)


def _private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (its folder 0700 when made)."""
    if not path.parent.exists():
        private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def write_private(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, through a temporary name (never a moment
    where the file is readable by others, nor half written)."""
    final = Path(path)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _replace(settings: Settings, **changes: str) -> Settings:
    from dataclasses import replace

    return replace(settings, **changes)
