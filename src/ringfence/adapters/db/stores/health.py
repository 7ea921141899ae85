"""Host heartbeats, reported versions, per-rollout events and per-host credentials."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ringfence.adapters.db.stores.base import chunks, utc
from ringfence.adapters.db.tables import (
    HostCredentialRow,
    HostEventRow,
    HostHealthRow,
    HostVersionRow,
    RolloutHostRow,
    RolloutRow,
)

__all__ = [
    "credential_host",
    "events_for",
    "first_event_times",
    "first_heartbeats",
    "heartbeats",
    "record_events",
    "record_heartbeats",
    "record_versions",
    "rollouts_targeting",
    "set_credential",
    "versions_of",
]


def _ins(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert




def set_credential(conn: Connection, host_id: str, token_hash: str, now: datetime) -> None:
    """Create or replace a host's credential (hash only)."""
    stmt = _ins(conn)(HostCredentialRow).values(host_id=host_id, token_hash=token_hash, created_at=now)
    stmt = stmt.on_conflict_do_update(index_elements=["host_id"], set_={
        "token_hash": stmt.excluded.token_hash, "created_at": stmt.excluded.created_at, "revoked_at": None})
    conn.execute(stmt)


def credential_host(conn: Connection, token_hash: str) -> str | None:
    """The host a credential belongs to (None if unknown or revoked)."""
    row = conn.execute(select(HostCredentialRow.host_id).where(HostCredentialRow.token_hash == token_hash,
                                                               HostCredentialRow.revoked_at.is_(None))).first()
    return str(row.host_id) if row is not None else None


def record_heartbeats(conn: Connection, beats: Mapping[str, tuple[datetime, int]]) -> None:
    """Upsert the latest heartbeat per host (``host -> (time, reports since last flush)``), sorted to avoid deadlocks."""
    if not beats:
        return
    stmt = _ins(conn)(HostHealthRow)
    stmt = stmt.on_conflict_do_update(index_elements=["host_id"], set_={
        "last_heartbeat": stmt.excluded.last_heartbeat, "reports": HostHealthRow.reports + stmt.excluded.reports})
    rows = [{"host_id": h, "last_heartbeat": at, "first_heartbeat": at, "reports": n}
            for h, (at, n) in sorted(beats.items())]
    for part in chunks(rows, 1000):
        conn.execute(stmt, list(part))


def first_heartbeats(conn: Connection, host_ids: Iterable[str]) -> dict[str, datetime]:
    """When each host first reported (hosts that never did are absent)."""
    out: dict[str, datetime] = {}
    for part in chunks(sorted(set(host_ids)), 900):
        for r in conn.execute(select(HostHealthRow.host_id, HostHealthRow.first_heartbeat)
                              .where(HostHealthRow.host_id.in_(part))):
            out[r.host_id] = utc(r.first_heartbeat)  # type: ignore[assignment]
    return out


def heartbeats(conn: Connection, host_ids: Iterable[str] | None = None) -> dict[str, datetime]:
    """Last heartbeat per host (all hosts when ``host_ids`` is None)."""
    out: dict[str, datetime] = {}
    if host_ids is None:
        for r in conn.execute(select(HostHealthRow.host_id, HostHealthRow.last_heartbeat)):
            out[r.host_id] = utc(r.last_heartbeat)  # type: ignore[assignment]
        return out
    for part in chunks(sorted(set(host_ids)), 900):
        for r in conn.execute(select(HostHealthRow.host_id, HostHealthRow.last_heartbeat)
                              .where(HostHealthRow.host_id.in_(part))):
            out[r.host_id] = utc(r.last_heartbeat)  # type: ignore[assignment]
    return out


