"""Health ingestion: heartbeats and events from agents, authenticated per host, buffered and written in batches.

* One host cannot report for another: the credential names the host.
* Events are stored once per host, rollout and kind (later repeats only bump a
  counter), so a flapping host counts as one failing host, never as many.
* A host sending more than ``max_per_minute`` reports gets 429 until its
  budget refills; the reports it did send are kept.
* Events are accepted only for rollouts that target the reporting host, and
  only with times a real agent can have: not before the rollout was created
  (less :data:`CLOCK_SKEW`) and not after now (plus the skew); a report's own
  time lies within :data:`CLOCK_SKEW` ahead and :data:`MAX_REPORT_AGE` behind.
  Anything else is refused whole (422 naming the field), nothing recorded.
* Heartbeats and reported versions wait in memory and are written in one
  transaction by :meth:`flush` (the reconciler flushes before every tick, and
  a full buffer flushes itself), so ten thousand agents polling cost a few
  writes, not ten thousand; a lost buffer is replaced by the next heartbeats.
  Events (crashed, auto-reverted, …) are rare and sent once, so they are
  written before the report is acknowledged.
* Gate v2's presence (:mod:`ringfence.domain.presence`) rides on the same
  buffer: each report's *arrival* is folded in as it comes (a report may be a
  going-away notice, ``away``), and the flush writes each host's arrival,
  notice and crash times, its recent absences and its per-day record with one
  read of the buffered hosts' presence and two writes, whatever the number
  of reports.  Days past :data:`LOOKBACK_DAYS` are pruned (at most hourly).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.adapters.db.stores import health as health_store
from ringfence.adapters.db.stores import inventory as inventory_store
from ringfence.adapters.db.stores.host_tokens import record_revocation as store_revocation
from ringfence.domain.access import Role
from ringfence.domain.presence import AWAY_KEEP, LOOKBACK_DAYS, NOTICE_REASONS, Arrival, DayCounts, Presence, fold
from ringfence.errors import AuthenticationError, InputError, NotFoundError, PermissionDeniedError, RingfenceError, shown
from ringfence.services.context import Actor, Clock

__all__ = ["CLOCK_SKEW", "EVENT_KINDS", "HOST_TOKEN_PREFIX", "LOOKBACK_DAYS", "MAX_REPORT_AGE", "HealthIngest",
           "HealthReport", "TooManyReports", "issue_credential"]

HOST_TOKEN_PREFIX = "rfh_"  # noqa: S105 - a recognisable prefix, not a secret
EVENT_KINDS = ("crashed", "auto_reverted", "install_failed", "applied", "committed")
#: How far an agent's clock may be off the server's.
CLOCK_SKEW = timedelta(minutes=5)
#: How old an event not tied to a rollout may be (an agent keeps events on disk while the server is down).
UNTIED_EVENT_AGE = timedelta(days=7)
#: The oldest a heartbeat's own time may be (reports are sent live; queued events carry their own times).
MAX_REPORT_AGE = timedelta(hours=1)


class TooManyReports(RingfenceError):
    """The host exceeded its report rate."""

    status = 429
    title = "Too many requests"


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One report from an agent."""

    host_id: str
    at: datetime
    versions: dict[str, str] = field(default_factory=dict)
    committed: tuple[str, ...] = ()
    events: tuple[tuple[str, str, datetime], ...] = ()  # (kind, rollout id or "", when)
    away: str = ""  # a going-away notice: one of presence.NOTICE_REASONS ("" = an ordinary report)


@dataclass(slots=True)
class _Pending:
    """A host's buffered reports: the latest report time, how many, the first arrival of the batch (its gap
    since the stored presence is only known at the flush) and everything after it folded in."""

    at: datetime
    reports: int
    first: Arrival
    folded: Presence


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_credential(db: Database, host_id: str, *, actor: Actor, clock: Clock, reason: str = "") -> str:
    """Create (or replace) a host's credential; return the token, shown once."""
    actor.require(Role.OPERATOR, "issuing host credentials")
    token = HOST_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock()
    with db.transaction() as conn:
        if inventory_store.get_host(conn, host_id) is None:
            raise NotFoundError(f"host {shown(host_id)} not found")
        health_store.set_credential(conn, host_id, _hash(token), now)
        store_revocation(conn, host_id, now)  # a replaced credential's host tokens stop working (services/host_tokens)
        audit_store.append(conn, at=now, actor=actor.name, action="host.credential", target=f"host/{host_id}",
                           source=actor.source, reason=reason, details={})
    return token


