"""Hiding secrets and the service's own folders in whatever leaves batchscore: one place.

**URLs** (:func:`hide_password`, :func:`safe_url`, :func:`hide_userinfo`): the password of
``scheme://user:PASSWORD@host`` becomes ``***`` in any text; a database URL is shown as
SQLAlchemy renders it with its password hidden; a URL whose user may itself be a secret (a
Redis URL) loses its whole ``user:password@`` part.

**Secrets in text, values and logs** (:func:`redact`, :func:`redact_value`,
:class:`RedactingFilter`) replaces with ``***``:

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

**Environments** (:func:`hide_environment`): the values of every ``environment_variables``
mapping become ``***``; the names show.

**What API clients see** (:func:`public_text`, :func:`public_value`): a location below one of
the service's stores is shown by the store's label and its relative path, any other local
folder by its name alone, and URL passwords are hidden.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "Locations",
    "RedactingFilter",
    "hide_environment",
    "hide_password",
    "hide_userinfo",
    "install_redaction",
    "public_text",
    "public_value",
    "redact",
    "redact_value",
    "safe_url",
    "secret_values",
]

MASK = "***"
MIN_SECRET_LENGTH = 6

_SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CONNECTION_?STRING|CREDENTIAL|(?:^|_)PASS(?:_|$)",
    re.IGNORECASE)
# scheme://user:password@ : the same shape as _USERINFO's, capturing the password
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/@:\s]*:([^/@\s]*)@")
_CONNECTION_PART = re.compile(r"(?:^|;)\s*([A-Za-z][A-Za-z ]*?)\s*=\s*([^;]+)")
_PLAIN_WORDS = {"true", "false", "none", "null", "yes", "no", "on", "off"}

_lock = threading.Lock()


# -- URLs ----------------------------------------------------------------------------------

_USERINFO = re.compile(r"(://[^/@:]*):[^/@]*@")


def hide_password(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``; other text unchanged."""
    return _USERINFO.sub(r"\1:***@", url)


def hide_userinfo(url: str) -> str:
    """``redis://user:secret@h`` -> ``redis://***@h``: the whole ``user:password@`` hidden."""
    return re.sub(r"//[^@/]*@", "//***@", url)


def safe_url(url: str) -> str:
    """A database ``url`` with its password hidden, as SQLAlchemy renders it, for messages and
    logs (one it cannot parse: everything between ``//`` and ``@`` hidden)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: hide everything between :// and @
        return hide_userinfo(url)


def hide_environment(value: Any) -> Any:
    """``value`` with the values of every ``environment_variables`` mapping in it replaced by
    ``***``: the names show, the values (passwords, keys) never leave the service."""
    if isinstance(value, dict):
        return {k: ({name: MASK for name in v} if k == "environment_variables"
                    and isinstance(v, dict) else hide_environment(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [hide_environment(v) for v in value]
    return value


# -- what API clients see -------------------------------------------------------------------

# (location, label) pairs: a store's URL or local root, and how its paths are shown to API
# clients ("" for the data store: paths relative to it, as the API takes them; "system:").
Locations = Sequence[tuple[str, str]]


def _longest_first(stores: Locations) -> list[tuple[str, str]]:
    """``stores`` with trailing slashes dropped (but ``az://``, a whole account, kept),
    longest first, so that a store inside another's folder wins."""
    cleaned = [(p if p.endswith("://") else p.rstrip("/"), label) for p, label in stores]
    return sorted(((p, label) for p, label in cleaned if p),
                  key=lambda pair: len(pair[0]), reverse=True)


def _below(value: str, prefix: str) -> str | None:
    """``value`` relative to ``prefix`` ("" for the prefix itself), or None if not below."""
    if prefix.endswith("://"):
        return value[len(prefix):] if value.startswith(prefix) else None
    if value == prefix:
        return ""
    return value[len(prefix) + 1:] if value.startswith(f"{prefix}/") else None


def public_text(text: str, stores: Locations) -> str:
    """``text`` (a reason, a traceback, a log) with every path below one of ``stores`` shown
    by its label and relative path (a store's own location by its label, ``data:`` for the
    data store's), and passwords in URLs hidden."""
    for prefix, label in _longest_first(stores):
        if prefix.endswith("://"):
            text = text.replace(prefix, label)
            continue
        # a path below the store: its label; the store itself: the label, or "data:"
        text = re.sub(re.escape(prefix) + r"(/|(?![\w.\-]))", _shown(label), text)
    return hide_password(text)


def _shown(label: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        return label if match.group(1) else (label or "data:")

    return replace


def public_value(value: Any, stores: Locations) -> Any:
    """``value`` (a URL, a spec, a list of them) as API clients see it: a location below one
    of ``stores`` becomes its label and relative path (``outgoing/x.csv``,
    ``system:scripts/...``); another local path keeps only its name (``file://…/x.csv``), so
    the service's folders never show; passwords in URLs are hidden."""
    if isinstance(value, dict):
        return {k: public_value(v, stores) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [public_value(v, stores) for v in value]
    if not isinstance(value, str):
        return value
    for prefix, label in _longest_first(stores):
        rest = _below(value, prefix)
        if rest is not None:
            return label + rest if rest else (label or ".")
    name = value.rstrip("/").rsplit("/", 1)[-1]
    if value.startswith("file://") and value[len("file://"):].strip("/"):
        return f"file://…/{name}"
    if value.startswith("/") and value.strip("/"):
        return f"…/{name}"
    return hide_password(value)


# -- secrets in text, values and logs --------------------------------------------------------


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
        return list(_environment()[1])
    return _secret_values(list(environ.items()))


def _secret_values(items: list[tuple[str, str]]) -> list[str]:
    found: set[str] = set()
    for name, value in items:
        if value:
            found.update(_secrets_of(name, value))
    return sorted(found, key=lambda v: (-len(v), v))


# The process's secrets and their masker, with the environment they were read from: every log
# record is redacted, and reading the environment (a decode of every name and value) then
# looking each one up cost more than the rest of an answered request's access-log line.
# The raw environment is copied (one C-level dict copy) and compared with the last one;
# any change, by any thread, is seen at the next record.
_env_cache: tuple[object, tuple[str, ...], Callable[[str], str]] | None = None


def _environment() -> tuple[object, tuple[str, ...], Callable[[str], str]]:
    global _env_cache
    raw = getattr(os.environ, "_data", None)
    snapshot: object = dict(raw) if isinstance(raw, dict) else None
    cached = _env_cache
    if snapshot is not None and cached is not None and cached[0] == snapshot:
        return cached
    for _ in range(5):  # another thread may change the environment while we read it
        try:
            items = list(os.environ.items())
            break
        except RuntimeError:
            continue
    else:  # pragma: no cover
        items = []
    values = tuple(_secret_values(items))
    entry = (snapshot, values, _mask_of(values))
    if snapshot is not None:
        _env_cache = entry
    return entry


@lru_cache(maxsize=16)
def _pattern(values: tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile("|".join(re.escape(v) for v in values)) if values else None


def _mask_of(values: tuple[str, ...]) -> Callable[[str], str]:
    pattern = _pattern(values)
    if pattern is None:
        return hide_password
    return lambda text: hide_password(pattern.sub(MASK, text)) if text else text


def _masker(environ: Mapping[str, str] | None = None) -> Callable[[str], str]:
    if environ is None:
        return _environment()[2]
    return _mask_of(tuple(secret_values(environ)))


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
