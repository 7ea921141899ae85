"""Risk sets: who could fail, who did, per stratum and arm, between two ticks (DESIGN §5, docs/gate.md).

One counting module for the server's store adapter and the simulator: both hold, per host, a few
arrays of times (float seconds from any common origin; ``nan`` = never) and call
:func:`count_tick` once per tick with the time of the previous tick.  The result is what the
health gate's e-process (:mod:`ringfence.domain.logrank`) consumes: per stratum, the events on
each arm *in the interval* and the hosts at risk then.  Being stateless over events (an event has
one time, and falls in exactly one interval ``(since, now]``) makes the count crash-safe: the
caller passes the ``since`` of the last *committed* tick, so a tick that was lost is counted again
in full and a committed one never twice.

Rules, in order
---------------

1. **In scope**: only hosts the rollout targets (``in_scope``) are counted at all.
2. **Arm**: a host is *treated* from the time it was exposed (``exposed_s``; intention to treat)
   and *control* before; an event belongs to the arm the host was in at the event's time.
3. **Silence event** (signal ``silent``): a host whose last report ``beat_s`` is followed by
   neither a report nor a going-away notice for more than ``grace_s``.  Its time is
   ``beat_s + grace_s``; it counts in the tick whose interval contains that time.  A host that
   reports again and then falls silent again has a new ``beat_s`` and so a new event: events are
   per exposure interval, not per host and rollout.
4. **Censoring**: a host that sent a notice (``notice_s >= beat_s``: planned sleep, shutdown or
   its own update reboot) is not at risk of a silence event until it reports again.  A host that
   was silent before ``since`` of the first tick (offline at the start) has its event before
   every interval and is never counted; asleep hosts are never control failures.
5. **At risk of silence** at ``now``: in scope, reported within ``grace_s`` and not censored, plus
   the hosts whose event falls in this interval (they were at risk just before it).
6. **Did not come back** (signal ``not_back``, the slower signal): a host that sent a notice and
   has not reported since, past its own usual time away ``away_limit_s`` (per host: the port
   measures each host's pattern, e.g. a high quantile of its past absences; for an update reboot
   the reboot allowance).  Its time is ``notice_s + away_limit_s``.  At risk: hosts away with a
   notice and not yet past their limit, plus this interval's events.
7. **Host-hours**: hosts at risk at ``now`` × the interval's length (the tick is the resolution).

The e-process batches the events of one interval with the at-risk counts at its end; docs/gate.md
explains why that keeps the test valid (an interval's events split hypergeometrically, which is
more concentrated than the binomial the test bets against).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ringfence.errors import InputError, shown

__all__ = ["ArmCounts", "PreHistory", "TickCounts", "count_history", "count_tick", "self_control_revealed",
           "self_control_schedule", "spread_revealed"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ArmCounts:
    """Per stratum (index = stratum code): events in the interval and hosts at risk at its end."""

    treated_events: IntArray
    control_events: IntArray
    treated_at_risk: IntArray
    control_at_risk: IntArray
    treated_hours: FloatArray
    control_hours: FloatArray


@dataclass(frozen=True, slots=True)
class PreHistory:
    """Each host's own record over the look-back window before the rollout started (self-control).

    Per host, in the same order as the other arrays a port passes :func:`count_tick` /
    :func:`ringfence.domain.counting.risk_observations`, and counted by the same rules as
    :func:`count_tick` over the look-back: ``silent_events`` = silence events without a notice
    (rule 3), ``crash_events`` = crashes reported, ``hours`` = host-hours at risk of silence
    (reporting, not away with a notice: rule 5).  A port measures hosts only; the domain sums per
    stratum.  A host with no history has zeros.
    """

    silent_events: IntArray
    crash_events: IntArray
    hours: FloatArray

    def check(self, n: int) -> None:
        """Raise InputError naming the field unless every array has ``n`` finite, non-negative entries."""
        for name in ("silent_events", "crash_events", "hours"):
            arr = np.asarray(getattr(self, name))
            if len(arr) != n:
                raise InputError.single(f"history.{name}", f"has {len(arr)} entries for {n} hosts",
                                        expected="one entry per host")
            if n and not (np.all(np.isfinite(arr)) and arr.min() >= 0):
                raise InputError.single(f"history.{name}", "has negative or non-finite entries",
                                        expected="finite counts and host-hours ≥ 0")

    @classmethod
    def empty(cls, n: int) -> PreHistory:
        """No history for ``n`` hosts (zeros): self-control then bets nothing."""
        return cls(np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.float64))


@dataclass(frozen=True, slots=True)
class TickCounts:
    """:func:`count_tick`'s result: one :class:`ArmCounts` per signal."""

    silent: ArmCounts
    not_back: ArmCounts


