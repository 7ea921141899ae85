"""Releases, plans, tenant policies, rollouts (spec, status, per-host exposure), decisions, kill switches.

Rollout status changes go through :func:`save_status`, an optimistic update on
the row's ``version``: two reconcilers (or a reconciler and an operator) that
read the same status cannot both write, so a promotion is never applied twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ringfence.adapters.db.stores.base import bulk_insert, chunks, update_versioned, utc
from ringfence.adapters.db.tables import (
    DecisionRow,
    HostVersionRow,
    KillSwitchRow,
    PlanRow,
    ReleaseRow,
    RolloutHostRow,
    RolloutRow,
    TenantPolicyRow,
)
from ringfence.domain.rollout import Artifact, Release, ReleaseId, ReleaseKind
from ringfence.errors import ConflictError

__all__ = [
    "DecisionRecord",
    "add_decision",
    "create_release",
    "create_rollout",
    "decisions",
    "expose_hosts",
    "get_plan_document",
    "get_release",
    "get_rollout_row",
    "kill_switch",
    "list_plans",
    "list_policies",
    "list_releases",
    "list_rollout_rows",
    "mark_rolled_back",
    "pinned_previous",
    "previous_release",
    "rollout_host_rows",
    "save_status",
    "set_kill_switch",
    "set_policy",
    "upsert_plan",
]




def _ins(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


# --- releases ---------------------------------------------------------------------------

def _release(r: Any) -> Release:
    return Release(id=ReleaseId(r.id), product=r.product, version=r.version, kind=ReleaseKind(r.kind),
                   platforms=tuple(r.platforms), created_at=utc(r.created_at), created_by=r.created_by,
                   artifacts=tuple(Artifact(name=a["name"], sha256=a["sha256"], size=int(a["size"]))
                                   for a in r.artifacts))


def create_release(conn: Connection, release: Release, now: datetime) -> Release:
    """Insert a release; ConflictError if that product version exists."""
    if conn.execute(select(ReleaseRow.id).where(ReleaseRow.id == release.id)).first() is not None:
        raise ConflictError(f"release {release.id} already exists; releases are immutable, use a new version")
    seq = int(conn.execute(select(func.coalesce(func.max(ReleaseRow.seq), 0))
                           .where(ReleaseRow.product == release.product)).scalar_one()) + 1
    conn.execute(insert(ReleaseRow).values(
        id=release.id, product=release.product, version=release.version, kind=release.kind.value,
        platforms=list(release.platforms), created_at=now, created_by=release.created_by, seq=seq,
        artifacts=[{"name": a.name, "sha256": a.sha256, "size": a.size} for a in release.artifacts]))
    return get_release(conn, release.id) or release


def get_release(conn: Connection, release_id: str) -> Release | None:
    """One release by id (``product@version``)."""
    row = conn.execute(select(ReleaseRow).where(ReleaseRow.id == release_id)).first()
    return _release(row) if row is not None else None


def list_releases(conn: Connection, product: str = "") -> list[Release]:
    """Releases, newest first."""
    stmt = select(ReleaseRow).order_by(ReleaseRow.product, ReleaseRow.seq.desc())
    if product:
        stmt = stmt.where(ReleaseRow.product == product)
    return [_release(r) for r in conn.execute(stmt)]


def pinned_previous(conn: Connection, product: str) -> Release | None:
    """What a host pinned to N-1 runs: the newest release older than the product's newest one that
    completed a rollout (a halted or rolled-back release is never N-1)."""
    newest: int | None = conn.execute(select(func.max(ReleaseRow.seq)).where(ReleaseRow.product == product)).scalar()
    if newest is None:
        return None
    row = conn.execute(
        select(ReleaseRow).join(RolloutRow, RolloutRow.release_id == ReleaseRow.id)
        .where(ReleaseRow.product == product, ReleaseRow.seq < newest, RolloutRow.state == "completed")
        .order_by(ReleaseRow.seq.desc()).limit(1)).first()
    return _release(row) if row is not None else None


def previous_release(conn: Connection, product: str, before: int = 1) -> Release | None:
    """The release ``before`` steps older than the newest of a product (1 = N-1)."""
    rows = conn.execute(select(ReleaseRow).where(ReleaseRow.product == product).order_by(ReleaseRow.seq.desc())
                        .offset(before).limit(1)).all()
    return _release(rows[0]) if rows else None


# --- plans and policies -------------------------------------------------------------------

def upsert_plan(conn: Connection, name: str, document: dict[str, Any], source: str, actor: str, now: datetime) -> int:
    """Create or replace a plan; return its new version."""
    stmt = _ins(conn)(PlanRow).values(name=name, document=document, source=source, updated_at=now, updated_by=actor,
                                      version=1)
    stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={
        "document": stmt.excluded.document, "source": stmt.excluded.source, "updated_at": stmt.excluded.updated_at,
        "updated_by": stmt.excluded.updated_by, "version": PlanRow.version + 1})
    conn.execute(stmt)
    return int(conn.execute(select(PlanRow.version).where(PlanRow.name == name)).scalar_one())


def get_plan_document(conn: Connection, name: str) -> tuple[dict[str, Any], str] | None:
    """(document, YAML source) of a stored plan."""
    row = conn.execute(select(PlanRow.document, PlanRow.source).where(PlanRow.name == name)).first()
    return (dict(row.document), row.source) if row is not None else None


def list_plans(conn: Connection) -> list[dict[str, Any]]:
    """Stored plans with who changed them last."""
    return [{"name": r.name, "version": r.version, "updated_at": utc(r.updated_at), "updated_by": r.updated_by}
            for r in conn.execute(select(PlanRow).order_by(PlanRow.name))]


def set_policy(conn: Connection, *, tenant: str, host_group: str, product: str, ring: str, delay_hours: float,
               pin: str, now: datetime) -> None:
    """Create or replace one tenant policy."""
    stmt = _ins(conn)(TenantPolicyRow).values(tenant=tenant, host_group=host_group, product=product, ring=ring,
                                              delay_hours=delay_hours, pin=pin, updated_at=now, version=1)
    stmt = stmt.on_conflict_do_update(index_elements=["tenant", "host_group", "product"], set_={
        "ring": stmt.excluded.ring, "delay_hours": stmt.excluded.delay_hours, "pin": stmt.excluded.pin,
        "updated_at": stmt.excluded.updated_at, "version": TenantPolicyRow.version + 1})
    conn.execute(stmt)


def list_policies(conn: Connection, tenant: str = "") -> list[dict[str, Any]]:
    """Every tenant policy."""
    stmt = select(TenantPolicyRow).order_by(TenantPolicyRow.tenant, TenantPolicyRow.host_group,
                                            TenantPolicyRow.product)
    if tenant:
        stmt = stmt.where(TenantPolicyRow.tenant == tenant)
    return [{"tenant": r.tenant, "host_group": r.host_group, "product": r.product, "ring": r.ring,
             "delay_hours": float(r.delay_hours), "pin": r.pin, "version": r.version} for r in conn.execute(stmt)]


# --- rollouts -----------------------------------------------------------------------------

def create_rollout(conn: Connection, *, rollout_id: str, release_id: str, product: str, plan: dict[str, Any],
                   salt: str, status: dict[str, Any], state: str, actor: str, now: datetime,
                   hosts: Sequence[tuple[str, int, int, str]]) -> None:
    """Insert a rollout and its targeted hosts ``(host_id, wave, bucket, stratum)``."""
    conn.execute(insert(RolloutRow).values(id=rollout_id, release_id=release_id, product=product, plan=plan,
                                           salt=salt, state=state, status=status, created_at=now, created_by=actor,
                                           version=1))
    bulk_insert(conn, RolloutHostRow.__table__, ("rollout_id", "host_id", "wave", "bucket", "stratum"),  # type: ignore[arg-type]
                [(rollout_id, h, w, b, s) for h, w, b, s in hosts])


def get_rollout_row(conn: Connection, rollout_id: str) -> Any:
    """The raw rollout row (spec pieces, status document, version)."""
    return conn.execute(select(RolloutRow).where(RolloutRow.id == rollout_id)).first()


def list_rollout_rows(conn: Connection, *, states: Iterable[str] | None = None, product: str = "") -> list[Any]:
    """Rollouts, newest first, optionally by state and product."""
    stmt = select(RolloutRow).order_by(RolloutRow.created_at.desc(), RolloutRow.id)
    if states is not None:
        stmt = stmt.where(RolloutRow.state.in_(list(states)))
    if product:
        stmt = stmt.where(RolloutRow.product == product)
    return list(conn.execute(stmt))


def save_status(conn: Connection, rollout_id: str, expected_version: int, state: str, status: dict[str, Any]) -> int:
    """Replace the status if nobody else did since it was read; return the new version."""
    return update_versioned(conn, RolloutRow.__table__, {"id": rollout_id}, expected_version,  # type: ignore[arg-type]
                            {"state": state, "status": status}, what=f"rollout {rollout_id}")


def rollout_host_rows(conn: Connection, rollout_id: str) -> list[Any]:
    """Every targeted host of a rollout with its wave, bucket, stratum and exposure, by host id."""
    return list(conn.execute(select(RolloutHostRow).where(RolloutHostRow.rollout_id == rollout_id)
                             .order_by(RolloutHostRow.host_id)))


def expose_hosts(conn: Connection, rollout_id: str, from_versions: Mapping[str, str], wave: int,
                 now: datetime) -> int:
    """Record that these hosts were offered the release, with the version each ran then (the way back).

    Only hosts not exposed before are changed; returns how many.
    """
    done = 0
    by_version: dict[str, list[str]] = {}
    for host, version in from_versions.items():
        by_version.setdefault(version, []).append(host)
    for version, hosts in sorted(by_version.items()):
        for part in chunks(sorted(hosts), 500):
            result = conn.execute(update(RolloutHostRow).where(
                RolloutHostRow.rollout_id == rollout_id, RolloutHostRow.host_id.in_(part),
                RolloutHostRow.exposed_at.is_(None)).values(exposed_at=now, exposed_wave=wave, from_version=version))
            done += result.rowcount
    return done


def mark_rolled_back(conn: Connection, rollout_id: str, now: datetime) -> int:
    """Set every exposed host's desired version back (rolled_back_at); return how many were newly marked."""
    result = conn.execute(update(RolloutHostRow).where(
        RolloutHostRow.rollout_id == rollout_id, RolloutHostRow.exposed_at.is_not(None),
        RolloutHostRow.rolled_back_at.is_(None)).values(rolled_back_at=now))
    return int(result.rowcount)


