"""Message ids of the health reports stream consumers wrote, so a redelivered message is written once.

A consumer claims a batch's ids in the transaction that writes the batch: a message whose id is
already there was committed before (its ack was lost, or the consumer died between commit and ack)
and is skipped.  Rows older than the oldest report the ingest accepts are useless and pruned.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ringfence.adapters.db.stores.base import chunks
from ringfence.adapters.db.tables import IngestedReportRow

__all__ = ["claim_reports", "count_reports", "prune_reports"]


def claim_reports(conn: Connection, reports: Sequence[tuple[str, datetime]]) -> set[str]:
    """Record ``(message id, report time)`` pairs; return the ids that were not recorded before."""
    fresh: set[str] = set()
    unique = sorted(dict(reports).items())  # sorted: two consumers lock ids in the same order
    if conn.dialect.name == "postgresql":  # one statement over two arrays: no per-row SQL to build
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            cur.execute("INSERT INTO ingested_reports (id, at) SELECT * FROM unnest(%s::varchar[], %s::timestamptz[]) "
                        "ON CONFLICT (id) DO NOTHING RETURNING id", [[i for i, _ in unique], [at for _, at in unique]])
            fresh.update(str(r[0]) for r in cur.fetchall())
        return fresh
    for part in chunks(unique, 500):
        stmt = sqlite_insert(IngestedReportRow).values([{"id": i, "at": at} for i, at in part])
        fresh.update(conn.scalars(stmt.on_conflict_do_nothing(index_elements=["id"]).returning(IngestedReportRow.id)))
    return fresh


def prune_reports(conn: Connection, before: datetime) -> int:
    """Forget ids of reports older than ``before``; return how many."""
    return int(conn.execute(delete(IngestedReportRow).where(IngestedReportRow.at < before)).rowcount or 0)


def count_reports(conn: Connection) -> int:
    """How many ids are recorded (tests, metrics)."""
    return int(conn.scalar(select(func.count()).select_from(IngestedReportRow)) or 0)