def record_versions(conn: Connection, host_id: str, versions: Mapping[str, str], committed: Iterable[str],
                    now: datetime) -> None:
    """Store what a host runs; a product in ``committed`` makes its version the last known good."""
    good = set(committed)
    for product, version in sorted(versions.items()):
        existing = conn.execute(select(HostVersionRow).where(HostVersionRow.host_id == host_id,
                                                             HostVersionRow.product == product)).first()
        if existing is None:
            conn.execute(insert(HostVersionRow).values(host_id=host_id, product=product, version=version,
                                                       last_known_good=version, updated_at=now))
        else:
            lkg = version if product in good else existing.last_known_good
            conn.execute(update(HostVersionRow).where(HostVersionRow.host_id == host_id,
                                                      HostVersionRow.product == product)
                         .values(version=version, last_known_good=lkg, updated_at=now))


def versions_of(conn: Connection, host_ids: Sequence[str], product: str) -> dict[str, tuple[str, str]]:
    """``host -> (version, last known good)`` for one product."""
    out: dict[str, tuple[str, str]] = {}
    for part in chunks(sorted(set(host_ids)), 900):
        for r in conn.execute(select(HostVersionRow).where(HostVersionRow.product == product,
                                                           HostVersionRow.host_id.in_(part))):
            out[r.host_id] = (r.version, r.last_known_good)
    return out


def rollouts_targeting(conn: Connection, host_id: str, rollout_ids: Iterable[str]) -> dict[str, datetime]:
    """Of ``rollout_ids``, those that target ``host_id``, each with when the rollout was created."""
    wanted = sorted(set(rollout_ids))
    if not wanted:
        return {}
    rows = conn.execute(select(RolloutRow.id, RolloutRow.created_at).join(
        RolloutHostRow, RolloutHostRow.rollout_id == RolloutRow.id).where(
        RolloutHostRow.host_id == host_id, RolloutRow.id.in_(wanted)))
    return {str(r.id): utc(r.created_at) for r in rows}  # type: ignore[misc]


def record_events(conn: Connection, events: Sequence[tuple[str, str, str, datetime]]) -> None:
    """Upsert ``(host, rollout, kind, at)``: one row per host, rollout and kind; repeats only bump a counter."""
    if not events:
        return
    stmt = _ins(conn)(HostEventRow)
    stmt = stmt.on_conflict_do_update(index_elements=["host_id", "rollout_id", "kind"], set_={
        "last_at": case((stmt.excluded.last_at > HostEventRow.last_at, stmt.excluded.last_at),
                        else_=HostEventRow.last_at),
        "count": HostEventRow.count + 1})
    rows = [{"host_id": h, "rollout_id": r, "kind": k, "first_at": at, "last_at": at, "count": 1}
            for h, r, k, at in sorted(events)]
    for row in rows:  # one by one: several events of one key in a batch must each count
        conn.execute(stmt, row)


def events_for(conn: Connection, rollout_ids: Sequence[str], since: datetime) -> dict[str, set[str]]:
    """``kind -> hosts`` with at least one event under these rollouts ("" = not tied to a rollout) since ``since``."""
    out: dict[str, set[str]] = {}
    rows = conn.execute(select(HostEventRow.host_id, HostEventRow.kind).where(
        HostEventRow.rollout_id.in_(list(rollout_ids)), HostEventRow.last_at >= since))
    for r in rows:
        out.setdefault(r.kind, set()).add(r.host_id)
    return out


def first_event_times(conn: Connection, rollout_ids: Sequence[str], since: datetime) -> dict[str, dict[str, datetime]]:
    """``kind -> host -> first time`` of events under these rollouts with their latest at or after ``since``."""
    out: dict[str, dict[str, datetime]] = {}
    rows = conn.execute(select(HostEventRow.host_id, HostEventRow.kind, HostEventRow.first_at).where(
        HostEventRow.rollout_id.in_(list(rollout_ids)), HostEventRow.last_at >= since))
    for r in rows:
        at = utc(r.first_at)
        assert at is not None
        slot = out.setdefault(r.kind, {})
        slot[r.host_id] = min(at, slot.get(r.host_id, at))
    return out
