"""API tokens (admin): list, create (the token is shown once, in the answer), revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ...apimodels import TokenCreated, TokenRecord, TokenRevoked
from ..auth import ROLES, create_token, list_tokens, revoke_token
from ..context import ws_of
from ..deps import Admin

__all__ = ["TokenIn", "router"]

router = APIRouter()


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: str = Field(description=f"One of {', '.join(ROLES)}.")


@router.get("/tokens", tags=["tokens"], response_model=list[TokenRecord])
def tokens(request: Request, who: Admin) -> list[dict[str, Any]]:
    return list_tokens(ws_of(request).engine)


@router.post("/tokens", status_code=201, tags=["tokens"], response_model=TokenCreated)
def add_token(request: Request, who: Admin, body: TokenIn) -> dict[str, Any]:
    """A new token; the response is the only place it is ever shown."""
    record, token = create_token(ws_of(request).engine, body.name, body.role)
    return {**record, "token": token}


@router.delete("/tokens/{name}", tags=["tokens"], response_model=TokenRevoked)
def delete_token(request: Request, who: Admin, name: str) -> dict[str, str]:
    revoke_token(ws_of(request).engine, name)
    return {"revoked": name}
