"""Database connections (admin): create, list, show, delete.

A connection's URL (and its password) is written once and never answered: a connection is
shown by its name, dialect and settings. SQLite URLs are refused here (they name files of the
service's machine). Operators name a connection as ``connection:NAME`` in an endpoint's
invocation; see :mod:`batchscore.connections`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ...apimodels import ConnectionRecord
from ...connections import (
    DEFAULT_MAX_ROWS,
    DEFAULT_STATEMENT_TIMEOUT,
    create_connection,
    delete_connection,
    get_connection,
    list_connections,
)
from ..context import ws_of
from ..deps import Admin, Viewer

__all__ = ["ConnectionIn", "router"]

router = APIRouter()


class ConnectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=63)
    url: str = Field(max_length=2048, description="postgresql://USER:PASSWORD@HOST/DB; kept "
                     "on the server, never shown.")
    statement_timeout: float = Field(DEFAULT_STATEMENT_TIMEOUT, gt=0, le=86_400,
                                     description="Seconds a query may run.")
    max_rows: int = Field(DEFAULT_MAX_ROWS, ge=1, le=1_000_000_000,
                          description="Rows a query may return; more fails the job.")
    allow_output: bool = Field(False, description="Jobs may append their predictions to "
                               "tables of this database.")
    description: str | None = Field(None, max_length=2000)


@router.get("/connections", tags=["connections"], response_model=list[ConnectionRecord])
def connections(request: Request, who: Viewer) -> list[dict[str, Any]]:
    """The registered connections (names and settings, never URLs)."""
    return [c.to_dict() for c in list_connections(ws_of(request))]


@router.post("/connections", status_code=201, tags=["connections"],
             response_model=ConnectionRecord)
def create(request: Request, who: Admin, body: ConnectionIn) -> dict[str, Any]:
    """Register a database connection (admin)."""
    return create_connection(
        ws_of(request), body.name, body.url,
        statement_timeout=body.statement_timeout, max_rows=body.max_rows,
        allow_output=body.allow_output, description=body.description, created_by=who.name,
        allow_sqlite=False).to_dict()


@router.get("/connections/{name}", tags=["connections"], response_model=ConnectionRecord)
def connection(request: Request, who: Viewer, name: str) -> dict[str, Any]:
    return get_connection(ws_of(request), name).to_dict()


@router.delete("/connections/{name}", tags=["connections"],
               response_model=ConnectionRecord)
def delete(request: Request, who: Admin, name: str) -> dict[str, Any]:
    """Remove a connection (admin); jobs planned through it keep their snapshots."""
    return delete_connection(ws_of(request), name).to_dict()
