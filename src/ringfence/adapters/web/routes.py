"""The dashboard: server-rendered pages over the same services the API uses.

Login takes an operator token and keeps it in an ``HttpOnly``, ``SameSite=Strict`` cookie; every
page authenticates it again through :func:`ringfence.services.tokens.authenticate`, so a revoked
token logs the browser out at once.  Every form carries a CSRF token: for a session it is an HMAC
of the session's token (unknown to other sites, which cannot read the cookie), for the login form a
random value also set as a cookie (double submit).  Actions call the services with the signed-in
actor, so roles are enforced there again and every change lands in the audit log with its reason.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ringfence import __version__
from ringfence.adapters.api.deps import get_state
from ringfence.adapters.db.stores import health as health_store
from ringfence.adapters.db.stores import rollouts as store
from ringfence.adapters.web import views
from ringfence.domain.access import Role
from ringfence.domain.words import state_label
from ringfence.errors import AuthenticationError, InputError, NotFoundError, PermissionDeniedError, RingfenceError, shown
from ringfence.services import inventory, notifications, rollouts, tokens
from ringfence.services.context import Actor
from ringfence.services.notify import Notifier

__all__ = ["COOKIE", "LOGIN_COOKIE", "csrf_for", "router"]

COOKIE = "ringfence_session"
LOGIN_COOKIE = "ringfence_login"
OPS = ("pause", "resume", "approve", "extend", "halt", "rollback", "abort")
#: Which operations make sense in which state (the engine refuses the rest anyway).
_OPS_IN = {
    "pause": {"progressing", "baking", "waiting_window", "waiting_approval", "hold"},
    "resume": {"paused", "halted"},
    "approve": {"waiting_approval", "progressing", "baking", "waiting_window", "hold"},
    "extend": {"hold"},
    "halt": {"progressing", "baking", "waiting_window", "waiting_approval", "paused", "hold"},
    "rollback": {"progressing", "baking", "waiting_window", "waiting_approval", "paused", "halted", "hold"},
    "abort": {"pending", "progressing", "baking", "waiting_window", "waiting_approval", "paused", "halted", "hold"},
}

router = APIRouter(include_in_schema=False)
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_env.filters["when"] = views.when
_env.filters["prose"] = views.prose
_env.globals["state_label"] = state_label
_env.filters["num"] = lambda n: f"{n:,}" if isinstance(n, int) else (f"{n:,.3g}" if isinstance(n, float) else n)


def csrf_for(token: str) -> str:
    """The CSRF token of a session: an HMAC of its operator token."""
    return hmac.new(token.encode(), b"ringfence-dashboard-csrf", hashlib.sha256).hexdigest()


def _notifier(request: Request) -> Notifier | None:
    """The app's notifier (adapters/notify), so a halt or kill switch pressed here is told like any other."""
    notifier: Notifier | None = getattr(request.app.state, "notifier", None)
    return notifier


def _session(request: Request) -> tuple[Actor, str] | None:
    token = request.cookies.get(COOKIE, "")
    if not token:
        return None
    state = get_state(request)
    try:
        actor = tokens.authenticate(state.db, token, source=request.client.host if request.client else "",
                                    clock=state.clock)
    except AuthenticationError:
        return None
    return actor, token


def _render(request: Request, name: str, status: int = 200, session: tuple[Actor, str] | None = None,
            **context: Any) -> HTMLResponse:
    state = get_state(request)
    demo = getattr(request.app.state, "demo", None)
    actor = session[0] if session else None
    page = _env.get_template(name).render(
        request=request, actor=actor, csrf=csrf_for(session[1]) if session else "", version=__version__,
        demo=demo.info() if demo is not None else None, clock_now=state.clock(), words=views.STATE_WORDS,
        can_operate=bool(actor and actor.role.allows(Role.OPERATOR)), path=request.url.path, **context)
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def _error(request: Request, session: tuple[Actor, str] | None, exc: RingfenceError) -> HTMLResponse:
    issues = list(exc.issues) if isinstance(exc, InputError) else []
    return _render(request, "error.html.j2", status=exc.status, session=session, title=exc.title,
                   message=exc.message, issues=issues)


