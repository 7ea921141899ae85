"""Revocations of host credentials, which every server polls to refuse the host tokens issued before them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from ringfence.adapters.db.stores.base import utc
from ringfence.adapters.db.tables import HostRevocationRow

__all__ = ["prune_revocations", "record_revocation", "revocations_since"]


def record_revocation(conn: Connection, host_id: str, at: datetime) -> None:
    """Note that the host's credential was revoked or replaced at ``at``."""
    conn.execute(insert(HostRevocationRow).values(host_id=host_id, at=at))


def revocations_since(conn: Connection, since: datetime) -> list[tuple[str, datetime]]:
    """``(host, time)`` of every revocation after ``since``."""
    rows = conn.execute(select(HostRevocationRow.host_id, HostRevocationRow.at).where(HostRevocationRow.at > since))
    return [(r.host_id, utc(r.at)) for r in rows]  # type: ignore[misc]


def prune_revocations(conn: Connection, before: datetime) -> int:
    """Forget revocations older than ``before`` (every token issued before them has expired)."""
    return int(conn.execute(delete(HostRevocationRow).where(HostRevocationRow.at < before)).rowcount or 0)
