"""TLS for every listener batchscore starts and for the CLI that calls them (issue 19).

A server gets a certificate and its key (:func:`server_tls`, checked once at start: both files
readable, the key that of the certificate, the certificate valid today) and hands them to
uvicorn with :meth:`ServerTLS.uvicorn_options`. A client verifies the server's certificate with
the system's trust store, or with a private CA (``--ca-file`` / ``$BATCHSCORE_CA_FILE``):
:func:`client_verify`. Nothing here imports more than the standard library unless a
certificate is given (its dates are read with ``cryptography``).
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import UsageError

__all__ = [
    "CA_FILE_ENV",
    "ServerTLS",
    "clear_text_warning",
    "client_verify",
    "is_loopback",
    "pinned_context",
    "server_tls",
    "set_ca_file",
]

CA_FILE_ENV = "BATCHSCORE_CA_FILE"
_ca_file: str | None = None  # set by the CLI's --ca-file; wins over the variable


@dataclass(frozen=True)
class ServerTLS:
    """A checked certificate and key for one listener."""

    certfile: str
    keyfile: str

    def uvicorn_options(self) -> dict[str, str]:
        """uvicorn's ``ssl_certfile`` and ``ssl_keyfile`` (for ``uvicorn.run``/``Config``)."""
        return {"ssl_certfile": self.certfile, "ssl_keyfile": self.keyfile}

    def argv(self) -> list[str]:
        """The same as command-line options, for a process that starts a server."""
        return ["--ssl-certfile", self.certfile, "--ssl-keyfile", self.keyfile]


def server_tls(certfile: str | None, keyfile: str | None,
               now: datetime | None = None) -> ServerTLS | None:
    """None without a certificate; else the checked pair. A key without a certificate (or
    the reverse), an unreadable file, a key that is not the certificate's, a certificate not
    valid at ``now``: a UsageError (exit 2) naming the file and what is wrong."""
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        raise UsageError("--ssl-certfile and --ssl-keyfile go together: give both or neither")
    cert, key = Path(certfile).resolve(), Path(keyfile).resolve()
    for option, path in (("--ssl-certfile", cert), ("--ssl-keyfile", key)):
        try:
            path.read_bytes()
        except OSError as exc:
            raise UsageError(f"{option} {path}: cannot read it: {exc.strerror or exc}") from None
    _check_dates(cert, now or datetime.now(UTC))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert), str(key))
    except ssl.SSLError as exc:
        why = ("the key is not the certificate's" if "KEY_VALUES_MISMATCH" in str(exc)
               else f"not a PEM certificate and its key ({exc.reason or exc})")
        raise UsageError(f"--ssl-certfile {cert} with --ssl-keyfile {key}: {why}") from None
    return ServerTLS(str(cert), str(key))


def _check_dates(cert: Path, now: datetime) -> None:
    from cryptography import x509

    try:
        leaf = x509.load_pem_x509_certificate(cert.read_bytes())
    except ValueError as exc:
        raise UsageError(f"--ssl-certfile {cert}: not a PEM certificate ({exc})") from None
    if now > leaf.not_valid_after_utc:
        raise UsageError(f"--ssl-certfile {cert}: the certificate expired on "
                         f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if now < leaf.not_valid_before_utc:
        raise UsageError(f"--ssl-certfile {cert}: the certificate is not valid before "
                         f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a listening address) is reached from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def clear_text_warning(host: str, tls: ServerTLS | None) -> str | None:
    """The line a server logs first when it listens on a network address without TLS."""
    if tls is not None or is_loopback(host):
        return None
    return (f"WARNING: listening on {host} without TLS: traffic (API tokens, data) is in "
            "clear text; give --ssl-certfile and --ssl-keyfile")


def set_ca_file(path: str | None) -> None:
    """The CLI's ``--ca-file``: the CA that every later HTTPS call trusts."""
    global _ca_file
    _ca_file = path


def client_verify(ca_file: str | None = None) -> ssl.SSLContext | bool:
    """What a client passes as httpx's ``verify``: a context trusting ``ca_file`` (else
    ``--ca-file``, else ``$BATCHSCORE_CA_FILE``), or True (the system's trust store). The
    server's name is always checked."""
    ca = ca_file or _ca_file or os.environ.get(CA_FILE_ENV) or None
    if ca is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(Path(ca).expanduser()))
    except (OSError, ssl.SSLError) as exc:
        where = "--ca-file" if ca in (ca_file, _ca_file) else f"${CA_FILE_ENV}"
        raise UsageError(f"{where} {ca}: cannot load it as PEM CA certificates: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None


def pinned_context(certfile: str) -> ssl.SSLContext:
    """A client context that trusts exactly ``certfile`` (no name check): for a process that
    checks a server it started itself on a private loopback port, with its own certificate."""
    context = ssl.create_default_context(cafile=certfile)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context