# --- decisions --------------------------------------------------------------------------

class DecisionRecord(dict[str, Any]):
    """One entry of the decision log (a dict for JSON)."""


def add_decision(conn: Connection, rollout_id: str, *, at: datetime, state: str, wave: int, actor: str, message: str,
                 reasons: list[dict[str, Any]], evidence: dict[str, Any]) -> int:
    """Append to a rollout's decision log; return its sequence number."""
    seq = int(conn.execute(select(func.coalesce(func.max(DecisionRow.seq), 0))
                           .where(DecisionRow.rollout_id == rollout_id)).scalar_one()) + 1
    conn.execute(insert(DecisionRow).values(rollout_id=rollout_id, seq=seq, at=at, state=state, wave=wave, actor=actor,
                                            message=message, reasons=reasons, evidence=evidence))
    return seq


def decisions(conn: Connection, rollout_id: str, *, limit: int = 1000) -> list[DecisionRecord]:
    """The decision log, oldest first."""
    rows = conn.execute(select(DecisionRow).where(DecisionRow.rollout_id == rollout_id)
                        .order_by(DecisionRow.seq).limit(limit))
    return [DecisionRecord(seq=r.seq, at=utc(r.at), state=r.state, wave=r.wave, actor=r.actor, message=r.message,
                           reasons=r.reasons, evidence=r.evidence) for r in rows]