def _safe_next(value: str) -> str:
    parts = urlsplit(value)
    return value if value.startswith("/") and not value.startswith("//") and not parts.netloc else "/"


async def _form(request: Request, session: tuple[Actor, str]) -> dict[str, str]:
    """The posted form, after checking its CSRF token; PermissionDeniedError when it is missing or wrong."""
    form = await request.form()
    fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    if not hmac.compare_digest(fields.get("csrf", ""), csrf_for(session[1])):
        raise PermissionDeniedError("the form's CSRF token is missing or wrong: reload the page and try again")
    return fields


# --- login and logout ------------------------------------------------------------------------

@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    """The login form (sets a fresh double-submit CSRF cookie)."""
    nonce = secrets.token_urlsafe(24)
    response = _render(request, "login.html.j2", login_csrf=nonce, next=_safe_next(next), message="")
    response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", path="/login")
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the token; on success keep it in an HttpOnly, SameSite=Strict cookie."""
    form = await request.form()
    fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    target = _safe_next(fields.get("next", "/"))
    if not nonce or not hmac.compare_digest(fields.get("csrf", ""), nonce):
        fresh = secrets.token_urlsafe(24)
        response = _render(request, "login.html.j2", status=403, login_csrf=fresh, next=target,
                           message="The form expired (CSRF check failed). Please try again.")
        response.set_cookie(LOGIN_COOKIE, fresh, httponly=True, samesite="strict", path="/login")
        return response
    token = fields.get("token", "").strip()
    state = get_state(request)
    try:
        await run_in_threadpool(tokens.authenticate, state.db, token,
                                source=request.client.host if request.client else "", clock=state.clock)
    except AuthenticationError as e:
        return _render(request, "login.html.j2", status=401, login_csrf=nonce, next=target,
                       message=f"Sign-in failed: {e.message}. Paste an operator token (rf_…) from "
                               "`ringfence token create`.")
    done = RedirectResponse(target, status_code=303)
    done.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
    done.delete_cookie(LOGIN_COOKIE, path="/login")
    return done


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Forget the session cookie (CSRF-checked)."""
    session = _session(request)
    if session is not None:
        try:
            await _form(request, session)
        except RingfenceError as e:
            return _error(request, session, e)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# --- pages ------------------------------------------------------------------------------------

@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request) -> Response:
    """Active rollouts, halts needing attention, fleet health, kill switches and the demo."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    data = views.overview(get_state(request), session[0])
    history = views.fleet_history(get_state(request), data["now"])
    return _render(request, "overview.html.j2", session=session, history=history, **data)


@router.get("/ui/live/overview", response_class=HTMLResponse)
def overview_live(request: Request) -> Response:
    """The live part of the overview (polled by the page)."""
    session = _session(request)
    if session is None:
        return Response(status_code=401)
    data = views.overview(get_state(request), session[0])
    return _render(request, "_overview_live.html.j2", session=session, **data)


@router.get("/rollouts/{rollout_id}", response_class=HTMLResponse)
def rollout_detail(request: Request, rollout_id: str) -> Response:
    """One rollout: waves, exposure, gate evidence, windows, holds, decisions and the actions."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    try:
        data = views.rollout_page(get_state(request), rollout_id)
    except RingfenceError as e:
        return _error(request, session, e)
    return _render(request, "rollout.html.j2", session=session, ops=_ops(session[0], data), **data)