class HealthIngest:
    """Authenticates, rate-limits and buffers health reports; :meth:`flush` writes them."""

    def __init__(self, db: Database, clock: Clock, *, max_per_minute: int = 60, max_buffer: int = 5000) -> None:
        self.db = db
        self.clock = clock
        self.max_per_minute = max_per_minute
        self.max_buffer = max_buffer
        self._lock = threading.Lock()
        self._beats: dict[str, _Pending] = {}
        self._pruned: datetime | None = None
        self._versions: dict[str, tuple[dict[str, str], tuple[str, ...], datetime]] = {}
        self._window: dict[str, tuple[datetime, int]] = {}
        #: Every report this process received before this time is in the database (set by each flush that
        #: succeeded; None before the first).  The reconciler ticks the gate up to it, less the other
        #: servers' flush period, so that no report is counted before it was written (services/rollouts.tick).
        self.complete_through: datetime | None = None
        #: Opens the transaction events and flushes write in; a stream consumer (services/ingest_stream.py)
        #: points it at the transaction that also claims the batch's message ids, so both commit together.
        self.transaction: Callable[[], AbstractContextManager[Any]] = db.transaction

    def authenticate(self, token: str) -> str:
        """The host id a credential belongs to.

        Checked against the database on every call (one lookup on a unique index), never cached:
        a credential revoked through any server process is refused by every other one at once.
        """
        if not token.startswith(HOST_TOKEN_PREFIX):
            raise AuthenticationError("health reports need a host credential (rfh_…), not an operator token")
        digest = _hash(token)
        with self.db.read() as conn:  # PostgreSQL: one autocommit round trip, half the cost per report
            host = health_store.credential_host(conn, digest)
        if host is None:
            raise AuthenticationError("unknown or revoked host credential")
        return host

    def forget_credentials(self) -> None:
        """Nothing to forget: credentials are not cached (kept for callers written when they were)."""

    def in_memory(self, report: HealthReport) -> bool:
        """Whether :meth:`submit` of this report touches no database: no events to check and write, and a
        buffer with room (a full one flushes)."""
        return not report.events and len(self._beats) + 1 < self.max_buffer

    def submit(self, credential_host: str, report: HealthReport) -> int:
        """Accept one report; return how many reports are waiting to be written."""
        if report.host_id != credential_host:
            raise PermissionDeniedError(f"host {shown(credential_host)} cannot report for {shown(report.host_id)}")
        if len(report.host_id) > 200 or any(len(p) > 200 or len(v) > 100 for p, v in report.versions.items()):
            raise InputError.single("versions", "has a product longer than 200 or a version longer than 100 characters",
                                    expected="product names ≤ 200 and versions ≤ 100 characters")
        if report.at.tzinfo is None:
            raise InputError.single("at", "has no time zone", expected="an aware time such as 2026-11-24T09:00:00Z")
        for kind, rollout, _at in report.events:
            if len(rollout) > 64:
                raise InputError.single("events.rollout", "is longer than 64 characters", expected="a rollout id")
            if kind not in EVENT_KINDS:
                raise InputError.single("events.kind", f"is {shown(kind)}", expected="one of " + ", ".join(EVENT_KINDS))
        if report.away and report.away not in NOTICE_REASONS:
            raise InputError.single("away", f"is {shown(report.away)}", expected="one of " + ", ".join(NOTICE_REASONS))
        now = self.clock()
        if report.at > now + CLOCK_SKEW:
            raise InputError.single("at", f"is {report.at.isoformat()}, in the future",
                                    expected="the agent's current time (check its clock)")
        if report.at < now - MAX_REPORT_AGE:
            raise InputError.single("at", f"is {report.at.isoformat()}, more than {MAX_REPORT_AGE} ago",
                                    expected="the agent's current time (check its clock)")
        if report.events:
            self._check_events(report, now)
        with self._lock:
            start, count = self._window.get(report.host_id, (now, 0))
            if now - start >= timedelta(minutes=1):
                start, count = now, 0
            if count >= self.max_per_minute:
                raise TooManyReports(f"host {report.host_id} sent more than {self.max_per_minute} reports a minute")
            self._window[report.host_id] = (start, count + 1)
            beat_at = min(report.at, now)
            # Arrival is stamped under the lock, so a flush's mark (also under it) is later than every
            # arrival in the batch it swaps out and earlier than every arrival it leaves for the next one.
            arrived = max(now, self.clock())
            arrival = Arrival(arrived, notice=report.away,
                              crashed=any(k == "crashed" for k, _r, _a in report.events))
            prev = self._beats.get(report.host_id)
            if prev is None:
                self._beats[report.host_id] = _Pending(beat_at, 1, arrival, fold(Presence(), arrival))
            else:
                prev.at, prev.reports, prev.folded = max(beat_at, prev.at), prev.reports + 1, fold(prev.folded, arrival)
            if report.versions or report.committed:
                self._versions[report.host_id] = (dict(report.versions), report.committed, now)
            waiting = len(self._beats)
        if report.events:  # rare and sent once: written before the 202, so a crash cannot lose them
            with self.transaction() as conn:
                health_store.record_events(conn, [(report.host_id, rollout, kind, at)
                                                  for kind, rollout, at in report.events])
        if waiting >= self.max_buffer:
            self.flush()
        return waiting

    def _check_events(self, report: HealthReport, now: datetime) -> None:
        """Every event names a rollout that targets the host and a time within that rollout's life."""
        with self.db.transaction() as conn:
            started = health_store.rollouts_targeting(conn, report.host_id, {r for _k, r, _a in report.events})
        for i, (kind, rollout, at) in enumerate(report.events):
            if not rollout:  # not tied to a rollout (a crash of a host not yet updated): the control arm's evidence
                if at.tzinfo is None or not now - UNTIED_EVENT_AGE <= at <= now + CLOCK_SKEW:
                    raise InputError.single(f"events[{i}].at", f"is {at.isoformat()} for a {shown(kind)} event",
                                            expected=f"within the last {UNTIED_EVENT_AGE.days} days, give or take "
                                                     f"{CLOCK_SKEW} of clock skew")
                continue
            if rollout not in started:
                raise InputError.single(f"events[{i}].rollout", f"is {shown(rollout)}, which does not target host "
                                        f"{shown(report.host_id)}", expected="a rollout this host is part of (its "
                                        "desired state names them: GET /v1/agent/desired)")
            if at.tzinfo is None or not started[rollout] - CLOCK_SKEW <= at <= now + CLOCK_SKEW:
                raise InputError.single(f"events[{i}].at", f"is {at.isoformat()} for a {shown(kind)} event",
                                        expected=f"between the rollout's start ({started[rollout].isoformat()}) and "
                                                 f"now, give or take {CLOCK_SKEW} of clock skew")

    def flush(self) -> int:
        """Write every buffered report in one transaction; return how many hosts were written."""
        with self._lock:
            mark = self.clock()
            beats, self._beats = self._beats, {}
            versions, self._versions = self._versions, {}
        if not (beats or versions):
            self._complete(mark)
            return 0
        now = self.clock()
        try:
            with self.transaction() as conn:
                stored = health_store.presence(conn, beats)
                health_store.record_presence(conn, {h: (p.at, p.reports, _merge(stored.get(h), p))
                                                    for h, p in beats.items()})
                health_store.record_many_versions(conn, versions)
                if self._pruned is None or now - self._pruned >= timedelta(hours=1):
                    health_store.prune_days(conn, (now - timedelta(days=LOOKBACK_DAYS)).strftime("%Y-%m-%d"))
                    self._pruned = now
        except Exception:
            with self._lock:  # put them back; the next flush retries
                for host, kept in beats.items():
                    later = self._beats.get(host)
                    # Reports that came meanwhile follow the ones put back.
                    self._beats[host] = kept if later is None else _Pending(
                        max(kept.at, later.at), kept.reports + later.reports, kept.first, _merge(kept.folded, later))
                for host, value in versions.items():
                    self._versions.setdefault(host, value)
            raise
        self._complete(mark)
        return len(beats)

    def _complete(self, mark: datetime) -> None:
        with self._lock:
            if self.complete_through is None or mark > self.complete_through:
                self.complete_through = mark


def _merge(before: Presence | None, pending: _Pending) -> Presence:
    """The stored presence ``before`` followed by a batch: the gap up to the batch's first arrival (known only
    now), then the batch folded from there."""
    gap = fold(Presence(last_seen=before.last_seen, notice_at=before.notice_at, away=before.away)
               if before is not None else Presence(), Arrival(pending.first.at))
    after = pending.folded
    days: dict[str, DayCounts] = {}
    for day, c in [*(before.days.items() if before is not None else ()), *gap.days.items(), *after.days.items()]:
        into = days.setdefault(day, DayCounts())
        into.hours += c.hours
        into.silences += c.silences
        into.crashes += c.crashes
        into.notices += c.notices
    notice_at, reason = after.notice_at, after.notice_reason
    if notice_at is None and before is not None:
        notice_at, reason = before.notice_at, before.notice_reason
    crash_at = after.crash_at or (before.crash_at if before is not None else None)
    return Presence(last_seen=after.last_seen, notice_at=notice_at, notice_reason=reason, crash_at=crash_at,
                    away=(*gap.away, *after.away)[-AWAY_KEEP:], days=days)