# --- kill switches ------------------------------------------------------------------------

def set_kill_switch(conn: Connection, product: str, *, active: bool, actor: str, reason: str, now: datetime) -> None:
    """Engage or release a product's kill switch."""
    stmt = _ins(conn)(KillSwitchRow).values(product=product, active=active, actor=actor, reason=reason, at=now,
                                            version=1)
    stmt = stmt.on_conflict_do_update(index_elements=["product"], set_={
        "active": stmt.excluded.active, "actor": stmt.excluded.actor, "reason": stmt.excluded.reason,
        "at": stmt.excluded.at, "version": KillSwitchRow.version + 1})
    conn.execute(stmt)


def kill_switch(conn: Connection, product: str) -> dict[str, Any] | None:
    """The product's kill switch if engaged."""
    row = conn.execute(select(KillSwitchRow).where(and_(KillSwitchRow.product == product,
                                                        KillSwitchRow.active.is_(True)))).first()
    if row is None:
        return None
    return {"product": row.product, "actor": row.actor, "reason": row.reason, "at": utc(row.at)}


# --- what desired state reads -------------------------------------------------------------

def active_kill_switches(conn: Connection) -> dict[str, dict[str, Any]]:
    """``product → {actor, reason}`` for every engaged kill switch."""
    return {r.product: {"actor": r.actor, "reason": r.reason}
            for r in conn.execute(select(KillSwitchRow).where(KillSwitchRow.active.is_(True)))}


