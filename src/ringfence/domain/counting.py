"""The counting rules the server's store and the simulator's arrays share (pure, array versions once).

* :func:`silent_now` — which hosts count as newly silent (docs/gate.md);
* :func:`wave_observations` — per wave: hosts in reach, exposed, held back by
  tenant policy, eligible now (window open, tenant delay over, online, budget
  allows) with the reason the first blocked host is blocked, and observed
  (installed and still reporting);
* :func:`first_whole_window_end` — when each window key has had one whole change window since a wave opened
  (a host offline through all of it no longer holds the wave back);
* :func:`pick_eligible` — which eligible hosts go first (wave, then bucket);
* :func:`unproven` and :func:`budget_ledger` — what counts against a disruption budget now;
* :func:`choose_exposures` — which of them a wave exposes now, within the disruption budgets;
* :func:`count_streams` — the first gate's counts per stratum × signal;
* :func:`risk_observations` — gate v2's risk-set ticks, per-stratum counts and hosts in flight.

Times in the arrays are float seconds from any common origin (``nan`` = never).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from ringfence.domain.budgets import BudgetLedger, GroupBudget
from ringfence.domain.gate import GateConfig, StreamCounts
from ringfence.domain.gate import Signal as V1Signal
from ringfence.domain.logrank import Ledger, RiskRef, RiskTick, Signal, self_control_tick
from ringfence.domain.risksets import ArmCounts, PreHistory, count_tick, self_control_schedule, spread_revealed
from ringfence.domain.rollout import StratumObservation, WaveObservation
from ringfence.domain.windows import ChangeWindow, FreezeCalendar, WindowKey, WindowStatus, window_status_many
from ringfence.errors import InputError, shown

__all__ = [
    "POOLED",
    "BoolArray",
    "FloatArray",
    "IntArray",
    "RiskCounts",
    "WaveCounts",
    "budget_ledger",
    "choose_exposures",
    "count_streams",
    "first_whole_window_end",
    "pick_eligible",
    "risk_observations",
    "silent_now",
    "unproven",
    "wave_observations",
]

#: The stratum name of the pooled streams (every stratum together), next to the per-stratum streams.
POOLED = "*"

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def silent_now(*, exposed_s: FloatArray, rolled_back: BoolArray, control: BoolArray, beat_s: FloatArray,
               now_s: float, grace_s: float) -> tuple[BoolArray, BoolArray]:
    """Hosts silent right now: (treated, control).

    A treated host (exposed, not rolled back) is silent once it was exposed more than ``grace`` ago and has
    not reported for ``grace`` (or never); a control host once it has not reported for ``grace``.
    """
    stale = ~(now_s - beat_s <= grace_s)  # never reported (nan) is stale too
    treated: BoolArray = (now_s - exposed_s > grace_s) & ~rolled_back & stale  # nan (not exposed) is False
    return treated, control & stale


@dataclass(frozen=True, slots=True)
class WaveCounts:
    """:func:`wave_observations`' result: the engine's per-wave view and the hosts eligible now.

    ``eligible`` marks hosts (of any wave) that could be offered the release now; wave ``k`` may take those
    with ``wave <= k`` (see :func:`pick_eligible`).
    """

    waves: tuple[WaveObservation, ...]
    eligible: BoolArray
    rolled_back_pending: int
    #: Rolled-back hosts that reported since their exposure, within the grace, and not on the release: back.
    rolled_back_confirmed: int = 0
    #: Rolled-back hosts with no heartbeat within the grace: they cannot fetch the old version by themselves.
    rolled_back_silent: int = 0
    #: Rolled-back hosts whose last report (within the grace) predates their exposure: not yet known either way.
    rolled_back_unheard: int = 0
    #: Unexposed hosts that had one whole change window since the current wave opened and are blocked now by their
    #: window or by being offline (stragglers: they do not hold the wave back); None: not counted.
    missed: BoolArray | None = None


class _Reach:
    """Counts over the hosts in reach of each wave (waves ``0 … k``); a prefix slice when hosts come sorted
    by wave (the simulator's order), a mask otherwise."""

    def __init__(self, wave: IntArray, waves: int) -> None:
        self.waves = waves
        self.sorted = bool(len(wave) < 2 or np.all(wave[:-1] <= wave[1:]))
        if self.sorted:
            self.ends = np.searchsorted(wave, np.arange(waves), side="right")
        else:
            self.masks = [wave <= k for k in range(waves)]

    def count(self, mask: BoolArray) -> IntArray:
        """How many hosts ``mask`` marks in reach of each wave."""
        if self.sorted:
            starts = np.r_[0, self.ends[:-1]]
            per = np.array([np.count_nonzero(mask[a:b]) for a, b in zip(starts, self.ends, strict=True)],
                           dtype=np.int64)
            counts: IntArray = np.cumsum(per)
            return counts
        return np.array([np.count_nonzero(mask & m) for m in self.masks], dtype=np.int64)

    def first(self, mask: BoolArray, k: int) -> int:
        """The first host (in host order) that ``mask`` marks in reach of wave ``k``, or -1."""
        if self.sorted:
            part = mask[:self.ends[k]]
            return int(np.argmax(part)) if part.any() else -1
        both = mask & self.masks[k]
        return int(np.argmax(both)) if both.any() else -1

    def within(self, mask: BoolArray, k: int) -> BoolArray:
        """``mask`` restricted to the hosts in reach of wave ``k``."""
        if self.sorted:
            out = np.zeros(len(mask), dtype=bool)
            out[:self.ends[k]] = mask[:self.ends[k]]
            return out
        restricted: BoolArray = mask & self.masks[k]
        return restricted


def first_whole_window_end(windows: Iterable[ChangeWindow], freeze: FreezeCalendar, keys: Sequence[WindowKey],
                           since: datetime) -> list[datetime | None]:
    """Per window key: the end of its first whole change window that opens at or after ``since`` (None: the
    plan has no windows that open and close, e.g. always open).

    A wave that opened at ``since`` has given a host of that key one whole window of its own once ``now``
    reaches this time; a host that was offline (or not reporting) through all of it is a *straggler*: it no
    longer holds the wave's bake back (:func:`wave_observations`, ``missed_window``), and is exposed when it
    next reports in a window, under whichever wave is current then.  Computed afresh on each call: a
    process-wide memo would be hidden module state in the domain (tests/test_import_contract_state.py).
    """
    plan = tuple(windows)
    return [_whole_window_end(plan, freeze, k, since) for k in keys]


def _whole_window_end(windows: tuple[ChangeWindow, ...], freeze: FreezeCalendar, key: WindowKey,
                      since: datetime) -> datetime | None:
    status = window_status_many(windows, freeze, [key], since)[key]
    if not status.open:
        start = status.next_open
    elif status.closes_at is not None:  # open when the wave opened: its first whole window is the next one
        start = window_status_many(windows, freeze, [key], status.closes_at)[key].next_open
    else:
        return None
    if start is None:
        return None
    return window_status_many(windows, freeze, [key], start)[key].closes_at


def wave_observations(*, waves: int, wave: IntArray, exposed_s: FloatArray, rolled_back: BoolArray,
                      held: BoolArray, delayed: BoolArray, key: IntArray, windows: Sequence[WindowStatus],
                      beat_s: FloatArray, runs_release: BoolArray, now_s: float, grace_s: float,
                      name_of: Callable[[int], str],
                      budget_ok: Callable[[IntArray], BoolArray] | None = None,
                      missed_key: BoolArray | None = None) -> WaveCounts:
    """Per wave, in the rules of :class:`~ringfence.domain.rollout.WaveObservation`.

    ``missed_key`` (per window key): the key has had one whole change window since the current wave opened
    (:func:`first_whole_window_end`); an unexposed host of such a key that is blocked now by its window or by
    being offline counts in ``missed_window`` (and in :attr:`WaveCounts.missed`) instead of holding the wave.

    Wave ``k`` reaches the hosts placed in waves ``0 … k``.  ``key`` indexes ``windows`` (the change-window
    status of each host's (timezone, country, subdivision)); ``name_of(i)`` names host ``i`` in a reason;
    ``budget_ok(indices)`` says which of these candidates the disruption budgets allow (None: no budgets).
    A host not yet exposed and not held back by policy is blocked by the first of: window closed, tenant
    delay, offline (no report within ``grace``), budget; the reason names the first blocked host in order.
    """
    n_keys = len(windows)
    exposed = ~np.isnan(exposed_s)
    fresh = now_s - beat_s <= grace_s  # never reported (nan) is not fresh
    is_open = np.array([w.open for w in windows], dtype=bool)
    closed = ~is_open[key] if n_keys else np.ones(len(key), dtype=bool)
    observed_host = exposed & (beat_s > exposed_s) & runs_release
    waiting = ~exposed & ~held
    blocked = waiting & (closed | delayed | ~fresh)
    candidate = waiting & ~blocked
    missed = (blocked & ~delayed & missed_key[key] if missed_key is not None and n_keys
              else np.zeros(len(key), dtype=bool))
    allowed = candidate.copy()
    if budget_ok is not None:
        cand_idx = np.flatnonzero(candidate)
        if len(cand_idx):
            allowed[cand_idx] = budget_ok(cand_idx)
    reach = _Reach(wave, waves)
    n_exposed = reach.count(exposed)
    n_waiting = reach.count(waiting)
    n_held = reach.count(~exposed & held)
    n_ok = reach.count(allowed)
    n_budget = reach.count(candidate & ~allowed)
    n_observed = reach.count(observed_host)
    n_missed = reach.count(missed)
    grace_min = grace_s / 60
    out: list[WaveObservation] = []
    closed_waiting = blocked & closed
    for k in range(waves):
        reason = ""
        next_open: datetime | None = None
        if n_waiting[k] > n_ok[k] + n_budget[k]:  # some host in reach is blocked: name the first
            first = reach.first(blocked, k)
            if closed[first]:
                reason = f"{name_of(first)}: {windows[int(key[first])].reason}"
            elif delayed[first]:
                reason = f"{name_of(first)}: tenant delay not over"
            else:
                reason = f"{name_of(first)}: offline (no heartbeat in the last {grace_min:.0f} min)"
            idx = np.flatnonzero(reach.within(closed_waiting, k))
            keys_closed = np.flatnonzero(np.bincount(key[idx], minlength=n_keys))
            known = [o for o in (windows[int(j)].next_open for j in keys_closed) if o is not None]
            next_open = min(known) if known else None
        out.append(WaveObservation(
            in_reach=int(n_exposed[k] + n_waiting[k]), exposed=int(n_exposed[k]), eligible_now=int(n_ok[k]),
            observed=int(n_observed[k]), held=int(n_held[k]), next_window=next_open,
            window_reason=reason, budget_blocked=int(n_budget[k]), missed_window=int(n_missed[k])))
    pending = int(np.count_nonzero(rolled_back & runs_release & fresh))
    back = rolled_back & ~runs_release & fresh
    heard = beat_s > exposed_s  # reported since its exposure (nan: never)
    return WaveCounts(waves=tuple(out), eligible=allowed, missed=missed, rolled_back_pending=pending,
                      rolled_back_confirmed=int(np.count_nonzero(back & heard)),
                      rolled_back_silent=int(np.count_nonzero(rolled_back & ~fresh)),
                      rolled_back_unheard=int(np.count_nonzero(back & ~heard)))


def pick_eligible(eligible: BoolArray, wave: IntArray, bucket: IntArray, up_to_wave: int) -> IntArray:
    """The eligible hosts of waves ``0 … up_to_wave`` in the order they are exposed: earliest wave, then
    lowest bucket, then host order."""
    idx = np.flatnonzero(eligible & (wave <= up_to_wave))
    order = np.lexsort((bucket[idx], wave[idx]))  # stable: ties keep the hosts' order
    picked: IntArray = idx[order].astype(np.int64)
    return picked


def unproven(*, exposed_s: FloatArray, rolled_back: BoolArray, wave: IntArray, passed: Iterable[int],
             min_bake_s: Sequence[float], now_s: float) -> BoolArray:
    """Hosts running the release unproven: exposed, not rolled back, their wave not passed, and exposed less
    than their wave's bake time ago (a host that ran it for the whole bake without the gate failing is
    proven, so members of one group can follow each other within the last wave)."""
    done = np.zeros(max(len(min_bake_s), 1), dtype=bool)
    for k in passed:
        done[k] = True
    bake = np.asarray(min_bake_s, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        young = now_s - exposed_s < bake[wave] if len(bake) else np.zeros(len(wave), dtype=bool)
    result: BoolArray = ~np.isnan(exposed_s) & ~rolled_back & ~done[wave] & young
    return result


def budget_ledger(budgets: Sequence[GroupBudget], *, exposed: Iterable[str], member_beat_s: Mapping[str, float],
                  now_s: float, grace_s: float) -> BudgetLedger:
    """The disruption-budget ledger at ``now``: ``exposed`` hosts are at risk, and so are members known to be
    offline (a report older than ``grace``; a member never seen is not assumed down)."""
    down = {m for m, beat in member_beat_s.items() if now_s - beat > grace_s}
    return BudgetLedger(budgets, exposed, down=down)


def choose_exposures(eligible: BoolArray, wave: IntArray, bucket: IntArray, up_to_wave: int, limit: int, *,
                     budget: BudgetLedger | None = None, ids: Sequence[str] = ()) -> IntArray:
    """Which eligible hosts of waves ``0 … up_to_wave`` to expose now (at most ``limit``), best first.

    Without budgets the first ``limit`` of :func:`pick_eligible`'s order.  With a ledger (``ids[i]`` names
    host ``i`` in it), hosts another rollout already exposed cost no budget again and come first; the rest
    go through :meth:`~ringfence.domain.budgets.BudgetLedger.select` in order, which records them as exposed.
    """
    limit = max(0, int(limit))
    in_reach = eligible & (wave <= up_to_wave)
    if budget is None and limit >= int(np.count_nonzero(in_reach)):
        every: IntArray = np.flatnonzero(in_reach).astype(np.int64)
        return every
    order = pick_eligible(eligible, wave, bucket, up_to_wave)
    if budget is None:
        return order[:limit]
    already = [int(j) for j in order if ids[int(j)] in budget.exposed][:limit]
    fresh = [int(j) for j in order if ids[int(j)] not in budget.exposed]
    by_id = {ids[j]: j for j in fresh}
    chosen = already + [by_id[h] for h in budget.select([ids[j] for j in fresh], limit - len(already))]
    return np.array(chosen, dtype=np.int64)


def count_streams(*, strata: Sequence[str], stratum: IntArray, treated: BoolArray, control: BoolArray,
                  exposed_s: FloatArray, treated_first_s: Mapping[V1Signal, FloatArray],
                  control_first_s: Mapping[V1Signal, FloatArray], started_s: float, now_s: float,
                  min_treated: int) -> list[StreamCounts]:
    """The gate's counts per stratum × signal, plus the pooled stratum ``*`` when there are several.

    Counting rules (docs/gate.md): ``treated`` = exposed and not rolled back; ``control`` = not yet exposed
    and reporting before the rollout started.  ``treated_first_s[signal][i]`` is host ``i``'s first event of
    the signal under this rollout since it started less the grace, ``control_first_s`` its first event not
    tied to a rollout since it started (``nan`` or a missing signal: none).  A host with an event has failed
    and its time at risk stops there.  A stratum with fewer than ``min_treated`` updated hosts is judged
    inside the pooled stream.  Install failures and auto-reverts cannot happen on a host that never
    installed: their control side is empty, so the gate compares them with its baseline rate.
    """
    n_strata = len(strata)
    present = np.bincount(stratum, minlength=n_strata) > 0
    several = int(np.count_nonzero(present)) > 1
    ti = np.flatnonzero(treated)
    st_t = stratum[ti]
    t_hosts = np.bincount(st_t, minlength=n_strata)
    c_hosts = np.bincount(stratum[np.flatnonzero(control)], minlength=n_strata)
    ex_t = exposed_s[ti]
    none_t = np.bincount(st_t, weights=np.maximum(0.0, now_s - ex_t), minlength=n_strata) / 3600.0
    at_risk = max(0.0, now_s - started_s)
    none_c = c_hosts * at_risk / 3600.0
    zeros = np.zeros(n_strata, dtype=np.int64)
    per: dict[V1Signal, tuple[Any, Any, Any, Any]] = {}
    for signal in V1Signal:
        t_first, c_first = treated_first_s.get(signal), control_first_s.get(signal)
        t_failed, t_hours, c_failed, c_hours = zeros, none_t, zeros, none_c
        if t_first is not None:
            f = t_first[ti]
            failed = ~np.isnan(f)
            t_failed = np.bincount(st_t[failed], minlength=n_strata)
            hours = np.maximum(0.0, np.where(failed, np.fmin(f, now_s), now_s) - ex_t)
            t_hours = np.bincount(st_t, weights=hours, minlength=n_strata) / 3600.0
        if c_first is not None:
            # Most control hosts have no event: count every one at risk all along, then take back the time
            # after each failed host's first event.
            fi = np.flatnonzero(control & ~np.isnan(c_first))
            st_f = stratum[fi]
            c_failed = np.bincount(st_f, minlength=n_strata)
            lost = at_risk - np.maximum(0.0, np.fmin(c_first[fi], now_s) - started_s)
            c_hours = np.maximum(0.0, none_c - np.bincount(st_f, weights=lost, minlength=n_strata) / 3600.0)
        per[signal] = (t_failed, t_hours, c_failed, c_hours)
    names = [s for s, p in zip(strata, present, strict=True) if p] + ([POOLED] if several else [])
    index = {s: i for i, s in enumerate(strata)}
    streams: list[StreamCounts] = []
    for name in sorted(names):
        j = -1 if name == POOLED else index[name]

        def total(a: Any, j: int = j) -> Any:
            return a.sum() if j < 0 else a[j]
        n_t = int(total(t_hosts))
        if n_t == 0 or (name != POOLED and several and n_t < min_treated):
            continue
        n_c = int(total(c_hosts))
        for signal in V1Signal:
            t_failed, t_hours, c_failed, c_hours = per[signal]
            comparable = signal in (V1Signal.SILENT, V1Signal.CRASHED)
            streams.append(StreamCounts(signal=signal, stratum=name, treated_hosts=n_t,
                                        treated_failed=int(total(t_failed)),
                                        treated_host_hours=float(total(t_hours)),
                                        control_hosts=n_c if comparable else 0,
                                        control_failed=int(total(c_failed)) if comparable else 0,
                                        control_host_hours=float(total(c_hours)) if comparable else 0.0))
    return streams


@dataclass(frozen=True, slots=True)
class RiskCounts:
    """What a port gives gate v2 at one tick (:func:`risk_observations`)."""

    ticks: tuple[RiskTick, ...]
    strata: tuple[StratumObservation, ...]
    in_flight: int
    proven: int = 0


def risk_observations(*, strata: Sequence[str], stratum: IntArray, in_scope: BoolArray, wave: IntArray,
                      current_wave: int, held: BoolArray, exposed_s: FloatArray, rolled_back: BoolArray,
                      beat_s: FloatArray, notice_s: FloatArray, away_limit_s: FloatArray, crash_s: FloatArray,
                      since_s: float, now_s: float, grace_s: float, min_bake_s: float,
                      required: Iterable[str], history: PreHistory | None = None, ledger: Ledger = (),
                      self_control_ratio: float | None = None, horizon_s: float | None = None,
                      missed: BoolArray | None = None) -> RiskCounts:
    """Gate v2's observations over ``(since_s, now_s]``, the same for the server's store and the simulator.

    Rules, in order (the risk sets themselves are :func:`ringfence.domain.risksets.count_tick`'s):

    1. ``silent`` and ``not_back``: :func:`~ringfence.domain.risksets.count_tick`, per stratum, against the
       not-yet-updated hosts of the stratum at risk then (``control`` reference).
    2. ``crashed``: a reported crash whose time ``crash_s`` (the host's latest) falls in the interval, on the
       arm the host was in then, against the hosts at risk of silence (reporting, not away).
    2a. **Self-control** (``silent``, ``crashed``): a stratum with updated hosts at risk and no
       not-yet-updated host at risk (big-bang, the last wave, a fully updated stratum, control hosts all
       offline) is judged against its own ``history`` instead
       (:func:`~ringfence.domain.logrank.self_control_tick`): its hosts' pre-update events and host-hours are
       summed, and the events spread evenly over the hours
       (:func:`~ringfence.domain.risksets.spread_revealed`) are revealed by
       :func:`~ringfence.domain.risksets.self_control_schedule` (half at ``self_control_ratio`` pre-update
       host-hours per updated host-hour at risk, half spread over 72 h of every updated host at risk), on the
       stratum's own clock (``LedgerRow.self_hours``: the updated host-hours of its earlier self-controlled
       ticks).  Without a history (None), or with no
       pre-update host-hours, or once the history is used up, the tick carries no bet (share 1) and the
       engine cannot promote on it (:func:`~ringfence.domain.logrank.accumulate` counts no host-hours of a
       tick without a reference towards the rate route).
    3. Signals no not-yet-updated host can show (``install_failed``, ``auto_reverted``) that ``required``
       asks for: a ``baseline`` tick with the updated host-hours at risk and the events this port records
       (none: neither fleet records them as events yet).
    4. A tick is emitted for a stratum × signal only when it has updated hosts at risk or events.
    5. ``strata``: per stratum of ``current_wave``, the hosts in reach (not held by policy, not stragglers
       ``missed`` by :func:`wave_observations`) and the updated ones that reported at least ``min_bake_s``
       after their exposure.
    6. ``in_flight``: exposed hosts (not rolled back) whose outcome is still unknown: not yet reported
       ``grace_s`` after exposure, no crash reported since exposure, not silent past the grace, not away
       with a notice (silence and the notice are the gate's to judge from then on).  ``proven``: exposed
       hosts (not rolled back) that reported ``grace_s`` after exposure with no crash since (the slow start
       of ``max_in_flight``).

    ``horizon_s`` (default ``now_s``) ends the counted interval: events and risk sets (rules 1–4) are counted
    over ``(since_s, horizon_s]``, the wave's strata and the hosts in flight (rules 5–6) at ``now_s``.  A port
    whose reports reach its store some time after they arrived (a buffer written at the next flush) counts up
    to the time through which its store is complete, so that a report that arrived before ``now_s`` but was
    written after the count is counted by the next tick instead of falling before its ``since_s``.

    Self-control inputs: ``history`` is each host's :class:`~ringfence.domain.risksets.PreHistory` over the
    look-back before the rollout started (None: the port has none, so no stratum is judged against its own
    history); ``ledger`` the rollout's committed gate ledger (``RolloutStatus.gate_ledger``: where each
    self-controlled stratum's clock stands); ``self_control_ratio`` the plan's
    ``GateConfig.self_control_ratio`` (None: the default).
    """
    n = len(stratum)
    k = len(strata)
    if history is not None:
        history.check(n)
    upto = now_s if horizon_s is None else horizon_s
    if not since_s <= upto <= now_s:
        raise InputError.single("risk_observations.horizon_s", f"is {shown(upto)} with since_s {shown(since_s)} and now_s "
                                f"{shown(now_s)}", expected="since_s ≤ horizon_s ≤ now_s")
    counts = count_tick(stratum=stratum, strata=k, in_scope=in_scope, exposed_s=exposed_s, beat_s=beat_s,
                        notice_s=notice_s, away_limit_s=away_limit_s, since_s=since_s, now_s=upto, grace_s=grace_s)
    counted = ~np.isnan(exposed_s) & (exposed_s <= upto)
    treated_hosts = np.bincount(stratum[counted & in_scope], minlength=k) if n else np.zeros(k, np.int64)
    ticks: list[RiskTick] = []

    hosts_of = treated_hosts.tolist()
    ratio = GateConfig().self_control_ratio if self_control_ratio is None else float(self_control_ratio)
    pre: dict[Signal, IntArray] = {}
    pre_hours = np.zeros(k)
    if history is not None:  # rule 2a: each stratum's own history, summed over its hosts in scope
        st_in = stratum[in_scope]
        pre_hours = np.bincount(st_in, weights=np.asarray(history.hours, np.float64)[in_scope],
                                 minlength=k).astype(np.float64)
        for signal, ev in ((Signal.SILENT, history.silent_events), (Signal.CRASHED, history.crash_events)):
            pre[signal] = np.bincount(st_in, weights=np.asarray(ev, np.float64)[in_scope], minlength=k).round().astype(np.int64)
    self_hours = {(r.signal, r.stratum): r.self_hours for r in ledger}
    scope_hosts = np.bincount(stratum[in_scope], minlength=k) if n else np.zeros(k, np.int64)

    def emit(signal: Signal, arm: ArmCounts) -> None:
        live = (arm.treated_at_risk > 0) | (arm.treated_events > 0) | ((arm.control_events > 0) & (treated_hosts > 0))
        x1, x0 = arm.treated_events.tolist(), arm.control_events.tolist()
        t, c, h = arm.treated_at_risk.tolist(), arm.control_at_risk.tolist(), arm.treated_hours.tolist()
        own = live & (arm.control_at_risk == 0) & (arm.treated_at_risk > 0) if signal in pre else np.zeros(k, bool)
        for j in np.flatnonzero(live & ~own).tolist():
            ticks.append(RiskTick(signal, strata[j], x1[j], x0[j], float(t[j]), float(c[j]), h[j], hosts_of[j]))
        idx = np.flatnonzero(own)
        if not len(idx):
            return
        before = np.array([self_hours.get((str(signal), strata[j]), 0.0) for j in idx.tolist()])
        events, hours, tick_h = pre[signal][idx], pre_hours[idx], arm.treated_hours[idx]
        r0 = self_control_schedule(hours, scope_hosts[idx], ratio, before)
        r1 = self_control_schedule(hours, scope_hosts[idx], ratio, before + tick_h)
        # The tick's control weight: pre host-hours revealed per post host-hour over it (at its start if it has
        # no post host-hours); 0 once both halves are used up (no bet: self_control_tick).
        now_rate = (self_control_schedule(hours, scope_hosts[idx], ratio, before + 1e-9) - r0) / 1e-9
        weight = np.where(tick_h > 0, (r1 - r0) / np.where(tick_h > 0, tick_h, 1.0), now_rate).tolist()
        new = (spread_revealed(events, hours, r1) - spread_revealed(events, hours, r0)).tolist()
        for i, j in enumerate(idx.tolist()):
            w = float(weight[i])
            ticks.append(self_control_tick(signal, strata[j], post_events=x1[j],
                                           pre_events_revealed=new[i] if w > 0 else 0, post_hours=h[j],
                                           pre_hours_total=float(hours[i]) if w > 0 else -1.0, ratio=w if w > 0 else 1.0,
                                           treated_hosts=hosts_of[j]))

    emit(Signal.SILENT, counts.silent)
    emit(Signal.NOT_BACK, counts.not_back)
    # Crashes (rule 2): at risk are the hosts at risk of silence.
    with np.errstate(invalid="ignore"):
        crashed = in_scope & (crash_s > since_s) & (crash_s <= upto)
        crash_treated = crashed & (exposed_s <= crash_s)
    sil = counts.silent

    def per(mask: BoolArray) -> IntArray:
        out: IntArray = np.bincount(stratum[mask], minlength=k).astype(np.int64)
        return out

    t_ev, c_ev = per(crash_treated), per(crashed & ~crash_treated)
    emit(Signal.CRASHED, ArmCounts(t_ev, c_ev, np.maximum(sil.treated_at_risk, t_ev),
                                   np.maximum(sil.control_at_risk, c_ev), sil.treated_hours, sil.control_hours))
    wanted = {str(s) for s in required}
    for signal in (Signal.INSTALL_FAILED, Signal.AUTO_REVERTED):
        if str(signal) not in wanted:
            continue
        t_risk, t_hours = sil.treated_at_risk.tolist(), sil.treated_hours.tolist()
        for j in np.flatnonzero(sil.treated_at_risk > 0).tolist():
            ticks.append(RiskTick(signal, strata[j], 0, 0, float(t_risk[j]), 0.0, t_hours[j], hosts_of[j],
                                  RiskRef.BASELINE))
    # Strata of the current wave (rule 5), at now_s.
    exposed_now = ~np.isnan(exposed_s) & (exposed_s <= now_s)
    mine = in_scope & (wave == current_wave)
    skipped = held if missed is None else held | missed
    reach = per(mine & ~(skipped & ~exposed_now))
    with np.errstate(invalid="ignore"):
        baked = mine & exposed_now & (beat_s >= exposed_s + min_bake_s)
    seen = per(baked)
    reach_of, seen_of = reach.tolist(), seen.tolist()
    strata_obs = tuple(StratumObservation(strata[j], reach_of[j], seen_of[j]) for j in np.flatnonzero(reach).tolist())
    # In flight (rule 6).
    with np.errstate(invalid="ignore"):
        healthy = beat_s >= exposed_s + grace_s
        crashed_since = crash_s >= exposed_s
        silent = now_s - beat_s > grace_s
        away = (notice_s >= beat_s) & (notice_s >= exposed_s)
    flight = in_scope & exposed_now & ~rolled_back & ~healthy & ~crashed_since & ~silent & ~away
    proven = in_scope & exposed_now & ~rolled_back & healthy & ~crashed_since
    return RiskCounts(tuple(ticks), strata_obs, int(np.count_nonzero(flight)), int(np.count_nonzero(proven)))
