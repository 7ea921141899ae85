"""Liveness, readiness and the caller's identity."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ringfence import __version__
from ringfence.adapters.api.deps import AppState, get_state, require
from ringfence.adapters.api.problems import problem
from ringfence.domain.access import Role
from ringfence.errors import UnavailableError
from ringfence.services.context import Actor

router = APIRouter()


@router.get("/healthz", tags=["system"], summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    """Always 200 while the process runs."""
    return {"status": "ok", "version": __version__}


@router.get("/readyz", tags=["system"], summary="Readiness: the database answers and its schema is current",
            response_model=None)
def readyz(request: Request, state: AppState = Depends(get_state)) -> dict[str, Any] | JSONResponse:
    """200 when the database is reachable and migrated to head, else a 503 problem."""
    try:
        state.db.ping()
        current, head = state.db.current_revision(), state.db.head_revision()
    except UnavailableError as e:
        return problem(503, "Service unavailable", e.message, request.url.path)
    if current != head:
        return problem(503, "Service unavailable",
                       f"database schema is at {current or 'nothing'}, code needs {head}: run `ringfence db upgrade`",
                       request.url.path)
    return {"status": "ready", "database": state.db.dialect, "schema": current}


@router.get("/v1/whoami", tags=["system"], summary="The token's name and role")
def whoami(actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, str]:
    """Who the bearer token stands for."""
    return {"name": actor.name, "role": actor.role.value, "source": actor.source}
