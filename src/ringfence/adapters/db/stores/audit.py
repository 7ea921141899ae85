"""The append-only, hash-chained audit log.

:func:`append` runs inside the caller's transaction, so an action and its
audit entry commit together or not at all.  It locks the single
``audit_head`` row first (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite
transactions are already serialised by ``BEGIN IMMEDIATE``), so concurrent
writers get consecutive sequence numbers and a straight chain.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ringfence.adapters.db.tables import AuditHeadRow, AuditRow
from ringfence.domain.audit import AuditEntry, entry_digest

__all__ = ["append", "find_hash", "head", "iter_entries", "list_entries"]


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def append(conn: Connection, *, at: datetime, actor: str, action: str, target: str, source: str = "",
           reason: str = "", details: Mapping[str, Any] | None = None) -> AuditEntry:
    """Append one entry linked to the current head; return it."""
    current = conn.execute(select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == 1)
                           .with_for_update()).one()
    entry = AuditEntry(seq=current.seq + 1, at=_utc(at), actor=actor, action=action, target=target,
                       source=source, reason=reason, details=dict(details or {}), prev_hash=current.hash)
    digest = entry_digest(entry)
    conn.execute(insert(AuditRow).values(seq=entry.seq, at=entry.at, actor=actor, action=action, target=target,
                                         source=source, reason=reason, details=dict(entry.details),
                                         prev_hash=entry.prev_hash, hash=digest))
    conn.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1).values(seq=entry.seq, hash=digest))
    return AuditEntry(seq=entry.seq, at=entry.at, actor=actor, action=action, target=target, source=source,
                      reason=reason, details=entry.details, prev_hash=entry.prev_hash, hash=digest)


def _entry(r: Any) -> AuditEntry:
    return AuditEntry(seq=int(r.seq), at=_utc(r.at), actor=r.actor, action=r.action, target=r.target,
                      source=r.source, reason=r.reason, details=r.details or {}, prev_hash=r.prev_hash, hash=r.hash)


def iter_entries(conn: Connection, *, batch: int = 5000) -> Iterator[AuditEntry]:
    """Every entry in sequence order, read in batches."""
    last = 0
    while True:
        rows = conn.execute(select(AuditRow).where(AuditRow.seq > last).order_by(AuditRow.seq).limit(batch)).all()
        if not rows:
            return
        for r in rows:
            yield _entry(r)
        last = int(rows[-1].seq)


def list_entries(conn: Connection, *, limit: int = 50, before: int | None = None, action: str = "",
                 actor: str = "") -> list[AuditEntry]:
    """The newest entries first, optionally before a sequence number and filtered."""
    stmt = select(AuditRow).order_by(AuditRow.seq.desc()).limit(limit)
    if before is not None:
        stmt = stmt.where(AuditRow.seq < before)
    if action:
        stmt = stmt.where(AuditRow.action == action)
    if actor:
        stmt = stmt.where(AuditRow.actor == actor)
    return [_entry(r) for r in conn.execute(stmt)]


def head(conn: Connection) -> tuple[int, str]:
    """(sequence, hash) of the last entry as the log recorded it."""
    row = conn.execute(select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == 1)).one()
    return int(row.seq), str(row.hash)


def find_hash(conn: Connection, digest: str) -> int | None:
    """The sequence number of the entry whose hash is ``digest``."""
    seq = conn.execute(select(AuditRow.seq).where(AuditRow.hash == digest).limit(1)).scalar_one_or_none()
    return int(seq) if seq is not None else None
