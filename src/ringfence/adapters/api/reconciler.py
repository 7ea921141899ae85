"""The server's reconciler loop: flush health reports, tick every active rollout, publish the channel, forever.

It runs in a background thread of ``ringfence serve``.  Several servers on one
PostgreSQL each run the loop, but only the one holding the reconciler's advisory
lock (:class:`ringfence.adapters.db.leader.Leadership`) ticks and publishes; the
others only write the health reports they buffered, and ask for the lock
again every pass (at most every 2 s), so a killed leader is replaced within
seconds.  Each tick of each rollout is also its own transaction with an
optimistic version check (see :func:`ringfence.services.rollouts.tick`), so a
server killed at any point resumes where the last committed tick left off,
and no decision is applied twice.

After the ticks, the channel publisher (when the channel has keys) signs the
cohorts whose desired state changed and refreshes metadata close to expiry.
Operator commands (halt, rollback, kill switch, pause …) :meth:`Reconciler.wake`
the loop so their effect is published within a second, not at the next interval.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.leader import Leadership
from ringfence.services import rollouts
from ringfence.services.channel import ChannelPublisher
from ringfence.services.context import Clock
from ringfence.services.health import HealthIngest
from ringfence.services.notify import LogNotifier, Notifier

__all__ = ["Reconciler"]

log = logging.getLogger("ringfence.reconciler")

_STANDBY_SECONDS = 2.0  # how often a standby asks for the lock (and writes its buffered health reports)
#: How long a report may wait in another server's buffer before it is written (its standby flush, plus a margin).
SETTLE = timedelta(seconds=_STANDBY_SECONDS + 1.0)


class Reconciler:
    """A stoppable background loop."""

    def __init__(self, db: Database, ingest: HealthIngest, clock: Clock, interval: float,
                 publisher: ChannelPublisher | None = None, notifier: Notifier | None = None,
                 leadership: Leadership | None = None, inventory: rollouts.InventoryCache | None = None) -> None:
        self.db = db
        self.leadership = leadership or Leadership(db)
        self.ingest = ingest
        self.clock = clock
        self.interval = interval
        self.publisher = publisher
        self.notifier: Notifier = notifier if notifier is not None else LogNotifier()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        #: The application context's inventory cache (shared with the channel publisher), or its own.
        self.cache = inventory if inventory is not None else rollouts.InventoryCache()

    def run_once(self) -> dict[str, str]:
        """Flush health, tick every active rollout, publish the channel; return rollout → state."""
        try:
            self.ingest.flush()
        except Exception:  # a failing flush must not stop halts and rollbacks: tick anyway
            log.exception("writing buffered health reports failed; ticking rollouts anyway")
        through = self.ingest.complete_through
        try:
            # Reports other servers buffered are written within their flush period (a standby flushes every
            # _STANDBY_SECONDS): the gate counts up to what every server has written (services/rollouts.tick).
            result = rollouts.tick_all(self.db, clock=self.clock, cache=self.cache, notifier=self.notifier,
                                       complete_through=None if through is None else through - SETTLE)
        finally:
            # publish even when a tick failed: operator commands already committed must reach agents
            if self.publisher is not None:
                try:
                    self.publisher.publish()
                except Exception:
                    log.exception("publishing the channel failed; the previous metadata stays served")
        self.ticks += 1
        return result

    def wake(self) -> None:
        """Run the next pass now (after an operator command changed desired state)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            leading = False
            try:
                leading = self.leadership.try_lead()
                if leading:
                    self.run_once()
                else:
                    self.ingest.flush()
            except Exception:  # a failing tick is logged and retried; it must not kill the loop
                log.exception("reconciler pass failed; retrying in %.1f s", self.interval)
            self._wake.wait(self.interval if leading else min(self.interval, _STANDBY_SECONDS))

    def start(self) -> None:
        """Start the loop in a daemon thread."""
        if self.interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="ringfence-reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and flush what is buffered."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.leadership.release()
        self.ingest.flush()
