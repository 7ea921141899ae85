"""Health reports from agents: heartbeats, versions and events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from ringfence.adapters.api.deps import AppState, get_state
from ringfence.errors import AuthenticationError
from ringfence.services.health import HealthReport

router = APIRouter(tags=["health"])
_bearer = HTTPBearer(auto_error=False, description="A host credential (rfh_…).")


class Event(BaseModel):
    """Something that happened on the host."""

    kind: str = Field(description="crashed, auto_reverted, install_failed, applied or committed")
    rollout: str = Field(default="", description="The rollout it concerns, if any.")
    at: datetime


class Report(BaseModel):
    """One heartbeat with what the host runs and what happened since the last one."""

    host_id: str
    at: datetime
    versions: dict[str, str] = Field(default_factory=dict, description="product → version running now")
    committed: list[str] = Field(default_factory=list, description="products whose running version passed its probe")
    events: list[Event] = Field(default_factory=list, max_length=100)


@router.post("/v1/health", status_code=202, summary="Report a heartbeat and events (host credential)")
def report(body: Report, state: AppState = Depends(get_state),
           creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> dict[str, Any]:
    """Accepted reports are written in batches; a host may report only for itself."""
    if creds is None:
        raise AuthenticationError("health reports need 'Authorization: Bearer rfh_…' (a host credential)")
    host = state.ingest.authenticate(creds.credentials)
    waiting = state.ingest.submit(host, HealthReport(
        host_id=body.host_id, at=body.at, versions=body.versions, committed=tuple(body.committed),
        events=tuple((e.kind, e.rollout, e.at) for e in body.events)))
    return {"accepted": True, "buffered": waiting}
