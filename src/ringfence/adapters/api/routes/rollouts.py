"""Releases, plans, tenant policies, rollouts, desired state and the kill switch."""

from __future__ import annotations

from typing import IO, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ringfence.adapters.api.deps import AppState, get_state, notifier_of, reason_of, require
from ringfence.adapters.api.problems import MAX_REASON, Body, check_form_fields
from ringfence.adapters.db.stores import rollouts as store
from ringfence.domain.access import Role
from ringfence.domain.channel import NAME_PATTERN, NAME_RULE
from ringfence.domain.plans import plan_to_mapping
from ringfence.domain.rollout import Release
from ringfence.errors import InputError, NotFoundError, shown
from ringfence.services import release_gates, rollouts, supply_chain
from ringfence.services.context import Actor
from ringfence.services.health import issue_credential

router = APIRouter()


def release_json(r: Release) -> dict[str, Any]:
    """JSON form of a release."""
    return {"id": r.id, "product": r.product, "version": r.version, "kind": r.kind.value,
            "platforms": list(r.platforms), "created_at": r.created_at.isoformat() if r.created_at else None,
            "created_by": r.created_by,
            "artifacts": [{"name": a.name, "sha256": a.sha256, "size": a.size} for a in r.artifacts]}


# --- releases -------------------------------------------------------------------------------

@router.post("/v1/releases", status_code=201, tags=["releases"], summary="Create a release from artifacts",
             openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
                 "type": "object", "required": ["product", "version", "kind", "platforms", "files"],
                 "properties": {"product": {"type": "string", "maxLength": 200, "pattern": NAME_PATTERN,
                                            "description": f"Channel name: {NAME_RULE}"},
                                "version": {"type": "string", "maxLength": 100, "pattern": NAME_PATTERN,
                                            "description": f"Channel name of at most 100 characters: {NAME_RULE}"},
                                "kind": {"type": "string", "enum": ["agent", "content", "os-patch", "app"]},
                                "platforms": {"type": "array", "minItems": 1, "items": {
                                    "type": "string", "enum": ["windows", "linux", "macos"]}},
                                "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                                "sbom": {"type": "string", "format": "binary"},
                                "content_schema": {"type": "string", "format": "binary"},
                                "for_agent": {"type": "string"},
                                "reason": {"type": "string"}}}}}}})
