"""Health reports from agents: heartbeats, versions and events."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, Field, StringConstraints

from ringfence.adapters.api.deps import AppState, get_state, reporting_host
from ringfence.adapters.api.problems import Body
from ringfence.errors import AuthenticationError, PermissionDeniedError, UnavailableError, shown
from ringfence.services import rollouts
from ringfence.services.health import HOST_TOKEN_PREFIX as HOST_TOKEN_PREFIX_CREDENTIAL
from ringfence.services.health import HealthReport
from ringfence.services.host_tokens import HOST_TOKEN_PREFIX

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
    away: Literal["", "sleep", "shutdown", "reboot", "update_reboot"] = Field(
        default="", description="A going-away notice: the host is about to sleep, shut down or reboot (its own "
        "update reboot: update_reboot). Until it reports again it is not counted as silent (docs/gate.md).")


async def _app_state(request: Request) -> AppState:
    """The app's state, without the thread hop FastAPI gives a plain-function dependency."""
    return get_state(request)


@router.post("/v1/health", status_code=202, summary="Report a heartbeat and events (host credential)")
async def report(body: Report, state: AppState = Depends(_app_state),
                 creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> dict[str, Any]:
    """Accepted reports are written in batches; a host may report only for itself.

    The common report — a host token checked against this server's copy of the revocations, no events, room
    in the buffer — waits on nothing, so it is handled on the event loop; any other report (a credential to
    look up, events to check and write, a buffer to flush, a stream to publish to) in a worker thread.
    """
    if creds is None:
        raise AuthenticationError("health reports need 'Authorization: Bearer rfh_…' (a host credential)")
    report_ = HealthReport(host_id=body.host_id, at=body.at, versions=body.versions, committed=tuple(body.committed),
                           events=tuple((e.kind, e.rollout, e.at) for e in body.events), away=body.away)
    token = creds.credentials
    if (state.stream is None and state.host_tokens is not None and token.startswith(HOST_TOKEN_PREFIX)
            and state.host_tokens.fresh() and state.ingest.in_memory(report_)):
        return {"accepted": True, "buffered": state.ingest.submit(state.host_tokens.verify(token), report_)}
    return await run_in_threadpool(_report, state, token, report_)


def _report(state: AppState, token: str, report_: HealthReport) -> dict[str, Any]:
    host = reporting_host(state, token)
    if state.stream is not None:  # stored in the JetStream stream; ingest servers write it (services/ingest_stream)
        if report_.host_id != host:
            raise PermissionDeniedError(f"host {shown(host)} cannot report for {shown(report_.host_id)}")
        return {"accepted": True, "buffered": 0, "stream_seq": state.stream.publish(host, report_)}
    waiting = state.ingest.submit(host, report_)
    return {"accepted": True, "buffered": waiting}


@router.get("/v1/agent/desired", summary="The calling host's own desired state (host credential)")
def own_desired(state: AppState = Depends(get_state),
                creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> dict[str, Any]:
    """What each product should be on the host the credential belongs to; no operator token needed."""
    if creds is None:
        raise AuthenticationError("needs 'Authorization: Bearer rfh_…' (a host credential) or rft_… (a host token)")
    host = reporting_host(state, creds.credentials)
    return {"host": host, "products": rollouts.desired_state(state.db, host)}


@router.post("/v1/agent/token", summary="Exchange the host credential for a short-lived host token")
def host_token(state: AppState = Depends(get_state),
               creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> dict[str, Any]:
    """A signed token (rft_…) every server checks without the database, valid for ``expires_in`` seconds.

    Revoking or replacing the credential makes every server refuse its tokens within about a second.
    """
    if creds is None or not creds.credentials.startswith(HOST_TOKEN_PREFIX_CREDENTIAL):
        raise AuthenticationError("needs 'Authorization: Bearer rfh_…' (the host credential)")
    if state.host_tokens is None:
        raise UnavailableError("this server issues no host tokens: set host_token_key (RINGFENCE_HOST_TOKEN_KEY) "
                               "or an audit key; keep sending the host credential meanwhile")
    return state.host_tokens.issue(state.ingest.authenticate(creds.credentials))
