"""The TLS options of the commands that start a server (``--ssl-certfile``/``--ssl-keyfile``,
uvicorn's names) and the CLI-wide ``--ca-file`` for ``--server https://...`` (issue 19)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["SslCertOpt", "SslKeyOpt", "register"]

SslCertOpt = Annotated[str | None, typer.Option(
    "--ssl-certfile", help="Serve HTTPS with this PEM certificate (chain); needs --ssl-keyfile.",
    show_default=False)]
SslKeyOpt = Annotated[str | None, typer.Option(
    "--ssl-keyfile", help="The PEM private key of --ssl-certfile.", show_default=False)]


def _ca_file(
    ca_file: Annotated[str | None, typer.Option(
        "--ca-file", envvar="BATCHSCORE_CA_FILE", show_default=False,
        help="PEM CA certificates that --server https://... is verified with (a private CA; "
        "default: the system's trust store).")] = None,
) -> None:
    from ..tlsconfig import set_ca_file

    set_ca_file(ca_file)


def register(app: typer.Typer) -> None:
    app.callback()(_ca_file)
