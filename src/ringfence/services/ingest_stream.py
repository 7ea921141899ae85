"""Writing health reports that arrive through the stream: the same ingest use case, exactly once per report.

A consumer hands each batch it pulled to :meth:`StreamIngest.handle`, which in **one** transaction

1. claims the batch's message ids (a message whose id was claimed before was already written: its ack
   was lost, or a consumer died between commit and ack, and JetStream delivered it again);
2. runs every fresh report through :meth:`HealthIngest.submit` (the same checks, rate limit, event
   rules and buffering as ``POST /v1/health`` over HTTP) and :meth:`HealthIngest.flush`, writing into
   that same transaction;

and returns only after the commit, so the consumer acks only what is stored.  A report the ingest
refuses (clock off, event for a rollout that does not target the host, too many reports) is counted and
dropped: the agent already had its 202 from the API server, which checked the credential.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import ingest as ingest_store
from ringfence.errors import RingfenceError
from ringfence.services.context import Clock
from ringfence.services.health import CLOCK_SKEW, MAX_REPORT_AGE, HealthIngest, HealthReport

__all__ = ["IngestCounts", "StreamIngest", "StreamedReport"]

log = logging.getLogger(__name__)


class StreamedReport(Protocol):
    """What a stream consumer delivers per message."""

    @property
    def msg_id(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def report(self) -> HealthReport: ...


@dataclass(slots=True)
class IngestCounts:
    """What the consumer did since it started."""

    written: int = 0
    duplicates: int = 0
    refused: int = 0
    batches: int = 0


class StreamIngest:
    """Writes batches of streamed reports through :class:`HealthIngest`, claiming message ids in the same commit."""

    def __init__(self, db: Database, clock: Clock, *, max_per_minute: int = 60) -> None:
        self.db = db
        self.clock = clock
        self.max_per_minute = max_per_minute
        self.ingest = self._new_ingest()
        self.counts = IngestCounts()
        self._lock = threading.Lock()
        self._pruned_at = clock()

    def _new_ingest(self) -> HealthIngest:
        # a buffer as large as any batch: the ingest writes only when this handler flushes it
        return HealthIngest(self.db, self.clock, max_per_minute=self.max_per_minute, max_buffer=1 << 30)

    def handle(self, batch: Sequence[StreamedReport]) -> None:
        """Write one batch in one transaction; raise (nothing committed) when the database refuses it."""
        with self._lock:
            try:
                self._handle(batch)
            except Exception:
                self.ingest = self._new_ingest()  # drop what the failed flush put back: the batch comes again
                raise

    def _handle(self, batch: Sequence[StreamedReport]) -> None:
        written = duplicates = refused = 0
        with self.db.transaction() as conn:
            fresh = ingest_store.claim_reports(conn, [(m.msg_id, m.report.at) for m in batch])

            @contextmanager
            def same_transaction() -> Iterator[Any]:
                yield conn

            self.ingest.transaction = same_transaction
            try:
                for m in batch:
                    if m.msg_id not in fresh:
                        duplicates += 1
                        continue
                    fresh.discard(m.msg_id)  # the same id twice in one batch: written once
                    try:
                        self.ingest.submit(m.host, m.report)
                        written += 1
                    except RingfenceError as e:
                        refused += 1
                        log.info("dropping a streamed report of host %s: %s", m.host, e)
                self.ingest.flush()
                now = self.clock()
                if (now - self._pruned_at).total_seconds() >= 60:
                    ingest_store.prune_reports(conn, now - MAX_REPORT_AGE - 2 * CLOCK_SKEW)
                    self._pruned_at = now
            finally:
                self.ingest.transaction = self.db.transaction
        self.counts.written += written
        self.counts.duplicates += duplicates
        self.counts.refused += refused
        self.counts.batches += 1
