"""Notification rules per tenant and the delivery outbox / log (one row per notification and target)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from ringfence.adapters.db.stores.base import utc
from ringfence.adapters.db.tables import HostRow, NotifyDeliveryRow, NotifyRulesRow, PlanRow, RolloutHostRow, RolloutRow

__all__ = ["add_deliveries", "all_rules", "due_deliveries", "list_deliveries", "next_due", "plan_rules", "put_rules",
           "record_attempt", "rollout_scopes", "told"]


def put_rules(conn: Connection, tenant: str, document: Mapping[str, Any], *, now: datetime, actor: str) -> int:
    """Replace a tenant's rules; return the new version."""
    row = conn.execute(select(NotifyRulesRow.version).where(NotifyRulesRow.tenant == tenant)).first()
    if row is None:
        conn.execute(insert(NotifyRulesRow).values(tenant=tenant, document=dict(document), updated_at=now,
                                                   updated_by=actor, version=1))
        return 1
    version = int(row.version) + 1
    conn.execute(update(NotifyRulesRow).where(NotifyRulesRow.tenant == tenant)
                 .values(document=dict(document), updated_at=now, updated_by=actor, version=version))
    return version


def all_rules(conn: Connection) -> list[Any]:
    """Every tenant's stored rules (rows with tenant, document, version, updated_at, updated_by)."""
    return list(conn.execute(select(NotifyRulesRow).order_by(NotifyRulesRow.tenant)))


def add_deliveries(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Queue deliveries (state pending, due now)."""
    if rows:
        conn.execute(insert(NotifyDeliveryRow), [dict(r) for r in rows])


def due_deliveries(conn: Connection, now: datetime, limit: int = 50) -> list[Any]:
    """Pending deliveries whose next attempt is due, oldest first."""
    return list(conn.execute(select(NotifyDeliveryRow).where(NotifyDeliveryRow.state == "pending",
                                                            NotifyDeliveryRow.next_attempt_at <= now)
                             .order_by(NotifyDeliveryRow.next_attempt_at, NotifyDeliveryRow.id).limit(limit)))


def record_attempt(conn: Connection, delivery_id: int, *, state: str, attempts: int, next_attempt_at: datetime,
                   delivered_at: datetime | None, error: str) -> None:
    """Write the outcome of one attempt."""
    conn.execute(update(NotifyDeliveryRow).where(NotifyDeliveryRow.id == delivery_id)
                 .values(state=state, attempts=attempts, next_attempt_at=next_attempt_at, delivered_at=delivered_at,
                         last_error=error[:2000], version=NotifyDeliveryRow.version + 1))


def list_deliveries(conn: Connection, *, limit: int = 100, state: str = "") -> list[Any]:
    """The delivery log, newest first."""
    stmt = select(NotifyDeliveryRow)
    if state:
        stmt = stmt.where(NotifyDeliveryRow.state == state)
    return list(conn.execute(stmt.order_by(NotifyDeliveryRow.id.desc()).limit(limit)))


def next_due(conn: Connection) -> datetime | None:
    """When the earliest pending delivery is due (None when nothing is pending)."""
    return utc(conn.scalar(select(func.min(NotifyDeliveryRow.next_attempt_at))
                           .where(NotifyDeliveryRow.state == "pending")))


def plan_rules(conn: Connection) -> dict[str, tuple[Any, int]]:
    """The ``notify:`` section and version of every stored plan that has one, by plan name."""
    out: dict[str, tuple[Any, int]] = {}
    for name, document, version in conn.execute(select(PlanRow.name, PlanRow.document, PlanRow.version)
                                                 .order_by(PlanRow.name)):
        if isinstance(document, Mapping) and document.get("notify"):
            out[str(name)] = (document["notify"], int(version))
    return out


def rollout_scopes(conn: Connection, rollout_ids: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Who a notification about these rollouts concerns: the tenants owning their targeted hosts (sorted),
    and each rollout's plan name."""
    if not rollout_ids:
        return [], {}
    ids = list(dict.fromkeys(rollout_ids))
    tenants = conn.scalars(select(HostRow.tenant).distinct()
                           .join(RolloutHostRow, RolloutHostRow.host_id == HostRow.id)
                           .where(RolloutHostRow.rollout_id.in_(ids)).order_by(HostRow.tenant))
    plans = {str(rid): str((plan or {}).get("name", "")) for rid, plan in
             conn.execute(select(RolloutRow.id, RolloutRow.plan).where(RolloutRow.id.in_(ids)))}
    return [str(t) for t in tenants], plans


def told(conn: Connection, event: str, subject: str, title: str) -> bool:
    """Whether a delivery of this event, subject and title was ever queued (for notifications told once)."""
    return conn.execute(select(NotifyDeliveryRow.id).where(
        NotifyDeliveryRow.event == event, NotifyDeliveryRow.subject == subject,
        NotifyDeliveryRow.title == title).limit(1)).first() is not None
