"""The audit log: read it, verify its hash chain, sign and serve checkpoints of its head."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from ringfence.adapters.api.deps import AppState, get_state, require
from ringfence.adapters.api.problems import MAX_SEQ
from ringfence.domain.access import Role
from ringfence.domain.audit import AuditEntry, canonical_time
from ringfence.errors import NotFoundError
from ringfence.services import audit
from ringfence.services.context import Actor

router = APIRouter(prefix="/v1/audit", tags=["audit"])


def entry_json(e: AuditEntry) -> dict[str, Any]:
    """JSON form of one entry."""
    return {"seq": e.seq, "at": canonical_time(e.at), "actor": e.actor, "action": e.action, "target": e.target,
            "source": e.source, "reason": e.reason, "details": dict(e.details), "prev_hash": e.prev_hash,
            "hash": e.hash}


@router.get("", summary="Newest audit entries first")
def list_(limit: int = Query(50, ge=1, le=1000), before: int | None = Query(None, ge=1, le=MAX_SEQ),
          action: str = "", actor_name: str = Query("", alias="actor"), state: AppState = Depends(get_state),
          actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Entries, newest first; page with ``before``."""
    entries = audit.list_entries(state.db, actor=actor, limit=limit, before=before, action=action, who=actor_name)
    return {"entries": [entry_json(e) for e in entries]}


@router.get("/verify", summary="Check the hash chain; names the first entry changed, deleted or reordered")
def verify(state: AppState = Depends(get_state), actor: Actor = Depends(require(Role.ADMIN))) -> dict[str, Any]:
    """``ok`` is false and ``broken`` names the entry when the chain does not hold."""
    result = audit.verify(state.db, actor=actor)
    broken = None
    if result.broken is not None:
        broken = {"seq": result.broken.seq, "kind": result.broken.kind, "message": result.broken.message}
    return {"ok": result.ok, "entries": result.entries, "head_seq": result.head_seq, "broken": broken}


@router.get("/checkpoint", summary="The latest signed checkpoint of the audit log's head")
def checkpoint_latest(state: AppState = Depends(get_state),
                      actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """The newest checkpoint `ringfence audit checkpoint` (or ``POST``) signed, as written; every cohort
    manifest of the signed channel carries the same document.  Keep copies: ``audit verify --against``
    proves against one that nothing up to its entry was changed, dropped or appended."""
    doc = audit.latest_checkpoint(audit.checkpoint_folder(state.settings))
    if doc is None:
        raise NotFoundError("no audit checkpoint has been signed yet; run `ringfence audit checkpoint`")
    return doc


@router.post("/checkpoint", status_code=201, summary="Verify the chain and sign a checkpoint of its head")
def checkpoint_create(request: Request, state: AppState = Depends(get_state),
                      actor: Actor = Depends(require(Role.ADMIN))) -> dict[str, Any]:
    """Refused (422) when the chain is broken; the channel publishes the new checkpoint at its next tick."""
    _, doc = audit.write_checkpoint(state.db, state.settings, clock=state.clock)
    wake = getattr(request.app.state.reconciler, "wake", None)
    if callable(wake):
        wake()
    return doc
