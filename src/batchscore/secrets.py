"""Secrets: read from the environment or from a secrets file outside any repository, and kept
out of logs, tags and the registry.

**The secrets file** is ``$BATCHSCORE_SECRETS_FILE`` or, when that is not set,
``$XDG_CONFIG_HOME/batchscore/secrets.env`` (``~/.config/batchscore/secrets.env``); an empty
``BATCHSCORE_SECRETS_FILE`` means none. It holds ``KEY=VALUE`` lines in dotenv form (comments,
quotes and ``export`` allowed, no ``${VAR}`` expansion) such as ``MLFLOW_TRACKING_URI``,
``MLFLOW_TRACKING_PASSWORD``, ``AZURE_STORAGE_CONNECTION_STRING``, ``AWS_SECRET_ACCESS_KEY``
or ``BATCHSCORE_DATABASE_URL``. :func:`init_secrets` (called when a workspace is opened)
copies its values into ``os.environ`` without overriding a variable that is already set:
the environment wins. A missing default file is fine; a file named by the variable must
exist. The file is refused (:class:`SecretsFileError`, naming the file and what to do) when
group or others may read or write it, or when it lies inside the workspace or inside a git
work tree, where it would be shared or committed. A malformed line is named by its number,
never by its content.

Keeping them out of logs, tags and API answers is :mod:`batchscore.redact`'s work;
:func:`init_secrets` turns it on for this process.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from .errors import SecretsFileError
from .redact import install_redaction

__all__ = [
    "SECRETS_FILE_ENV",
    "SecretsFileError",
    "default_secrets_file",
    "init_secrets",
    "load_secrets",
    "secrets_file",
]

SECRETS_FILE_ENV = "BATCHSCORE_SECRETS_FILE"

_lock = threading.Lock()


# -- the secrets file ---------------------------------------------------------------------------


def default_secrets_file() -> Path:
    """``$XDG_CONFIG_HOME/batchscore/secrets.env`` (default ``~/.config/...``)."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config).expanduser() / "batchscore" / "secrets.env"


def secrets_file() -> tuple[Path | None, bool]:
    """The secrets file to load and whether it was named explicitly (by the variable)."""
    named = os.environ.get(SECRETS_FILE_ENV)
    if named is None:
        return default_secrets_file(), False
    if not named.strip():
        return None, True
    return Path(named.strip()).expanduser(), True


def _git_work_tree(path: Path) -> Path | None:
    for folder in path.parents:
        if (folder / ".git").exists():
            return folder
    return None


def _check_place(path: Path, real: Path, workspace: Path | None) -> None:
    if workspace is not None:
        root = Path(workspace).expanduser().resolve()
        if real == root or root in real.parents:
            raise SecretsFileError(
                f"secrets file {path} lies inside the workspace {root}, where it would be "
                f"copied and shared with the workspace; move it outside, for example to "
                f"{default_secrets_file()}, and point {SECRETS_FILE_ENV} at it")
    tree = _git_work_tree(real)
    if tree is not None:
        raise SecretsFileError(
            f"secrets file {path} lies inside the git work tree {tree}, where it could be "
            f"committed; move it outside any repository, for example to "
            f"{default_secrets_file()}, and point {SECRETS_FILE_ENV} at it")


def _check_mode(path: Path, mode: int) -> None:
    if os.name == "nt":  # pragma: no cover - POSIX permissions only
        return
    if mode & 0o077:
        raise SecretsFileError(
            f"secrets file {path} may be read or written by group or others (mode "
            f"{stat.S_IMODE(mode):04o}); make it private with `chmod 600 {path}`")


def _parse(path: Path, text: str) -> dict[str, str]:
    import io

    try:
        from dotenv.parser import parse_stream
    except ImportError:  # pragma: no cover - installed with batchscore
        raise SecretsFileError(f"secrets file {path} needs python-dotenv to be read; "
                               "install it with `pip install python-dotenv`") from None
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:  # the line's text is not shown: it may hold a secret
            raise SecretsFileError(f"secrets file {path}, line {line}: not a KEY=VALUE line "
                                   "(a value with spaces or # needs quotes)")
        if binding.key is None:
            continue  # a comment or a blank line
        if binding.value is None:
            raise SecretsFileError(f"secrets file {path}, line {line}: {binding.key!r} has "
                                   "no '=' and no value; write KEY=VALUE")
        values[binding.key] = binding.value
    return values


def load_secrets(path: str | os.PathLike[str] | None = None, *,
                 workspace: str | os.PathLike[str] | None = None,
                 environ: dict[str, str] | os._Environ[str] | None = None) -> list[str]:
    """Copy the secrets file's values into ``environ`` (default ``os.environ``) where a
    variable is not set yet; return the names set, in file order.

    ``path`` defaults to :func:`secrets_file`; a missing default file sets nothing. The file
    is refused when it is readable or writable by group or others, or lies inside
    ``workspace`` or a git work tree."""
    env = os.environ if environ is None else environ
    if path is None:
        chosen, named = secrets_file()
        if chosen is None:
            return []
    else:
        chosen, named = Path(path).expanduser(), True
    try:
        info = chosen.stat()
    except FileNotFoundError:
        if named:
            raise SecretsFileError(f"secrets file {chosen} does not exist (named by "
                                   f"{SECRETS_FILE_ENV}); create it with mode 600, or unset "
                                   f"the variable") from None
        return []
    except OSError as exc:
        raise SecretsFileError(f"secrets file {chosen} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretsFileError(f"secrets file {chosen} is not a regular file")
    _check_place(chosen, chosen.resolve(), Path(workspace) if workspace is not None else None)
    _check_mode(chosen, info.st_mode)
    try:
        text = chosen.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SecretsFileError(f"secrets file {chosen} is not UTF-8 text") from None
    except OSError as exc:
        raise SecretsFileError(f"secrets file {chosen} cannot be read: {exc.strerror}") from None
    values = _parse(chosen, text)
    set_now = []
    with _lock:
        for key, value in values.items():
            if key not in env:
                env[key] = value
                set_now.append(key)
    return set_now


def init_secrets(workspace: str | os.PathLike[str] | None = None) -> list[str]:
    """What opening a workspace does: :func:`load_secrets` (refusing a file inside
    ``workspace``), then :func:`install_redaction`. Returns the names set."""
    names = load_secrets(workspace=workspace)
    install_redaction()
    return names
