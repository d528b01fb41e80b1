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

**Redaction** (:func:`redact`, :class:`RedactingFilter`) replaces with ``***``:

- the password of any URL (``scheme://user:PASSWORD@host``), whatever its length;
- the values of environment variables whose names look secret (``PASSWORD``, ``PASSWD``,
  ``SECRET``, ``TOKEN``, ``KEY``, ``CONNECTION_STRING``, ``CREDENTIAL``, or a ``PASS`` word),
  the secret parts of connection strings (``AccountKey=``, ``SharedAccessSignature=``,
  ``Password=``), and the password of any URL
  held in any variable (so a password still shows as ``***`` where it appears on its own).

Values shorter than :data:`MIN_SECRET_LENGTH` characters are not masked as free text (they
would match by chance and mangle the logs); inside URLs they are. :func:`install_redaction`
puts the filter on every log record this process creates (a logging record factory, since a
filter on a logger does not see the records of its child loggers, and handlers come and go),
so that the structured logs of jobs, the deployments' logs and anything else logged through
:mod:`logging` never carry a secret.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .errors import UsageError
from .state.records import hide_password

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "SECRETS_FILE_ENV",
    "RedactingFilter",
    "SecretsFileError",
    "default_secrets_file",
    "init_secrets",
    "install_redaction",
    "load_secrets",
    "redact",
    "redact_value",
    "secret_values",
    "secrets_file",
]

SECRETS_FILE_ENV = "BATCHSCORE_SECRETS_FILE"
MASK = "***"
MIN_SECRET_LENGTH = 6

_SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CONNECTION_?STRING|CREDENTIAL|(?:^|_)PASS(?:_|$)",
    re.IGNORECASE)
# scheme://user:password@ : the same shape as hide_password's, capturing the password
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/@:\s]*:([^/@\s]*)@")
_CONNECTION_PART = re.compile(r"(?:^|;)\s*([A-Za-z][A-Za-z ]*?)\s*=\s*([^;]+)")
_PLAIN_WORDS = {"true", "false", "none", "null", "yes", "no", "on", "off"}

_lock = threading.Lock()


class SecretsFileError(UsageError):
    """A secrets file that must not be used (shared, inside a repository) or cannot be read."""


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


# -- redaction ------------------------------------------------------------------------------


def _maskable(value: str) -> bool:
    value = value.strip()
    return len(value) >= MIN_SECRET_LENGTH and value.lower() not in _PLAIN_WORDS


def _url_passwords(value: str) -> Iterable[str]:
    for match in _URL_PASSWORD.finditer(value):
        password = match.group(1)
        if password:
            yield password
            yield unquote(password)


@lru_cache(maxsize=4096)
def _secrets_of(name: str, value: str) -> tuple[str, ...]:
    found = [p for p in _url_passwords(value) if _maskable(p)]
    if _SECRET_NAME.search(name) is None:
        return tuple(found)
    found.append(value)
    if ";" in value or "=" in value:  # a connection string: its secret parts alone too
        for key, part in _CONNECTION_PART.findall(value):
            lower = key.replace(" ", "").lower()
            if _SECRET_NAME.search(lower) or "signature" in lower or lower in {"pwd", "sig"}:
                found.append(part.strip())
    return tuple(v for v in found if _maskable(v))


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every value that :func:`redact` masks, longest first (see the module's rules)."""
    if environ is None:
        for _ in range(5):  # another thread may change the environment while we read it
            try:
                items = list(os.environ.items())
                break
            except RuntimeError:
                continue
        else:  # pragma: no cover
            items = []
    else:
        items = list(environ.items())
    found: set[str] = set()
    for name, value in items:
        if value:
            found.update(_secrets_of(name, value))
    return sorted(found, key=lambda v: (-len(v), v))


@lru_cache(maxsize=16)
def _pattern(values: tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile("|".join(re.escape(v) for v in values)) if values else None


def _masker(environ: Mapping[str, str] | None = None) -> Callable[[str], str]:
    pattern = _pattern(tuple(secret_values(environ)))
    if pattern is None:
        return hide_password
    return lambda text: hide_password(pattern.sub(MASK, text)) if text else text


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with the current secrets (:func:`secret_values`, read from ``environ``,
    default ``os.environ``) and URL passwords masked."""
    return _masker(environ)(text) if text else text


def redact_value(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """:func:`redact` for a string; dicts, lists and tuples are redacted item by item
    (keys too); anything else is returned as it is unless its text holds a secret (then
    its redacted text)."""
    return _redact_with(_masker(environ), value)


def _redact_with(mask: Callable[[str], str], value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {(mask(k) if isinstance(k, str) else k): _redact_with(mask, v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_with(mask, v) for v in value)
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    cleaned = mask(text)
    return value if cleaned == text else cleaned


class RedactingFilter(logging.Filter):
    """Masks secrets in a log record's message, arguments, traceback and stack text.

    It keeps the record's shape (a tuple of arguments stays a tuple of the same length, so
    formatters that unpack them, such as uvicorn's access log, still work) and never drops a
    record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_batchscore_redacted", False):
            return True
        try:
            mask = _masker()
            if record.msg is not None and not isinstance(record.msg, int | float):
                record.msg = _redact_with(mask, record.msg)
            if isinstance(record.args, tuple):
                record.args = tuple(_redact_with(mask, a) for a in record.args)
            elif isinstance(record.args, Mapping):
                record.args = {k: _redact_with(mask, v) for k, v in record.args.items()}
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = mask(record.exc_text)
            if record.stack_info:
                record.stack_info = mask(record.stack_info)
        except Exception:  # pragma: no cover - logging must never fail because of us
            record.msg, record.args = "(log message withheld: it could not be redacted)", ()
        record._batchscore_redacted = True
        return True


_FILTER = RedactingFilter()


def install_redaction(loggers: Iterable[str] = ("batchscore",)) -> RedactingFilter:
    """Redact every log record this process creates (idempotent): the filter goes on the
    ``loggers`` named and, through a record factory, on the records of every other logger
    (their own children, MLflow, SQLAlchemy, uvicorn) whatever handlers they use."""
    with _lock:
        for name in loggers:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
        current = logging.getLogRecordFactory()
        if not getattr(current, "_batchscore_redacting", False):
            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = current(*args, **kwargs)
                _FILTER.filter(record)
                return record

            factory._batchscore_redacting = True  # type: ignore[attr-defined]
            logging.setLogRecordFactory(factory)
    return _FILTER
