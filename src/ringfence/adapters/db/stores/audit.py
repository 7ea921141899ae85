"""The append-only, hash-chained audit log.

:func:`append` runs inside the caller's transaction, so an action and its
audit entry commit together or not at all.  It locks the single
``audit_head`` row first (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite
transactions are already serialised by ``BEGIN IMMEDIATE``), so concurrent
writers get consecutive sequence numbers and a straight chain.

With an audit key on the :class:`~ringfence.adapters.db.engine.Database` whose
transaction is appended to (``Database.audit_key``, set by the server and the
local CLI from their settings; read here with :func:`key_for`), entries are keyed
(HMAC-SHA256): the first append under a key writes the switch-over entry
(:data:`~ringfence.domain.audit.KEYED_ACTION`) and records where the keyed chain
starts and the key's fingerprint in the head row.  From then on an append
without the key, or with another key, is refused (503) rather than breaking
the chain.  The key itself is never stored.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ringfence.adapters.db.engine import audit_key_of
from ringfence.adapters.db.tables import AuditHeadRow, AuditRow
from ringfence.domain.audit import KEYED_ACTION, AuditEntry, entry_digest, key_id
from ringfence.errors import UnavailableError

__all__ = ["append", "find_hash", "head", "iter_entries", "key_for", "keyed_from", "list_entries"]


def key_for(conn: Connection) -> bytes | None:
    """The audit key entries appended in this transaction are keyed with (its database's ``audit_key``)."""
    return audit_key_of(conn)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def append(conn: Connection, *, at: datetime, actor: str, action: str, target: str, source: str = "",
           reason: str = "", details: Mapping[str, Any] | None = None) -> AuditEntry:
    """Append one entry linked to the current head (keyed when a key is configured); return it."""
    current = conn.execute(select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update()).one()
    key = key_for(conn)
    seq, prev = int(current.seq), str(current.hash)
    if current.keyed_from is not None:
        if key is None:
            raise UnavailableError(f"the audit chain is keyed (key {current.key_id}) and this process has no audit "
                                   "key; set RINGFENCE_AUDIT_KEY or audit_key_file to the server's key")
        if key_id(key) != current.key_id:
            raise UnavailableError(f"this process's audit key ({key_id(key)}) is not the one the chain is keyed with "
                                   f"({current.key_id}); every server and CLI must use the same audit key")
    elif key is not None:  # the first keyed append: the switch-over entry, then the action
        switch = _write(conn, AuditEntry(seq=seq + 1, at=_utc(at), actor="ringfence", action=KEYED_ACTION,
                                         target="audit", details={"algorithm": "hmac-sha256", "key_id": key_id(key),
                                                                  "unkeyed_entries": seq}, prev_hash=prev), key)
        seq, prev = switch.seq, switch.hash
        conn.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1).values(keyed_from=switch.seq,
                                                                             key_id=key_id(key)))
    entry = _write(conn, AuditEntry(seq=seq + 1, at=_utc(at), actor=actor, action=action, target=target,
                                    source=source, reason=reason, details=dict(details or {}), prev_hash=prev), key)
    conn.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1).values(seq=entry.seq, hash=entry.hash))
    return entry


def _write(conn: Connection, entry: AuditEntry, key: bytes | None) -> AuditEntry:
    digest = entry_digest(entry, key)
    conn.execute(insert(AuditRow).values(seq=entry.seq, at=entry.at, actor=entry.actor, action=entry.action,
                                         target=entry.target, source=entry.source, reason=entry.reason,
                                         details=dict(entry.details), prev_hash=entry.prev_hash, hash=digest))
    return AuditEntry(seq=entry.seq, at=entry.at, actor=entry.actor, action=entry.action, target=entry.target,
                      source=entry.source, reason=entry.reason, details=entry.details, prev_hash=entry.prev_hash,
                      hash=digest)


def keyed_from(conn: Connection) -> tuple[int | None, str | None]:
    """Where the head row says the keyed chain starts, and its key's fingerprint (not trusted by verification)."""
    row = conn.execute(select(AuditHeadRow.keyed_from, AuditHeadRow.key_id).where(AuditHeadRow.id == 1)).one()
    return (int(row.keyed_from) if row.keyed_from is not None else None), row.key_id


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
