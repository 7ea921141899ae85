"""Dashboard pages for recovery campaigns: the list, a new campaign from a rollout (the demo replay's hand-off,
``/recovery/new?rollout=ID``), a campaign (burn-down per site and per path, work orders, assigning) and work
orders.

Same rules as the API: a technician sees only the hosts assigned to it (and no plan), marks its own hosts and
reveals a key with a form (POST, CSRF-checked, audited, rate-limited); every page is sent ``no-store``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from ringfence.adapters.api.deps import get_state
from ringfence.adapters.graph_keys import key_source
from ringfence.adapters.reports.assessment import step_chart
from ringfence.adapters.reports.recovery import path_chart, planned_left, qr_svg
from ringfence.adapters.web.routes import _error, _form, _login_redirect, _notifier, _render, _session
from ringfence.domain.access import Role
from ringfence.domain.recovery_campaign import MOVES
from ringfence.errors import InputError, RingfenceError, shown
from ringfence.services import recovery

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _chart(plan: dict[str, Any]) -> Markup:
    burn = plan.get("burn_down_by_site", {})
    top = sorted(burn, key=lambda s: -(burn[s][0][1] if burn[s] else 0))[:8]
    lines = [(s, [(float(h), float(n)) for h, n in burn[s] if h is not None]) for s in top]
    return step_chart("hosts still to recover per site, planned from now", lines, x_label="hours after the start",
                      y_label="hosts") if lines else Markup("")


@router.get("/recovery")
def campaigns_page(request: Request) -> Response:
    """Every campaign with its counts."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    state = get_state(request)
    try:
        rows = recovery.list_campaigns(state.db, actor=session[0])
    except RingfenceError as e:
        return _error(request, session, e)
    return _render(request, "recovery_list.html.j2", session=session, campaigns=rows)


@router.get("/recovery/new")
def new_campaign_page(request: Request, rollout: str = "") -> Response:
    """A campaign for the hosts a rollout left behind (exposed, then crashed, failed or silent): the form."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    state = get_state(request)
    actor = session[0]
    try:
        actor.require(Role.OPERATOR, "opening a recovery campaign")
        if not rollout:
            raise InputError.single("rollout", "is missing", expected="/recovery/new?rollout=ROLLOUT-ID")
        state.ingest.flush()
        hosts = recovery.hosts_to_recover(state.db, rollout[:64], actor=actor, clock=state.clock)
    except RingfenceError as e:
        return _error(request, session, e)
    return _render(request, "recovery_new.html.j2", session=session, rollout=rollout[:64], hosts=hosts,
                   runbooks=recovery.default_runbooks(), campaign_name=f"recovery after {rollout[:64]}")


@router.post("/recovery/new")
async def create_campaign(request: Request) -> Response:
    """Create the campaign from the form (CSRF-checked, all or nothing) and open its page."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    state = get_state(request)
    try:
        fields = await _form(request, session)
        state.ingest.flush()
        c = await run_in_threadpool(
            recovery.create_campaign, state.db, actor=session[0], clock=state.clock, name=fields.get("name", ""),
            runbooks=fields.get("runbooks", ""), from_rollout=fields.get("rollout", "")[:64],
            reason=fields.get("reason", "")[:2000], notifier=_notifier(request))
    except RingfenceError as e:
        return _error(request, session, e)
    return RedirectResponse(f"/recovery/{c['id']}", status_code=303)


@router.post("/recovery/{campaign_id}/assign")
async def assign_hosts(request: Request, campaign_id: str) -> Response:
    """Work orders from the campaign page: the next ``count`` queued hosts (by host id) to a technician."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    state = get_state(request)
    try:
        fields = await _form(request, session)
        raw = fields.get("count", "")
        if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
            raise InputError.single("count", f"is {shown(raw)}", expected="a number of hosts from 1 to 100,000")
        queued = [h["host_id"] for h in recovery.show(state.db, campaign_id, actor=session[0], clock=state.clock)["hosts"]
                  if h["state"] == "queued"]
        if not queued:
            raise InputError.single("count", "no host is queued", expected="a campaign with queued hosts")
        recovery.assign(state.db, campaign_id, queued[:int(raw)], fields.get("technician", "").strip(),
                        actor=session[0], clock=state.clock, reason=fields.get("reason", "")[:2000],
                        notifier=_notifier(request))
    except RingfenceError as e:
        return _error(request, session, e)
    return RedirectResponse(f"/recovery/{campaign_id}", status_code=303)


@router.get("/recovery/{campaign_id}")
def campaign_page(request: Request, campaign_id: str) -> Response:
    """One campaign: progress, planned burn-down per site (not for technicians), work orders."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    state = get_state(request)
    actor = session[0]
    try:
        state.ingest.flush()
        c = recovery.show(state.db, campaign_id, actor=actor, clock=state.clock, notifier=_notifier(request))
        plan = None if actor.role is Role.TECHNICIAN else recovery.plan(state.db, campaign_id, actor=actor,
                                                                         clock=state.clock, notifier=_notifier(request))
    except RingfenceError as e:
        return _error(request, session, e)
    moves = {m: sorted(s.value for s in allowed) for m, (allowed, _) in MOVES.items() if m != "assign"}
    return _render(request, "recovery_campaign.html.j2", session=session, c=c, plan=plan,
                   chart=_chart(plan) if plan else Markup(""), moves=moves,
                   path_chart=path_chart(plan) if plan else Markup(""), planned_left=planned_left)


@router.post("/recovery/{campaign_id}/hosts/{host_id}/mark")
async def mark_host(request: Request, campaign_id: str, host_id: str) -> Response:
    """A person's move for one host, from the campaign page."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    state = get_state(request)
    try:
        fields = await _form(request, session)
        recovery.mark(state.db, campaign_id, host_id, fields.get("state", ""), actor=session[0], clock=state.clock,
                      message=fields.get("message", ""), notifier=_notifier(request))
    except RingfenceError as e:
        return _error(request, session, e)
    return RedirectResponse(f"/recovery/{campaign_id}", status_code=303)


@router.get("/recovery/{campaign_id}/hosts/{host_id}")
def work_order_page(request: Request, campaign_id: str, host_id: str) -> Response:
    """One host's work order, without the key (the key needs the reveal form)."""
    return _work_order(request, campaign_id, host_id, reveal=False)


@router.post("/recovery/{campaign_id}/hosts/{host_id}/reveal")
async def reveal_page(request: Request, campaign_id: str, host_id: str) -> Response:
    """The work order with the key as text and QR code: only for the assigned technician (audited)."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    try:
        await _form(request, session)
    except RingfenceError as e:
        return _error(request, session, e)
    return _work_order(request, campaign_id, host_id, reveal=True)


def _work_order(request: Request, campaign_id: str, host_id: str, *, reveal: bool) -> Response:
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    state = get_state(request)
    source = None
    try:
        source = key_source(state.settings) if reveal else None
        data = recovery.work_order(state.db, campaign_id, host_id, actor=session[0], clock=state.clock,
                                   vault=recovery.KeyVault(state.settings.recovery_key) if reveal else None,
                                   source=source)
    except RingfenceError as e:
        return _error(request, session, e)
    finally:
        if source is not None:
            source.close()
    return _render(request, "recovery_workorder.html.j2", session=session, w=data,
                   qr=qr_svg(data["key"]) if data["key"] else Markup(""))
