"""Operator API tokens (admin only)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import Field

from ringfence.adapters.api.deps import AppState, get_state, reason_of, require
from ringfence.adapters.api.problems import MAX_ID, MAX_REASON, Body
from ringfence.adapters.db.stores.tokens import TokenRecord
from ringfence.domain.access import Role
from ringfence.services import tokens
from ringfence.services.context import Actor

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


class TokenCreate(Body):
    """A new token's name and role."""

    name: str = Field(min_length=1, max_length=100, pattern=tokens.NAME_PATTERN,
                      description="Who or what will use the token: letters, digits and . _ @ -.")
    role: Literal["viewer", "operator", "approver", "admin"] = Field(description="viewer, operator, approver or admin.")
    reason: str = Field(default="", max_length=MAX_REASON, description="Why (goes to the audit log).")


class Reason(Body):
    """Why an action was taken."""

    reason: str = Field(default="", max_length=MAX_REASON)


def token_json(t: TokenRecord) -> dict[str, Any]:
    """JSON form of a token record (never the token)."""
    return {"id": t.id, "name": t.name, "role": t.role.value, "prefix": t.prefix,
            "created_at": t.created_at.isoformat(), "created_by": t.created_by,
            "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None, "active": t.active}


@router.post("", status_code=201, summary="Create a token; the token is in this response only")
def create(body: TokenCreate, request: Request, state: AppState = Depends(get_state),
           actor: Actor = Depends(require(Role.ADMIN))) -> dict[str, Any]:
    """Create a token.  Store the ``token`` now: only its hash is kept."""
    plaintext, record = tokens.create_token(state.db, name=body.name, role=body.role, actor=actor, clock=state.clock,
                                            reason=reason_of(request, body.reason))
    return {"token": plaintext, **token_json(record)}


@router.get("", summary="List tokens")
def list_(include_revoked: bool = False, state: AppState = Depends(get_state),
          actor: Actor = Depends(require(Role.ADMIN))) -> dict[str, Any]:
    """Every token's record."""
    return {"tokens": [token_json(t) for t in tokens.list_tokens(state.db, actor=actor,
                                                                 include_revoked=include_revoked)]}


@router.post("/{token_id}/revoke", summary="Revoke a token")
def revoke(request: Request, token_id: int = Path(ge=1, le=MAX_ID, description="The token's id."),
           body: Reason | None = None, state: AppState = Depends(get_state),
           actor: Actor = Depends(require(Role.ADMIN))) -> dict[str, Any]:
    """Revoke a token; it stops working at once."""
    record = tokens.revoke_token(state.db, token_id, actor=actor, clock=state.clock,
                                 reason=reason_of(request, body.reason if body else ""))
    return token_json(record)