def _ops(actor: Actor, data: dict[str, Any]) -> list[str]:
    """The actions this actor may take on the rollout now (the services check again)."""
    r = data["r"]
    wave = r["waves"][r["wave"]] if r["waves"] else {}
    ops = []
    for op in OPS:
        if r["state"] not in _OPS_IN[op] or not actor.role.allows(Role.APPROVER if op == "approve" else Role.OPERATOR):
            continue
        on_hold = r["state"] == "hold"  # approve on hold promotes the wave (a person decides)
        if op == "approve" and (actor.name == data["started_by"] or (not on_hold and (
                not wave.get("needs_approval") or wave.get("approved_by")))):
            continue  # four eyes: never for who started it; and only when the wave waits for an approval
        ops.append(op)
    return ops


@router.get("/ui/live/rollouts/{rollout_id}/actions", response_class=HTMLResponse)
def rollout_actions_live(request: Request, rollout_id: str) -> Response:
    """The actions of a rollout page, re-rendered when its state changed (the page asks)."""
    session = _session(request)
    if session is None:
        return Response(status_code=401)
    try:
        data = views.rollout_page(get_state(request), rollout_id)
    except RingfenceError as e:
        return _error(request, session, e)
    return _render(request, "_rollout_actions.html.j2", session=session, ops=_ops(session[0], data), **data)


@router.get("/ui/live/rollouts/{rollout_id}", response_class=HTMLResponse)
def rollout_live(request: Request, rollout_id: str) -> Response:
    """The live part of a rollout page."""
    session = _session(request)
    if session is None:
        return Response(status_code=401)
    try:
        data = views.rollout_page(get_state(request), rollout_id)
    except RingfenceError as e:
        return _error(request, session, e)
    return _render(request, "_rollout_live.html.j2", session=session, **data)


@router.get("/notifications", response_class=HTMLResponse)
def notifications_page(request: Request, state: str = "") -> Response:
    """Who was told what: the notification rules (no secrets) and the delivery log, newest first."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    app_state = get_state(request)
    try:
        log = notifications.deliveries(app_state.db, actor=session[0], limit=200,
                                       state=state if state in ("pending", "delivered", "failed") else "")
        rules = notifications.list_rules(app_state.db, actor=session[0])
    except RingfenceError as e:
        return _error(request, session, e)
    return _render(request, "notifications.html.j2", session=session, deliveries=log, rules=rules, state=state)


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    """The dashboard's icon (an SVG: a ring around a dot), so browsers stop asking for a missing file."""
    return Response(_FAVICON, media_type="image/svg+xml", headers={"cache-control": "public, max-age=86400"})


_FAVICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="12" fill="none" '
            b'stroke="#1f5fa8" stroke-width="5"/><circle cx="16" cy="16" r="4" fill="#c0392b"/></svg>')


@router.get("/hosts", response_class=HTMLResponse)
def hosts_page(request: Request, where: str = "", after: str = "") -> Response:
    """Hosts matching a selector."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    state = get_state(request)
    problem: RingfenceError | None = None
    page = None
    try:
        page = inventory.list_hosts(state.db, actor=session[0], where=where, limit=100, after=after)
    except InputError as e:
        problem = e
    with state.db.transaction() as conn:
        beats = health_store.heartbeats(conn, [h.id for h in page.hosts]) if page else {}
    return _render(request, "hosts.html.j2", status=problem.status if problem else 200, session=session, where=where,
                   page=page, problem=problem, beats=beats, now=state.clock(), silent_after=views.SILENT_AFTER)


@router.get("/hosts/{host_id}", response_class=HTMLResponse)
def host_page(request: Request, host_id: str) -> Response:
    """One host: facts, versions per product, desired state, heartbeats and health events."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    state = get_state(request)
    try:
        host = inventory.get_host(state.db, host_id, actor=session[0])
        desired = rollouts.desired_state(state.db, host_id, actor=session[0])
    except RingfenceError as e:
        return _error(request, session, e)
    with state.db.transaction() as conn:
        products = sorted({r.product for r in store.list_releases(conn)})
        versions = {p: health_store.versions_of(conn, [host_id], p).get(host_id) for p in products}
        first = health_store.first_heartbeats(conn, [host_id]).get(host_id)
        last = health_store.heartbeats(conn, [host_id]).get(host_id)
        rollout_ids = [r.id for r in store.list_rollout_rows(conn)]
        times = health_store.first_event_times(conn, [*rollout_ids, ""], datetime(1970, 1, 1, tzinfo=UTC))
    events = sorted(((at, kind) for kind, hosts in times.items() for h, at in hosts.items() if h == host_id),
                    reverse=True)
    return _render(request, "host.html.j2", session=session, host=host, versions=versions, desired=desired,
                   first=first, last=last, events=events, now=state.clock(), silent_after=views.SILENT_AFTER)