def reported_versions(conn: Connection, host_ids: Sequence[str] | None) -> dict[tuple[str, str], tuple[str, str]]:
    """``(host, product) → (version, last known good)`` as the hosts reported them (None: every host)."""
    cols = (HostVersionRow.host_id, HostVersionRow.product, HostVersionRow.version, HostVersionRow.last_known_good)
    if host_ids is None:
        rows: Iterable[Any] = conn.execute(select(*cols))
    else:
        rows = [r for part in chunks(sorted(set(host_ids)), 900)
                for r in conn.execute(select(*cols).where(HostVersionRow.host_id.in_(part)))]
    return {(r.host_id, r.product): (r.version, r.last_known_good) for r in rows}


def exposures(conn: Connection, host_ids: Sequence[str] | None) -> dict[tuple[str, str], tuple[str, bool, int | None]]:
    """``(rollout, host) → (from_version, rolled back, exposed wave)`` for every exposed host (None: all hosts)."""
    cols = (RolloutHostRow.rollout_id, RolloutHostRow.host_id, RolloutHostRow.from_version,
            RolloutHostRow.rolled_back_at, RolloutHostRow.exposed_wave)
    base = select(*cols).where(RolloutHostRow.exposed_at.is_not(None))
    if host_ids is None:
        rows: Iterable[Any] = conn.execute(base)
    else:
        rows = [r for part in chunks(sorted(set(host_ids)), 900)
                for r in conn.execute(base.where(RolloutHostRow.host_id.in_(part)))]
    return {(r.rollout_id, r.host_id): (r.from_version, r.rolled_back_at is not None, r.exposed_wave) for r in rows}


def rollout_heads(conn: Connection) -> list[tuple[str, str, str, str]]:
    """``(id, product, state, release id)`` of every rollout, newest first."""
    return [(r.id, r.product, r.state, r.release_id) for r in conn.execute(
        select(RolloutRow.id, RolloutRow.product, RolloutRow.state, RolloutRow.release_id)
        .order_by(RolloutRow.created_at.desc(), RolloutRow.id))]
