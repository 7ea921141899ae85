"""Notification rules (YAML per tenant) and the delivery log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from ringfence.adapters.api.deps import AppState, get_state, reason_of, require
from ringfence.domain.access import Role
from ringfence.services import notifications
from ringfence.services.context import Actor

__all__ = ["router"]

router = APIRouter(tags=["notifications"])


def _rules_json(rules: Any, version: int) -> dict[str, Any]:
    return {"tenant": rules.tenant, "version": version, "targets": [t.shown() for t in rules.targets.values()],
            "rules": [{"events": list(r.events), "targets": list(r.targets)} for r in rules.rules]}


@router.put("/v1/notify/rules", summary="Set a tenant's notification rules (the notify: YAML)",
            openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}}})
async def put_rules(request: Request, state: AppState = Depends(get_state),
                    actor: Actor = Depends(require(Role.ADMIN))) -> dict[str, Any]:
    """Targets (signed webhooks, Apprise URLs) and which events go to which; all or nothing, audited."""
    body = (await request.body()).decode("utf-8", errors="replace")
    rules, version = await run_in_threadpool(lambda: notifications.apply_rules(
        state.db, body, actor=actor, clock=state.clock, reason=reason_of(request)))
    return _rules_json(rules, version)


@router.get("/v1/notify/rules", summary="Every tenant's notification rules (secrets hidden)")
def get_rules(state: AppState = Depends(get_state), actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Rules per tenant; webhook secrets and Apprise credentials are never shown."""
    return {"rules": [_rules_json(r, v) for r, v in notifications.list_rules(state.db, actor=actor)]}


@router.get("/v1/notify/deliveries", summary="The notification delivery log, newest first")
def get_deliveries(limit: int = Query(100, ge=1, le=1000),
                   state_filter: str = Query("", alias="state", pattern="^(|pending|delivered|failed)$"),
                   state: AppState = Depends(get_state), actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """One row per notification and target: state, attempts, next attempt, last error."""
    return {"deliveries": [d.to_json() for d in notifications.deliveries(state.db, actor=actor, limit=limit,
                                                                        state=state_filter)]}
