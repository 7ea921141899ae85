"""Health reports from agents: heartbeats, versions and events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, Field, StringConstraints

from ringfence.adapters.api.deps import AppState, get_state
from ringfence.adapters.api.problems import Body
from ringfence.errors import AuthenticationError
from ringfence.services import rollouts
from ringfence.services.health import HealthReport

router = APIRouter(tags=["health"])
_bearer = HTTPBearer(auto_error=False, description="A host credential (rfh_…).")


Id = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Product = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Version = Annotated[str, StringConstraints(max_length=100)]
RolloutRef = Annotated[str, StringConstraints(max_length=64)]


class Event(Body):
    """Something that happened on the host."""

    kind: str = Field(max_length=32, description="crashed, auto_reverted, install_failed, applied or committed")
    rollout: RolloutRef = Field(default="", description="The rollout it concerns, if any.")
    at: AwareDatetime


class Report(Body):
    """One heartbeat with what the host runs and what happened since the last one."""

    host_id: Id
    at: AwareDatetime = Field(description="The agent's clock, with a time zone (e.g. 2026-11-24T09:00:00Z).")
    versions: dict[Product, Version] = Field(default_factory=dict, max_length=100,
                                             description="product → version running now")
    committed: list[Product] = Field(default_factory=list, max_length=100,
                                     description="products whose running version passed its probe")
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


@router.get("/v1/agent/desired", summary="The calling host's own desired state (host credential)")
def own_desired(state: AppState = Depends(get_state),
                creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> dict[str, Any]:
    """What each product should be on the host the credential belongs to; no operator token needed."""
    if creds is None:
        raise AuthenticationError("needs 'Authorization: Bearer rfh_…' (a host credential)")
    host = state.ingest.authenticate(creds.credentials)
    return {"host": host, "products": rollouts.desired_state(state.db, host)}
