"""Revocations of host credentials, which every server reads to refuse the host tokens issued before them.

On PostgreSQL a revocation is also pushed: :func:`record_revocation` sends a ``NOTIFY`` on
:data:`REVOCATION_CHANNEL` in the revoking transaction (PostgreSQL delivers it at commit, and never if the
transaction rolls back), and :func:`listen_revocations` waits for them on a connection of its own, so every
server learns of a revocation at once instead of at its next poll.  The poll stays as the fallback (a
listener that lost its connection, SQLite).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import psycopg
from sqlalchemy import Connection, delete, func, insert, select

from ringfence.adapters.db.stores.base import utc
from ringfence.adapters.db.tables import HostRevocationRow

if TYPE_CHECKING:
    from ringfence.adapters.db.engine import Database

__all__ = ["REVOCATION_CHANNEL", "listen_revocations", "prune_revocations", "record_revocation",
           "revocations_since"]

log = logging.getLogger(__name__)

#: The PostgreSQL notification channel of revocations; the payload is the host id.
REVOCATION_CHANNEL = "ringfence_host_revocations"


def record_revocation(conn: Connection, host_id: str, at: datetime) -> None:
    """Note that the host's credential was revoked or replaced at ``at`` (and, on PostgreSQL, notify listeners)."""
    conn.execute(insert(HostRevocationRow).values(host_id=host_id, at=at))
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_notify(REVOCATION_CHANNEL, host_id)))


def listen_revocations(db: Database, on_revocation: Callable[[str], None], stop: threading.Event,
                       listening: threading.Event, *, wake_seconds: float = 0.5) -> None:
    """Call ``on_revocation(host_id)`` for every revocation committed anywhere, until ``stop`` is set (PostgreSQL).

    Runs in the caller's thread on a connection of its own (outside the pool, autocommit, ``LISTEN``); ``listening``
    is set while it listens.  A lost connection is logged and opened again after a second; revocations committed
    meanwhile reach the caller through its poll, which this does not replace.
    """
    args, kwargs = db.engine.dialect.create_connect_args(db.engine.url)
    while not stop.is_set():
        try:
            with psycopg.connect(*args, **{**kwargs, "autocommit": True}) as conn:
                conn.execute(f"LISTEN {REVOCATION_CHANNEL}")
                listening.set()
                while not stop.is_set():
                    for note in conn.notifies(timeout=wake_seconds):
                        on_revocation(note.payload)
        except Exception:
            log.warning("listening for host token revocations failed; polling meanwhile", exc_info=True)
        finally:
            listening.clear()
        stop.wait(1.0)


def revocations_since(conn: Connection, since: datetime) -> list[tuple[str, datetime]]:
    """``(host, time)`` of every revocation after ``since``."""
    rows = conn.execute(select(HostRevocationRow.host_id, HostRevocationRow.at).where(HostRevocationRow.at > since))
    return [(r.host_id, utc(r.at)) for r in rows]  # type: ignore[misc]


def prune_revocations(conn: Connection, before: datetime) -> int:
    """Forget revocations older than ``before`` (every token issued before them has expired)."""
    return int(conn.execute(delete(HostRevocationRow).where(HostRevocationRow.at < before)).rowcount or 0)