@router.get("/releases", response_class=HTMLResponse)
def releases_page(request: Request) -> Response:
    """Releases: artifacts, SBOM findings and the release gates of their rollouts."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    return _render(request, "releases.html.j2", session=session,
                   releases=views.releases_page(get_state(request), session[0]))


# --- actions ----------------------------------------------------------------------------------

@router.post("/ui/rollouts/{rollout_id}/{op}")
async def rollout_action(request: Request, rollout_id: str, op: str) -> Response:
    """pause, resume, approve, halt, rollback or abort, with a reason (CSRF-checked)."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    state = get_state(request)
    try:
        fields = await _form(request, session)
        if op not in OPS:
            raise NotFoundError(f"no operation {shown(op)}: use one of {', '.join(OPS)}")
        reason = fields.get("reason", "").strip()
        if not reason:
            raise InputError.single("reason", "is empty", expected="why (it goes to the audit log)")
        await run_in_threadpool(rollouts.operate, state.db, rollout_id, op, actor=session[0], clock=state.clock,
                                reason=reason[:2000], notifier=_notifier(request), artifacts=state.context.artifacts,
                                advisory_cache=state.context.advisories)
    except RingfenceError as e:
        return _error(request, session, e)
    return RedirectResponse(f"/rollouts/{quote(rollout_id)}", status_code=303)


@router.post("/ui/killswitch/{product}")
async def killswitch_action(request: Request, product: str) -> Response:
    """Engage or release a product's kill switch: needs a reason and the confirmation box ticked."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    state = get_state(request)
    try:
        fields = await _form(request, session)
        engage = fields.get("action", "engage") != "release"
        reason = fields.get("reason", "").strip()
        if not reason:
            raise InputError.single("reason", "is empty", expected="why (it goes to the audit log)")
        if fields.get("confirm") != product:
            raise InputError.single("confirm", "does not name the product",
                                    expected=f"type {shown(product)} to confirm the kill switch")
        await run_in_threadpool(rollouts.kill_switch, state.db, product, engage=engage, actor=session[0],
                                clock=state.clock, reason=reason[:2000], notifier=_notifier(request))
    except RingfenceError as e:
        return _error(request, session, e)
    return RedirectResponse("/", status_code=303)


@router.post("/ui/demo/replay")
async def replay_action(request: Request) -> Response:
    """Demo only: publish the faulty content release of 19 July 2024 and start its rollout."""
    session = _session(request)
    if session is None:
        return _login_redirect(request)
    demo = getattr(request.app.state, "demo", None)
    try:
        await _form(request, session)
        if demo is None:
            raise NotFoundError("the demo is not running: start the server with `ringfence serve --demo`")
        session[0].require(Role.OPERATOR, "replaying 19 July 2024")
        rollout_id: str = await run_in_threadpool(demo.replay, session[0])
    except RingfenceError as e:
        return _error(request, session, e)
    return RedirectResponse(f"/rollouts/{quote(rollout_id)}", status_code=303)



@router.get("/ui/live/clock", response_class=HTMLResponse)
def clock_live(request: Request) -> Response:
    """The server's (demo) clock, polled by every page."""
    return _render(request, "_clock.html.j2")