def _arm_counts(stratum: IntArray, strata: int, treated_at: BoolArray, events: BoolArray, at_risk: BoolArray,
                event_treated: BoolArray, hours: float) -> ArmCounts:
    def per(mask: BoolArray) -> IntArray:
        out: IntArray = np.bincount(stratum[mask], minlength=strata).astype(np.int64)
        return out

    risk = at_risk | events
    t_risk = per(risk & treated_at)
    c_risk = per(risk & ~treated_at)
    return ArmCounts(
        treated_events=per(events & event_treated), control_events=per(events & ~event_treated),
        treated_at_risk=t_risk, control_at_risk=c_risk,
        treated_hours=t_risk.astype(np.float64) * hours, control_hours=c_risk.astype(np.float64) * hours,
    )


def _silence(in_scope: BoolArray, beat_s: FloatArray, notice_s: FloatArray, since_s: float, now_s: float,
             grace_s: float) -> tuple[BoolArray, BoolArray, BoolArray]:
    """Per host: censored by a notice (rule 4), a silence event in ``(since_s, now_s]`` (rule 3), and at risk of
    silence at ``now_s`` (rule 5, without this interval's events)."""
    noticed: BoolArray = notice_s >= beat_s  # a notice at or after the last report censors until the next report
    silent_at = beat_s + grace_s
    event: BoolArray = in_scope & ~noticed & (silent_at > since_s) & (silent_at <= now_s)
    risk: BoolArray = in_scope & ~noticed & (now_s - beat_s <= grace_s)
    return noticed, event, risk


def count_history(history: PreHistory, *, beat_s: FloatArray, notice_s: FloatArray, crash_s: FloatArray,
                  since_s: float, now_s: float, grace_s: float) -> PreHistory:
    """``history`` plus each host's record over ``(since_s, now_s]`` before a rollout, by :func:`count_tick`'s
    rules: its silence event (rule 3, censored by a notice), a crash it reported (``crash_s``, its latest, in
    the interval), and host-hours at risk of silence (rule 5 at ``now_s``, this interval's event included)
    times the interval's length.  A port replays its look-back tick by tick through this (the simulator its
    warm-up physics), so the history is counted exactly as the rollout will be."""
    n = len(beat_s)
    history.check(n)
    if not (now_s >= since_s and grace_s > 0):
        raise InputError.single("history.now_s", f"is {shown(now_s)} with since_s {shown(since_s)} and grace_s {shown(grace_s)}",
                                expected="now_s ≥ since_s and grace_s > 0")
    _, event, risk = _silence(np.ones(n, dtype=bool), beat_s, notice_s, since_s, now_s, grace_s)
    with np.errstate(invalid="ignore"):
        crashed = (crash_s > since_s) & (crash_s <= now_s)
    hours = (now_s - since_s) / 3600.0
    return PreHistory(silent_events=history.silent_events + event, crash_events=history.crash_events + crashed,
                      hours=history.hours + (risk | event) * hours)


def count_tick(*, stratum: IntArray, strata: int, in_scope: BoolArray, exposed_s: FloatArray, beat_s: FloatArray,
               notice_s: FloatArray, away_limit_s: FloatArray, since_s: float, now_s: float,
               grace_s: float) -> TickCounts:
    """Count both risk-set signals over ``(since_s, now_s]`` (the rules of the module docstring).

    ``stratum`` holds codes ``0 … strata-1``; ``notice_s`` is the time of the host's last going-away
    notice (``nan``: none); ``away_limit_s`` how long this host is usually away after one.
    """
    n = len(stratum)
    for name, arr in (("in_scope", in_scope), ("exposed_s", exposed_s), ("beat_s", beat_s), ("notice_s", notice_s),
                      ("away_limit_s", away_limit_s)):
        if len(arr) != n:
            raise InputError.single(f"risksets.{name}", f"has {len(arr)} entries for {n} hosts",
                                    expected="one entry per host")
    if not (now_s >= since_s and grace_s > 0):
        raise InputError.single("risksets.now_s", f"is {shown(now_s)} with since_s {shown(since_s)} and grace_s {shown(grace_s)}",
                                expected="now_s ≥ since_s and grace_s > 0")
    if n and (stratum.min() < 0 or stratum.max() >= strata):
        raise InputError.single("risksets.stratum", "has codes outside 0 … strata-1", expected="codes below strata")
    hours = (now_s - since_s) / 3600.0
    treated_now = in_scope & (exposed_s <= now_s)  # nan compares False: never exposed is control
    noticed, silent_event, silent_risk = _silence(in_scope, beat_s, notice_s, since_s, now_s, grace_s)
    silent_treated = exposed_s <= beat_s + grace_s
    silent = _arm_counts(stratum, strata, treated_now, silent_event, silent_risk, silent_event & silent_treated, hours)
    # Did not come back (rule 6).
    back_at = notice_s + away_limit_s
    back_event = in_scope & noticed & (back_at > since_s) & (back_at <= now_s)
    back_risk = in_scope & noticed & (back_at > now_s)
    back_treated = exposed_s <= back_at
    not_back = _arm_counts(stratum, strata, treated_now, back_event, back_risk, back_event & back_treated, hours)
    return TickCounts(silent=silent, not_back=not_back)


