"""Leader election for the reconciler: a PostgreSQL session-level advisory lock.

Several ``ringfence serve`` processes on one PostgreSQL each hold one extra
connection and call :meth:`Leadership.try_lead` before every reconciler pass.
``pg_try_advisory_lock`` succeeds for exactly one session at a time; the lock
lives as long as that session, so when the leader dies (kill -9, a crashed
machine once TCP notices) PostgreSQL ends its session and frees the lock, and
the next standby to ask becomes the leader.  A leader re-checks its session
before each pass and steps down when the connection is gone.

Leadership only decides who *runs* the loop; it is not what keeps decisions
single.  Every tick is one transaction with an optimistic version check
(``services.rollouts.tick``), so even two processes that both believe they
lead (a leader frozen past its session's end, then resumed) cannot both
commit the same promotion: the second one's version check fails.

SQLite has no other process to elect against: one process serves it, and
:meth:`Leadership.try_lead` is always true there (when it competes).
"""

from __future__ import annotations

import contextlib
import logging
import os

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from ringfence.adapters.db.engine import Database

__all__ = ["RECONCILER_LOCK", "Leadership"]

log = logging.getLogger("ringfence.leader")

# The lock is (this key, a hash of the schema): servers of one schema compete, other schemas on the same
# database (parallel test sessions, several installs) do not.
RECONCILER_LOCK = 0x52464E43  # "RFNC"
_KEY = ":k, hashtext(current_schema())"


class Leadership:
    """This process's claim on one advisory lock; ``compete=False`` never leads (roles api, ingest)."""

    def __init__(self, db: Database, *, key: int = RECONCILER_LOCK, compete: bool = True) -> None:
        self.db = db
        self.key = key
        self.compete = compete
        self._conn: Connection | None = None
        self._held = False

    @property
    def held(self) -> bool:
        """Whether this process led at its last :meth:`try_lead`."""
        return self._held

    def try_lead(self) -> bool:
        """Lead if the lock is free or already ours and our session is alive; never blocks."""
        if not self.compete:
            return False
        if self.db.is_sqlite:
            self._held = True
            return True
        try:
            if self._conn is None:
                self._conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                self._conn.execute(text("SELECT set_config('application_name', :n, false)"),
                                   {"n": f"ringfence-serve-{os.getpid()}"})
            if self._held:
                self._conn.execute(text("SELECT 1"))  # the session, and so the lock, is still there
            else:
                self._held = bool(self._conn.execute(text(f"SELECT pg_try_advisory_lock({_KEY})"),
                                                     {"k": self.key}).scalar_one())
                if self._held:
                    log.warning("this process (pid %d) now leads the reconciler", os.getpid())
        except DBAPIError:
            if self._held:
                log.warning("lost the reconciler lock's database session; standing by")
            self._drop()
        return self._held

    def release(self) -> None:
        """Give the lock up (shutdown), so a standby takes over at once instead of at its next try."""
        if self._conn is not None and self._held:
            with contextlib.suppress(DBAPIError):
                self._conn.execute(text(f"SELECT pg_advisory_unlock({_KEY})"), {"k": self.key})
        self._drop()

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            with contextlib.suppress(DBAPIError):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None
