"""Key-escrow records: host, key id, escrow location, verified flag (never the recovery key itself)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from ringfence.adapters.db.stores.base import chunks
from ringfence.adapters.db.tables import KeyEscrowRow
from ringfence.domain.assessment_model import KeyEscrow

__all__ = ["all_records", "replace_records"]


def replace_records(conn: Connection, records: Sequence[KeyEscrow], now: datetime) -> int:
    """Replace the escrow records of every host named in ``records``; return how many were written."""
    hosts = sorted({r.host_id for r in records})
    for part in chunks(hosts, 900):
        conn.execute(delete(KeyEscrowRow).where(KeyEscrowRow.host_id.in_(part)))
    rows = [{"host_id": r.host_id, "key_id": r.key_id, "location": r.location, "verified": r.verified,
             "updated_at": now} for r in records]
    for part in chunks(rows, 1000):
        conn.execute(insert(KeyEscrowRow), list(part))
    return len(rows)


def all_records(conn: Connection) -> dict[str, KeyEscrow]:
    """One record per host: a verified key wins over an unverified one."""
    out: dict[str, KeyEscrow] = {}
    for r in conn.execute(select(KeyEscrowRow).order_by(KeyEscrowRow.host_id, KeyEscrowRow.key_id)):
        rec = KeyEscrow(host_id=r.host_id, key_id=r.key_id, location=r.location, verified=bool(r.verified))
        if r.host_id not in out or (rec.verified and not out[r.host_id].verified):
            out[r.host_id] = rec
    return out