def self_control_revealed(pre_event_hours: FloatArray, post_hours: float, ratio: float) -> int:
    """How many pre-update events a self-controlled stratum has revealed after ``post_hours``.

    Without a concurrent control (big-bang, the last wave, a fully updated stratum) the stratum's own
    history before the update is the control: its pre-update events, at ``pre_event_hours`` host-hours
    counted back from the update, are revealed at ``ratio`` pre host-hours per post host-hour.  In
    that merged clock each event is a post-update one with probability ``λ1 / (λ1 + ratio·λ0)``, at
    most ``1 / (1 + ratio)`` when the update does no harm, which is the share the gate bets against
    (a control arm of weight ``ratio`` against a treated arm of weight 1).  A pre-history shorter
    than ``ratio × post_hours`` stops revealing (and the caller must stop betting: see
    :func:`ringfence.domain.logrank.self_control_tick`).
    """
    if not (ratio > 0 and post_hours >= 0):
        raise InputError.single("self_control.ratio", f"is {shown(ratio)} (post_hours {shown(post_hours)})",
                                expected="ratio > 0 and post_hours ≥ 0")
    return int(np.count_nonzero(pre_event_hours <= ratio * post_hours))


SELF_CONTROL_HORIZON_HOURS = 72.0  # the second half of a stratum's history lasts this long per updated host


def self_control_schedule(hours: FloatArray, hosts: IntArray, ratio: float, post_hours: FloatArray) -> FloatArray:
    """Per stratum, the pre-update host-hours revealed once its updated hosts have been at risk for
    ``post_hours`` host-hours on its self-control clock (``hours``: its pre-update host-hours; ``hosts``: its
    hosts in scope).

    The history is revealed in two halves at once: the first at ``ratio`` pre host-hours per post host-hour
    (strong evidence per event for a harm that shows at once: a crash or a boot loop on every host), the
    second at ``hours / (2 · hosts · 72)`` per post host-hour, so that it lasts
    :data:`SELF_CONTROL_HORIZON_HOURS` of every updated host being at risk (a hang or a failure that starts
    hours or days after the install still meets a reference: a 24 h history at ratio 20 alone is used up
    after 1.2 h per host).  ``R(b) = min(ratio · b, H/2) + min(H · b / (2 · n · 72), H/2)``.  The schedule
    depends only on the post-update host-hours at risk, never on events, so a tick's share
    ``h / (h + R(b + h) - R(b))`` is the chance that an event is the updated hosts' under no harm (in the
    merged clock of docs/gate.md), and every stretch of the history is revealed once.
    """
    h = np.asarray(hours, dtype=np.float64)
    n = np.maximum(np.asarray(hosts, dtype=np.float64), 1.0)
    b = np.maximum(np.asarray(post_hours, dtype=np.float64), 0.0)
    half = h / 2.0
    out: FloatArray = np.minimum(ratio * b, half) + np.minimum(half * b / (n * SELF_CONTROL_HORIZON_HOURS), half)
    return out


def spread_revealed(events: IntArray, hours: FloatArray, revealed_hours: FloatArray) -> IntArray:
    """Per stratum, how many of its ``events`` pre-update events lie within the first ``revealed_hours`` of
    its ``hours`` pre-update host-hours, the events spread evenly over them.

    A :class:`PreHistory` carries counts, not times, so event ``i`` (``1 … events``) is placed at the middle
    of its share, ``(i - ½) · hours / events``: the count revealed by ``R`` host-hours is
    ``min(events, ⌊R · events / hours + ½⌋)``, about the rate times ``R`` at every ``R`` (docs/gate.md says
    what this assumes).  No pre-update host-hours reveal nothing.
    """
    e = np.asarray(events, dtype=np.float64)
    h = np.asarray(hours, dtype=np.float64)
    r = np.maximum(np.asarray(revealed_hours, dtype=np.float64), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(h > 0, np.floor(r * e / np.where(h > 0, h, 1.0) + 0.5), 0.0)
    out: IntArray = np.minimum(k, e).astype(np.int64)
    return out
