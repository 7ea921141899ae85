"""Recovery campaigns: create, plan, show, assign, mark, reveal keys, export, report (``/v1/recovery``).

Technicians (role ``technician``) reach only the routes that take them (show, mark, reveal-key, work order,
export) and see only their own work orders there; every other route needs viewer or more.
"""

from __future__ import annotations

import tempfile
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from ringfence.adapters.api.deps import AppState, get_state, notifier_of, reason_of, require
from ringfence.adapters.api.problems import MAX_REASON, Body
from ringfence.adapters.graph_keys import key_source
from ringfence.adapters.reports.recovery import render_report, render_work_order
from ringfence.domain.access import Role
from ringfence.errors import InputError, shown
from ringfence.services import recovery
from ringfence.services.context import Actor

router = APIRouter(tags=["recovery"])

Id = Annotated[str, StringConstraints(min_length=1, max_length=200)]
_NO_STORE = {"Cache-Control": "no-store"}


class CampaignRequest(Body):
    """A new campaign: its name, runbooks (YAML text), optional model and exactly one source of hosts."""

    name: str = Field(min_length=1, max_length=200)
    runbooks: str = Field(min_length=1, max_length=recovery.MAX_RUNBOOK_BYTES, description="Runbook YAML")
    model: dict[str, Any] = Field(default_factory=dict, description="Minutes per class, technicians, shifts")
    from_rollout: str = Field(default="", max_length=64)
    where: str = Field(default="", max_length=4000)
    hosts: list[Id] = Field(default_factory=list, max_length=1_000_000)
    reason: str = Field(default="", max_length=MAX_REASON)


class AssignRequest(Body):
    """Work orders for a technician."""

    hosts: list[Id] = Field(min_length=1, max_length=100_000)
    technician: str = Field(min_length=1, max_length=200, pattern=recovery.TECHNICIAN_PATTERN,
                            description="The technician's token name.")
    reason: str = Field(default="", max_length=MAX_REASON)


class MarkRequest(Body):
    """A person's move for one host: start, fixed, failed, escalate or unassign (never verified)."""

    state: str = Field(min_length=1, max_length=32)
    message: str = Field(default="", max_length=2000)


class StepEvents(Body):
    """An executor's events for one step of one host."""

    step: str = Field(min_length=1, max_length=200)
    events: list[dict[str, Any]] = Field(max_length=10_000)


def _vault(state: AppState) -> recovery.KeyVault:
    return recovery.KeyVault(state.settings.recovery_key)


def _flush(state: AppState) -> None:
    state.ingest.flush()  # heartbeats still in the buffer count for verification


