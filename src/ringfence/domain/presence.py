"""A host's presence as the server records it for gate v2: arrivals, going-away notices, its own record.

Pure rules (no I/O) that the health ingest applies to each report as the server receives it, so the
database keeps per host what :func:`ringfence.domain.counting.risk_observations` needs (docs/gate.md, "In
the server"):

* ``last_seen``: when the server **received** the host's last report (not the agent's clock: a host whose
  reports arrive late still arrives on every beat; only a gap in arrivals is silence);
* ``notice_at``: the host's last going-away notice (a report that says "sleep", "shutdown", "reboot" or
  "update_reboot"); a notice at or after ``last_seen`` censors the host until it reports again;
* ``crash_at``: when the server received the host's latest crash report;
* ``away``: how long the host stayed away after each of its recent notices, from which
  :func:`away_limit_s` derives its usual time away (the ``not_back`` signal's per-host limit);
* a per-UTC-day record of its own (self-control's pre-update history, :class:`DayCounts`): host-hours at
  risk of silence, silences past :data:`HISTORY_GRACE` without a notice, crashes and notices.

The day record is measured with a fixed grace, :data:`HISTORY_GRACE`: a plan whose grace is at least
that long counts no more silences after the update than the history did before, so comparing the two
can only be cautious; a plan with a shorter grace gets no self-control (the port passes no history).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

__all__ = [
    "AWAY_DEFAULT",
    "AWAY_FLOOR",
    "AWAY_KEEP",
    "AWAY_MARGIN",
    "AWAY_MIN_SAMPLES",
    "HISTORY_GRACE",
    "LOOKBACK_DAYS",
    "NOTICE_REASONS",
    "Arrival",
    "DayCounts",
    "Presence",
    "away_limit_s",
    "fold",
]

#: What a going-away notice may say.
NOTICE_REASONS = ("sleep", "shutdown", "reboot", "update_reboot")
#: The grace with which the per-day record counts silences (the plans' default ``silence_grace_minutes``).
HISTORY_GRACE = timedelta(minutes=15)
#: How many UTC days of each host's own record are kept and make its pre-update history.
LOOKBACK_DAYS = 28
#: A host's usual time away before it has :data:`AWAY_MIN_SAMPLES` absences of its own (a long weekend).
AWAY_DEFAULT = timedelta(hours=72)
#: The shortest usual time away (a host that only ever restarts still gets an hour).
AWAY_FLOOR = timedelta(hours=1)
#: Absences kept per host, newest last; the limit needs at least this many of its own.
AWAY_KEEP = 20
AWAY_MIN_SAMPLES = 5
#: The limit is this multiple of the 90th percentile of the kept absences.
AWAY_MARGIN = 1.5


def away_limit_s(samples: list[float]) -> float:
    """A host's usual time away after a notice, in seconds: ``AWAY_MARGIN`` × the 90th percentile of its last
    :data:`AWAY_KEEP` absences (at least :data:`AWAY_FLOOR`), or :data:`AWAY_DEFAULT` with fewer than
    :data:`AWAY_MIN_SAMPLES` of them.  The percentile is the nearest-rank one (no interpolation)."""
    kept = sorted(float(s) for s in samples[-AWAY_KEEP:] if math.isfinite(float(s)) and float(s) >= 0)
    if len(kept) < AWAY_MIN_SAMPLES:
        return AWAY_DEFAULT.total_seconds()
    p90 = kept[max(0, math.ceil(0.9 * len(kept)) - 1)]
    return max(AWAY_FLOOR.total_seconds(), AWAY_MARGIN * p90)


@dataclass(slots=True)
class DayCounts:
    """One host's record for one UTC day (added up by the store)."""

    hours: float = 0.0
    silences: int = 0
    crashes: int = 0
    notices: int = 0


@dataclass(frozen=True, slots=True)
class Arrival:
    """One report as the server received it: when, whether it was a going-away notice, whether it carried a
    crash."""

    at: datetime
    notice: str = ""
    crashed: bool = False


@dataclass(frozen=True, slots=True)
class Presence:
    """What the server knows of a host's presence (None: never)."""

    last_seen: datetime | None = None
    notice_at: datetime | None = None
    notice_reason: str = ""
    crash_at: datetime | None = None
    away: tuple[float, ...] = ()
    days: dict[str, DayCounts] = field(default_factory=dict)

    def day(self, at: datetime) -> DayCounts:
        """The (mutable) record of ``at``'s UTC day, created on first use."""
        return self.days.setdefault(at.strftime("%Y-%m-%d"), DayCounts())


def fold(p: Presence, a: Arrival, grace: timedelta = HISTORY_GRACE) -> Presence:
    """``p`` after the arrival ``a`` (arrivals come in the order the server received them).

    The gap since the last arrival is, in order: censored (the host had sent a notice at or after its last
    report): one absence of ``a.at - notice_at`` seconds, no host-hours; within ``grace``: host-hours; past
    ``grace``: a silence on the day it began (``last_seen + grace``) and ``grace`` of host-hours.  A notice
    counts on its day and censors from ``a.at``; a crash counts on its day.  A report older than the last
    (two requests crossing) changes nothing but the counts of its own notice or crash.
    """
    days = p.days
    away = p.away
    last, at = p.last_seen, a.at
    if last is not None and at > last:
        gap = at - last
        if p.notice_at is not None and p.notice_at >= last:
            away = (*away, max(0.0, (at - p.notice_at).total_seconds()))[-AWAY_KEEP:]
        elif gap <= grace:
            p.day(at).hours += gap.total_seconds() / 3600.0
        else:
            p.day(last + grace).silences += 1
            p.day(last + grace).hours += grace.total_seconds() / 3600.0
    if a.crashed:
        p.day(at).crashes += 1
    notice_at, reason = p.notice_at, p.notice_reason
    if a.notice:
        p.day(at).notices += 1
        if notice_at is None or at >= notice_at:
            notice_at, reason = at, a.notice
    newest = at if last is None or at > last else last
    crash_at = p.crash_at
    if a.crashed and (crash_at is None or at > crash_at):
        crash_at = at
    return replace(p, last_seen=newest, notice_at=notice_at, notice_reason=reason, crash_at=crash_at, away=away,
                   days=days)