async def create_release(request: Request, state: AppState = Depends(get_state),
                         actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Store artifacts content-addressed (SHA-256) and record the release (immutable)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise InputError.single("content-type", f"is {shown(ctype or '(none)')}", expected="multipart/form-data")
    form = await request.form(max_files=100, max_part_size=state.settings.max_upload_mb * 1024 * 1024)
    try:
        # The artifacts stay where the form parser spooled them (disk past 1 MiB) and are copied into the
        # store a buffer at a time; the SBOM and content schema are JSON documents, parsed whole.
        files: list[tuple[str, bytes | IO[bytes]]] = []
        for v in form.getlist("files"):
            if isinstance(v, UploadFile):
                await v.seek(0)
                files.append((v.filename or "artifact", v.file))
        fields = check_form_fields({k: str(form.get(k) or "") for k in ("product", "version", "kind", "reason", "for_agent")})
        platforms = [str(p) for p in form.getlist("platforms") if str(p)]
        # Supply chain (optional): an SBOM, an agent's content schema, or the agent product content is for.
        extra = {k: (part.filename or k, await part.read()) for k in ("sbom", "content_schema")
                 if isinstance(part := form.get(k), UploadFile)}
        return await run_in_threadpool(_create_release, request, state, actor, files, fields, platforms, extra)
    finally:
        await form.close()


def _create_release(request: Request, state: AppState, actor: Actor, files: list[tuple[str, bytes | IO[bytes]]],
                    fields: dict[str, str], platforms: list[str], extra: dict[str, tuple[str, bytes]]) -> dict[str, Any]:
    """The work of POST /v1/releases, in a worker thread while the form's spooled parts are still open."""
    sbom = supply_chain.prepare_sbom(*extra["sbom"]) if "sbom" in extra else None
    contract = supply_chain.prepare_contract(fields["kind"], extra["content_schema"][1] if "content_schema" in extra
                                             else None, fields["for_agent"].strip())
    release = rollouts.create_release(state.db, state.artifacts, product=fields["product"],
                                      version=fields["version"], kind=fields["kind"], platforms=platforms,
                                      files=files, actor=actor, clock=state.clock,
                                      reason=reason_of(request, fields["reason"]))
    out = release_json(release)
    if contract is not None:
        supply_chain.store_contract(state.db, release.id, contract)
        out["contract"] = {"for_agent": contract.for_agent or None,
                           "content_schema": contract.content_schema is not None}
    if sbom is not None:
        out["sbom"] = supply_chain.attach_sbom(state.db, release.id, sbom, actor=actor, clock=state.clock,
                                               reason=reason_of(request, fields["reason"]))
    return out


@router.get("/v1/releases", tags=["releases"], summary="List releases")
def list_releases(product: str = "", state: AppState = Depends(get_state),
                  actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Releases, newest first per product."""
    with state.db.transaction() as conn:
        return {"releases": [release_json(r) for r in store.list_releases(conn, product)]}


@router.get("/v1/releases/{release_id}", tags=["releases"], summary="One release")
def get_release(release_id: str, state: AppState = Depends(get_state),
                actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """A release and its artifacts."""
    with state.db.transaction() as conn:
        release = store.get_release(conn, release_id)
    if release is None:
        raise NotFoundError(f"release {shown(release_id)} not found")
    return release_json(release)


# --- plans and policies -----------------------------------------------------------------------

@router.put("/v1/plans", tags=["plans"], summary="Apply a plan (YAML body)",
            openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}}})
async def apply_plan(request: Request, state: AppState = Depends(get_state),
                     actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Validate a plan and store it under its name; errors name the field."""
    body = (await request.body()).decode("utf-8", errors="replace")
    plan, version = await run_in_threadpool(rollouts.apply_plan, state.db, body, actor=actor, clock=state.clock,
                                            reason=reason_of(request))
    return {"name": plan.name, "version": version, "plan": plan_to_mapping(plan)}


@router.get("/v1/plans", tags=["plans"], summary="List plans")
def list_plans(state: AppState = Depends(get_state), actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Stored plans (the built-in ``default`` is always available)."""
    with state.db.transaction() as conn:
        plans = store.list_plans(conn)
    if not any(p["name"] == "default" for p in plans):
        plans.insert(0, {"name": "default", "version": 0, "updated_at": None, "updated_by": "built-in"})
    return {"plans": plans}


@router.get("/v1/plans/{name}", tags=["plans"], summary="One plan")
def get_plan(name: str, state: AppState = Depends(get_state),
             actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """A plan as its validated mapping."""
    return plan_to_mapping(rollouts.get_plan(state.db, name))


@router.get("/v1/plans/{name}/check", tags=["plans"], summary="Wave sizes and strata the first wave misses")
def check_plan(name: str, release: str = Query(..., description="Release id, product@version"),
               state: AppState = Depends(get_state), actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """How a release would spread under a plan."""
    check = rollouts.plan_check(state.db, name, release, actor=actor)
    return {"plan": name, "release": release, "wave_sizes": list(check.sizes), "strata": check.strata,
            "missing_in_first_wave": list(check.missing_in_first_wave), "ok": not check.missing_in_first_wave}


class PolicyBody(Body):
    """A tenant policy."""

    tenant: str = Field(min_length=1, max_length=200)
    host_group: str = Field(default="", max_length=400, description="Selector for a group of the tenant's hosts.")
    product: str = Field(default="*", min_length=1, max_length=200, description="Product, or * for every product.")
    ring: Literal["early", "general", "pause"] = Field(default="general", description="early, general or pause.")
    delay_hours: float = Field(default=0.0, ge=0, le=2160, allow_inf_nan=False)
    pin: str = Field(default="latest", max_length=110, pattern=r"^(latest|n-1|exact:[^\u0000]+)$",
                     description="latest, n-1 or exact:VERSION.")
    reason: str = Field(default="", max_length=2000)


@router.put("/v1/policies", tags=["policies"], summary="Set a tenant policy")
def put_policy(body: PolicyBody, request: Request, state: AppState = Depends(get_state),
               actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Ring, delay and pin for a tenant (or a host group of it) and a product."""
    rollouts.set_policy(state.db, tenant=body.tenant, host_group=body.host_group, product=body.product,
                        ring=body.ring, delay_hours=body.delay_hours, pin=body.pin, actor=actor, clock=state.clock,
                        reason=reason_of(request, body.reason))
    return body.model_dump(exclude={"reason"})


@router.get("/v1/policies", tags=["policies"], summary="List tenant policies")
def list_policies(tenant: str = "", state: AppState = Depends(get_state),
                  actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Every tenant policy."""
    with state.db.transaction() as conn:
        return {"policies": store.list_policies(conn, tenant)}


# --- rollouts -----------------------------------------------------------------------------

class RolloutCreate(Body):
    """Which release under which plan."""

    release: str = Field(max_length=400, description="Release id, product@version.")
    plan: str = Field(default="default", max_length=200)
    start: bool = Field(default=True, description="Start it at once.")
    reason: str = Field(default="", max_length=MAX_REASON)


class Reason(Body):
    """Why (goes to the audit log)."""

    reason: str = Field(default="", max_length=MAX_REASON)


def rollout_json(state: AppState, rollout_id: str, *, decisions: int = 20) -> dict[str, Any]:
    """A rollout's spec, status, per-wave progress and recent decisions."""
    view = rollouts.get_rollout(state.db, rollout_id)
    spec, status = view.spec, view.status
    with state.db.transaction() as conn:
        rows = store.rollout_host_rows(conn, rollout_id)
        log = store.decisions(conn, rollout_id)
        policies = store.list_policies(conn)
        gates = release_gates.gates_of(conn, rollout_id)  # release gates, run at start (supply chain)
    waves = []
    for k, (w, ws) in enumerate(zip(spec.plan.waves, status.waves, strict=True)):
        members = [r for r in rows if r.wave == k]
        waves.append({"index": k, "name": w.name, "state": ws.state.value, "hosts": len(members),
                      "exposed": sum(1 for r in members if r.exposed_at is not None),
                      "rolled_back": sum(1 for r in members if r.rolled_back_at is not None),
                      "opened_at": ws.opened_at.isoformat() if ws.opened_at else None,
                      "bake_started_at": ws.bake_started_at.isoformat() if ws.bake_started_at else None,
                      "passed_at": ws.passed_at.isoformat() if ws.passed_at else None,
                      "needs_approval": w.needs_approval, "approved_by": ws.approved_by,
                      "min_bake_minutes": w.min_bake.total_seconds() / 60})
    held = [p for p in policies if p["product"] in (spec.release.product, "*")
            and (p["ring"] == "pause" or p["pin"] != "latest" or p["delay_hours"] > 0)]
    latest_evidence: dict[str, Any] = next((d["evidence"] for d in reversed(log) if d["evidence"]), {})
    return {
        "id": spec.id, "release": spec.release.id, "product": spec.release.product, "version": spec.release.version,
        "plan": spec.plan.name, "state": status.state.value, "wave": status.wave, "message": status.message,
        "started_at": status.started_at.isoformat() if status.started_at else None, "started_by": status.started_by,
        "halted_at": status.halted_at.isoformat() if status.halted_at else None, "halt_reason": status.halt_reason,
        "created_by": spec.created_by, "hosts": len(rows), "exposed": sum(1 for r in rows if r.exposed_at is not None),
        "waves": waves, "policies_holding": held, "gate": latest_evidence, "gates": gates, "version_counter": view.version,
        "decisions": [{**d, "at": d["at"].isoformat() if d["at"] else None} for d in log[-decisions:]],
    }


@router.post("/v1/rollouts", status_code=201, tags=["rollouts"], summary="Create (and start) a rollout")
def create_rollout(body: RolloutCreate, request: Request, state: AppState = Depends(get_state),
                   actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Target hosts, place them in waves (stratified, tier-0 last) and start."""
    view = rollouts.create_rollout(state.db, release_id=body.release, plan_name=body.plan, actor=actor,
                                   clock=state.clock, reason=reason_of(request, body.reason), start=body.start,
                                   notifier=notifier_of(request), artifacts=state.context.artifacts,
                                   advisory_cache=state.context.advisories)
    return rollout_json(state, view.spec.id)


@router.get("/v1/rollouts", tags=["rollouts"], summary="List rollouts")
def list_rollouts(active: bool = False, state: AppState = Depends(get_state),
                  actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Rollouts, newest first."""
    views = rollouts.list_rollouts(state.db, actor=actor, active_only=active)
    return {"rollouts": [{"id": v.spec.id, "release": v.spec.release.id, "plan": v.spec.plan.name,
                          "state": v.status.state.value, "wave": v.status.wave, "message": v.status.message}
                         for v in views]}


@router.get("/v1/rollouts/{rollout_id}", tags=["rollouts"], summary="A rollout's status")
def get_rollout(rollout_id: str, state: AppState = Depends(get_state),
                actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Status, waves, holds by tenant policy, the gate's latest evidence and recent decisions."""
    return rollout_json(state, rollout_id)


@router.get("/v1/rollouts/{rollout_id}/decisions", tags=["rollouts"], summary="The decision log (explain)")
def explain(rollout_id: str, state: AppState = Depends(get_state),
            actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Every decision with its reasons and evidence, oldest first."""
    rollouts.get_rollout(state.db, rollout_id)
    with state.db.transaction() as conn:
        log = store.decisions(conn, rollout_id)
    return {"id": rollout_id, "decisions": [{**d, "at": d["at"].isoformat() if d["at"] else None} for d in log]}


@router.post("/v1/rollouts/{rollout_id}/{op}", tags=["rollouts"],
             summary="start, pause, resume, approve, extend, halt, rollback or abort")
def operate(rollout_id: str, op: str, request: Request, body: Reason | None = None,
            state: AppState = Depends(get_state), actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Apply a command; approve needs the approver role and a different person than who started it."""
    if op not in ("start", "pause", "resume", "approve", "extend", "halt", "rollback", "abort"):
        raise NotFoundError(f"no operation {shown(op)}: use start, pause, resume, approve, extend, halt, rollback or abort")
    rollouts.operate(state.db, rollout_id, op, actor=actor, clock=state.clock,
                     reason=reason_of(request, body.reason if body else ""), notifier=notifier_of(request),
                     artifacts=state.context.artifacts, advisory_cache=state.context.advisories)
    return rollout_json(state, rollout_id)


@router.post("/v1/killswitch/{product}", tags=["rollouts"], summary="Halt every rollout of a product")
def killswitch(product: str, request: Request, body: Reason | None = None, release: bool = False,
               state: AppState = Depends(get_state), actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Engage (or with ``release=true`` disengage) a product's kill switch."""
    halted = rollouts.kill_switch(state.db, product, engage=not release, actor=actor, clock=state.clock,
                                  reason=reason_of(request, body.reason if body else ""), notifier=notifier_of(request))
    return {"product": product, "engaged": not release, "halted_rollouts": halted}


@router.get("/v1/hosts/{host_id}/desired", tags=["rollouts"], summary="What each product should be on a host")
def desired(host_id: str, state: AppState = Depends(get_state),
            actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """The desired version per product, from rollouts, pins and kill switches, with the reason."""
    return {"host": host_id, "products": rollouts.desired_state(state.db, host_id, actor=actor)}


@router.post("/v1/hosts/{host_id}/credentials", status_code=201, tags=["health"],
             summary="Issue a host credential for health reports")
def credential(host_id: str, request: Request, state: AppState = Depends(get_state),
               actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """A per-host credential (shown once) with which that host's agent reports health."""
    token = issue_credential(state.db, host_id, actor=actor, clock=state.clock, reason=reason_of(request))
    state.ingest.forget_credentials()
    return {"host": host_id, "credential": token}