@router.post("/v1/recovery/campaigns", status_code=201, summary="Create a recovery campaign")
def create(body: CampaignRequest, request: Request, state: AppState = Depends(get_state),
           actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """From a rollout (hosts that crashed, failed or went silent), a selector or a host list; all or nothing."""
    _flush(state)
    return recovery.create_campaign(state.db, actor=actor, clock=state.clock, name=body.name, runbooks=body.runbooks,
                                    model=body.model or None, from_rollout=body.from_rollout, where=body.where,
                                    hosts=body.hosts or None, reason=reason_of(request, body.reason),
                                    notifier=notifier_of(request))


@router.get("/v1/recovery/campaigns", summary="List recovery campaigns")
def list_all(state: AppState = Depends(get_state), actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Every campaign with its counts per state."""
    return {"campaigns": recovery.list_campaigns(state.db, actor=actor)}


@router.get("/v1/recovery/campaigns/{campaign_id}", summary="A campaign and its hosts")
def show(campaign_id: Id, request: Request, state: AppState = Depends(get_state),
         actor: Actor = Depends(require(Role.TECHNICIAN))) -> dict[str, Any]:
    """A technician sees only the hosts assigned to it."""
    _flush(state)
    return recovery.show(state.db, campaign_id, actor=actor, clock=state.clock, notifier=notifier_of(request))


@router.get("/v1/recovery/campaigns/{campaign_id}/plan", summary="Re-plan the campaign from now")
def plan(campaign_id: Id, request: Request, state: AppState = Depends(get_state),
         actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """ETA per site and service, waves per site and shift, critical path, RTO/MTD breaches, and the burn-down
    per recovery path, planned from the start against observed."""
    _flush(state)
    return recovery.plan(state.db, campaign_id, actor=actor, clock=state.clock, notifier=notifier_of(request))


@router.post("/v1/recovery/campaigns/{campaign_id}/assign", summary="Assign hosts to a technician")
def assign(campaign_id: Id, body: AssignRequest, request: Request, state: AppState = Depends(get_state),
           actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """One work order per host; all or nothing."""
    return recovery.assign(state.db, campaign_id, body.hosts, body.technician, actor=actor, clock=state.clock,
                           reason=reason_of(request, body.reason), notifier=notifier_of(request))


@router.post("/v1/recovery/campaigns/{campaign_id}/hosts/{host_id}/mark", summary="Mark a step of one host")
def mark(campaign_id: Id, host_id: Id, body: MarkRequest, request: Request, state: AppState = Depends(get_state),
         actor: Actor = Depends(require(Role.TECHNICIAN))) -> dict[str, Any]:
    """start, fixed, failed, escalate or unassign; a host is verified only by its own heartbeat."""
    return recovery.mark(state.db, campaign_id, host_id, body.state, actor=actor, clock=state.clock,
                         message=body.message, notifier=notifier_of(request))


@router.post("/v1/recovery/campaigns/{campaign_id}/hosts/{host_id}/events", summary="Record an executor's events")
def step_events(campaign_id: Id, host_id: Id, body: StepEvents, state: AppState = Depends(get_state),
                actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """E.g. ansible-runner's event stream for one runbook step."""
    n = recovery.record_step(state.db, campaign_id, host_id, step=body.step, events=body.events, actor=actor,
                             clock=state.clock)
    return {"recorded": n}


@router.post("/v1/recovery/campaigns/{campaign_id}/hosts/{host_id}/reveal-key", summary="Reveal one host's key")
def reveal_key(campaign_id: Id, host_id: Id, state: AppState = Depends(get_state),
               actor: Actor = Depends(require(Role.TECHNICIAN))) -> JSONResponse:
    """Only to the technician assigned to the host in an open campaign, rate-limited; audited either way."""
    source = key_source(state.settings)  # a misconfigured source is a 503 naming the setting
    try:
        data = recovery.reveal_key(state.db, campaign_id, host_id, _vault(state), actor=actor, clock=state.clock,
                                   source=source)
    finally:
        if source is not None:
            source.close()
    return JSONResponse(data, headers=_NO_STORE)


@router.get("/v1/recovery/campaigns/{campaign_id}/hosts/{host_id}/work-order", response_class=HTMLResponse,
            summary="One host's work order page (with the key as a QR code when reveal=true)")
def work_order(campaign_id: Id, host_id: Id, reveal: bool = False, state: AppState = Depends(get_state),
               actor: Actor = Depends(require(Role.TECHNICIAN))) -> HTMLResponse:
    """The host, its steps and key id; ``reveal=true`` reveals the key (audited, rate-limited) as text and QR."""
    source = key_source(state.settings) if reveal else None
    try:
        data = recovery.work_order(state.db, campaign_id, host_id, actor=actor, clock=state.clock,
                                   vault=_vault(state) if reveal else None, source=source)
    finally:
        if source is not None:
            source.close()
    html = render_work_order(data["campaign"], data["host"], data["steps"], key_id=data["key_id"], key=data["key"],
                             generated_at=state.clock())
    return HTMLResponse(html, headers=_NO_STORE)


@router.get("/v1/recovery/campaigns/{campaign_id}/export.csv", response_class=PlainTextResponse,
            summary="Work orders as CSV (never the keys)")
def export(campaign_id: Id, request: Request, state: AppState = Depends(get_state),
           actor: Actor = Depends(require(Role.TECHNICIAN))) -> PlainTextResponse:
    """host, hostname, site, state, runbook, path, assignee, key id."""
    _flush(state)
    return PlainTextResponse(recovery.export_csv(state.db, campaign_id, actor=actor, clock=state.clock,
                                                 notifier=notifier_of(request)),
                             media_type="text/csv")


@router.get("/v1/recovery/campaigns/{campaign_id}/report", response_class=HTMLResponse,
            summary="The campaign report for management (HTML)")
def report(campaign_id: Id, request: Request, state: AppState = Depends(get_state),
           actor: Actor = Depends(require(Role.VIEWER))) -> HTMLResponse:
    """Progress, planned and observed ETA, ETA per site and service, breaches, burn-down charts per site and per
    recovery path (planned against observed)."""
    _flush(state)
    c = recovery.show(state.db, campaign_id, actor=actor, clock=state.clock, notifier=notifier_of(request))
    p = recovery.plan(state.db, campaign_id, actor=actor, clock=state.clock, notifier=notifier_of(request))
    return HTMLResponse(render_report(c, p, generated_at=state.clock()))


@router.post("/v1/recovery/campaigns/{campaign_id}/close", summary="Close a campaign")
def close(campaign_id: Id, request: Request, state: AppState = Depends(get_state),
          actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Nothing changes any more and no key is revealed."""
    return recovery.close(state.db, campaign_id, actor=actor, clock=state.clock, reason=reason_of(request),
                          notifier=notifier_of(request))


@router.post("/v1/recovery/keys", summary="Import recovery keys, encrypted (escrow export CSV)",
             openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}})
async def import_keys(request: Request, state: AppState = Depends(get_state),
                      actor: Actor = Depends(require(Role.ADMIN))) -> dict[str, Any]:
    """``Hostname, KeyID, RecoveryKey`` as the vendors' export scripts write it; all or nothing."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "text/csv":
        raise InputError.single("content-type", f"is {shown(ctype or '(none)')}", expected="text/csv")
    # Spooled (to disk past 1 MiB) and read from there a buffer at a time, as the escrow import is.
    with tempfile.SpooledTemporaryFile(max_size=1024 * 1024, prefix="ringfence-keys-") as body:
        async for chunk in request.stream():
            body.write(chunk)
        body.seek(0)
        n = await run_in_threadpool(recovery.import_keys, state.db, body, _vault(state), actor=actor,
                                    clock=state.clock, reason=reason_of(request))
    return {"keys": n}
