"""Health gate v2: an anytime-valid stratified log-rank e-process on risk sets (DESIGN §5, docs/gate.md).

"Aggregates in, decisions out", with the evidence carried in the rollout's status so that it survives a
crash: every tick the fleet port reports, per signal × stratum, the events since the last committed tick
on each arm and the hosts at risk then (:class:`RiskTick`, counted by :mod:`ringfence.domain.risksets`);
:func:`accumulate` folds them into a :class:`Ledger` (a tuple of plain rows, stored with the status);
:func:`decide` turns the ledger into a :class:`~ringfence.domain.gate.GateResult`.

The test
--------

In a stratum, with ``T`` updated and ``C`` not-yet-updated hosts at risk when an event happens, the
event falls on an updated host with probability ``θT / (θT + C)``, where ``θ`` is the ratio of the
updated to the not-updated hazard.  If the update does no harm (``θ <= 1``) that is at most the share
``s = T / (T + C)``, whatever the hazard itself does (night, a region outage, a fleet-wide shock hit
both arms alike).  For a bet ``θ_j > 1`` the factor of one event is ``θ_j^δ / (1 + (θ_j - 1) s)``
(``δ = 1`` if updated), with conditional mean ``<= 1`` under no harm: the running product is a
non-negative supermartingale and, by Ville's inequality, it ever reaches ``1/a`` with probability at
most ``a``, however often the gate looks.  A tick's ``x`` events (``x1`` updated) are batched with the
share at the tick: the factor ``θ_j^x1 / (1 + (θ_j - 1) s)^x`` still has mean ``<= 1`` because, with
equal hazards, the ``x`` events split hypergeometrically, which is smaller in convex order than the
binomial the factor is built on (the exact sums are in tests/test_logrank.py).

Rules, in the order :func:`decide` applies them
-----------------------------------------------

1. **ERROR** for a tick whose numbers are invalid (negative, not finite, events above the hosts at risk,
   events without host-hours against the baseline, an unknown signal or reference); it is not
   folded in and names the field.  ERROR never promotes.
2. **FAILED** when, for a signal, the pooled e-value reaches ``G / (0.9 alpha)`` (≈ 556 at alpha = 0.01;
   ``G`` = ``len(Signal)``, so alpha is split over signals, not over strata, and 0.9 of a signal's share
   goes to this test, :data:`POOLED_ALPHA_SHARE`), or when the *localisation* e-value of one stratum,
   ``E_s = Σ_j w_j Π_its-factors``, reaches ``S · G / (0.1 alpha)`` (``S = max(max_strata, strata seen)``,
   2e5 by default; the average of ``max_strata`` strata's e-processes is itself one, so this test spends
   at most ``alpha / 10`` over the signals while the rollout has at most ``max_strata`` strata; with ``N``
   more than that, the ``k``-th stratum's threshold is at least ``k · G / (0.1 alpha)`` and the bound
   becomes ``alpha/10 · (1 + ln(N / max_strata))``: set ``max_strata`` at or above the strata of the fleet).
   The pooled e-value is ``E_g = 0.65 · Π_all-strata plug-in factors + 0.35 · Σ_j v_j Π_all-strata factors
   of θ_j``, ``v_j`` the configured weights of the bets θ_j ≥ 100 renormalised (:func:`pooled_fixed_weights`:
   0.625 on "only updated hosts fail", 0.125 on each of 100, 1,000 and 10,000; with 0.35 of the pooled
   e-value, two events that both fall on updated hosts at a share of 0.1 give ≥ 34, over the threshold
   of 28 at alpha = 0.2, the end-to-end test's plan): the plug-in bet ``θ_t``
   (:func:`plug_in_log_theta`) is the signal's pooled estimate of the
   rate ratio from the ticks already folded, shrunk towards ``tolerance``, so the test bets on the harm
   it is seeing instead of paying the mixture's prior weight for it (a 2× regression halts after about
   0.75 of the mixture's host-hours); the fixed bets keep "only updated hosts fail" fast.
   The localisation test is the "every updated host of one stratum fails" test: with ``w_∞ = 0.25``, 170
   comparable hosts reporting and the updated hosts failing one at a time, 3 failing hosts give
   ``E_s ≈ 0.25 · 171³ ≈ 1.3e6 ≥ 2e5`` (the pooled test usually halts at the second).  Strata of one to
   nine hosts count in both: their factors multiply into the pooled product like everyone else's.
   **At most one updated event per updated host**: the bets of a stratum count its updated events only
   while they are fewer than its updated hosts (``LedgerRow.counted_treated``); the rest get factor 1.
   A host's repeated failures are not independent evidence: one host that flaps all day in a stratum
   of few hosts would otherwise give an event every hour on one arm at a small share and halt a good
   release; a crash loop is seen by its first crash.  A factor replaced by 1 keeps the product a test
   supermartingale (for an updated event the factor 1 is below the mean the bet allows, and the
   control events' factors are unchanged), so the cap only spends less alpha.
3. **INCONCLUSIVE** when: no ticks yet; a required signal has no row; a stratum's ``E_s`` reaches
   ``suspect_e_value`` (evidence of harm somewhere, not yet enough to halt: a person should look);
   or a signal's pooled bound on harm is not yet within tolerance (rule 4).
4. **SUCCESSFUL** when every signal has its pooled bound within tolerance: either the mirrored
   e-process for ``θ >= tolerance`` (bets ``tolerance / θ_j``, the same factors with
   ``p(θ) = θs / (θs + 1 - s)``) reaches ``2G / beta`` (the data reject "harm of tolerance× or more"),
   or the anytime-valid Poisson upper bound on the pooled updated rate (events per host-hour at risk)
   is within ``tolerance × baseline_rate`` (harm negligible in absolute terms; the only route when
   events are rare).  Small strata are judged in the pool, never by their own host-hours.  A signal that
   is not in ``required_signals`` (``not_back``, the slow "did not come back" signal) halts like any
   other (rule 2, in this wave and every later one: the e-process runs for the whole rollout) but never
   holds a promotion back: bounding it means waiting for every host that went away to come back, and a
   region that is offline for hours, or a laptop away for a week, would hold a good release for as long.

References
----------

``control`` (the default): the not-yet-updated hosts of the stratum reporting at that moment.
``self``: no concurrent control (big-bang, last wave, a fully updated stratum): the stratum's own
pre-update history, revealed at ``self_control_ratio`` pre host-hours per post host-hour, is the
control arm with weight ``ratio`` against the treated arm's 1 (:func:`self_control_tick`); a release
is compared with the stratum's own measured hazard, never with a fixed constant.  ``baseline``: for
signals no control host can show (an install that failed, an automatic revert) the updated hosts'
events are compared with ``baseline_rate``: factor ``θ_j^x1 exp(-(θ_j - 1) μ)``, ``μ = baseline_rate
× host-hours`` (a Poisson mixture martingale; valid while the normal rate is at most the baseline).

Factors of all three kinds multiply into the same per-stratum, per-bet accumulators
``Σ [x1 log θ_j - x log(1 + (θ_j - 1) s)]`` (log space, floored at ``-1e4`` so a bet that lost
everything stays finite in JSON).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from ringfence.domain.gate import (
    GateConfig,
    GateResult,
    Verdict,
    amount_problem,
    number_words,
    rate_upper_bound,
    whole_problem,
)
from ringfence.errors import InputError, describe, shown

__all__ = [
    "Ledger",
    "LedgerRow",
    "RiskRef",
    "RiskTick",
    "Signal",
    "accumulate",
    "decide",
    "ledger_from_doc",
    "ledger_rows",
    "next_wave",
    "pooled_fixed_weights",
    "self_control_tick",
    "signal_e_value",
    "stratum_e_value",
]

_FLOOR = -1e4  # log of a bet that lost (practically) everything


class Signal(StrEnum):
    """The per-host signals of gate v2: the first gate's four (same values) and the slower "did not come back"."""

    CRASHED = "crashed"
    SILENT = "silent"  # stopped reporting for longer than the grace period without a going-away notice
    AUTO_REVERTED = "auto_reverted"
    INSTALL_FAILED = "install_failed"
    NOT_BACK = "not_back"  # went away with a notice and did not return within its own usual pattern


class RiskRef(StrEnum):
    """What a stratum's updated hosts are compared with in a tick."""

    CONTROL = "control"
    SELF = "self"
    BASELINE = "baseline"


@dataclass(frozen=True, slots=True)
class RiskTick:
    """One signal × stratum over one tick: events on each arm and the hosts at risk at the tick.

    ``treated_at_risk`` / ``control_at_risk`` include this tick's events (they were at risk just
    before); for ``reference = self`` they are the weights ``1`` and ``self_control_ratio``.
    ``treated_hours``: updated host-hours at risk in the tick.  ``treated_hosts``: updated hosts of
    the stratum so far (for the words only).
    """

    signal: Signal
    stratum: str
    treated_events: int
    control_events: int
    treated_at_risk: float
    control_at_risk: float
    treated_hours: float = 0.0
    treated_hosts: int = 0
    reference: RiskRef = RiskRef.CONTROL


class LedgerRow(NamedTuple):
    """The running evidence of one signal × stratum (plain values, so it stores as JSON)."""

    signal: str
    stratum: str
    log_e: tuple[float, ...]  # per bet θ_j: Σ x1 log θ_j - x log(1 + (θ_j - 1) s)
    log_bound: tuple[float, ...]  # per mirrored bet: evidence against θ >= tolerance
    treated_events: int
    control_events: int
    expected_treated: float  # Σ x s: updated events a harmless release would have given
    treated_hours: float
    treated_hosts: int
    control_at_risk: float  # comparable hosts reporting at the last tick with an event (or the last tick)
    reference: str
    wave_events: int  # updated events since the current wave opened (the promotion's rate route)
    wave_hours: float  # updated host-hours at risk since the current wave opened
    self_hours: float = 0.0  # updated host-hours judged against the stratum's own history (its self-control clock)
    log_plug: float = 0.0  # Σ this row's log factors under its signal's predictable plug-in bet θ_t (pooled test)
    ratio_num: float = 0.0  # Σ x1 (1 - s) (baseline rows: Σ x1): the Mantel–Haenszel rate ratio's numerator …
    ratio_den: float = 0.0  # … and denominator Σ x0 s (baseline rows: Σ μ), from which the plug-in bet learns
    counted_treated: int = 0  # updated events the bets have counted: at most one per updated host (see accumulate)


Ledger = tuple[LedgerRow, ...]


def ledger_from_doc(doc: Any) -> Ledger:
    """A ledger from its JSON form (lists for tuples); raises InputError naming the row."""
    rows: list[LedgerRow] = []
    for i, raw in enumerate(doc or ()):
        try:
            s, st, le, lb, te, ce, ex, th, tn, car, ref, we, wh, *more = raw  # before self_hours 13, plug-in 14
            if len(more) > 5:
                raise ValueError(f"{13 + len(more)} fields, at most 18")
            sh, lp, rn, rd = (*(float(v) for v in more[:4]), 0.0, 0.0, 0.0, 0.0)[:4]
            counted = int(more[4]) if len(more) == 5 else int(te)  # a row from before the cap counted every event
            rows.append(LedgerRow(str(s), str(st), tuple(float(v) for v in le), tuple(float(v) for v in lb),
                                  int(te), int(ce), float(ex), float(th), int(tn), float(car), str(ref), int(we),
                                  float(wh), sh, lp, rn, rd, counted))
        except (TypeError, ValueError) as e:
            raise InputError.single(f"gate_ledger[{i}]", f"is {shown(raw)} ({e})", expected="a ledger row") from e
    return tuple(rows)


_num = number_words


# --- the factors --------------------------------------------------------------------------------


def _logrank_log(x1: int, x: int, share: float, theta: float) -> float:
    """log θ^x1 / (1 + (θ - 1) s)^x; θ = ∞ gives -x1 log s when no control event, else the floor."""
    if x == 0:
        return 0.0
    if math.isinf(theta):
        if x > x1:
            return _FLOOR
        return -x1 * math.log(share) if share > 0 else 0.0
    return x1 * math.log(theta) - x * math.log1p((theta - 1.0) * share)


def _p_of(theta: float, share: float) -> float:
    """Chance an event is an updated host's at rate ratio θ and share s."""
    if math.isinf(theta):
        return 1.0 if share > 0 else 0.0
    denom = theta * share + 1.0 - share
    return theta * share / denom if denom > 0 else 0.0


def _bound_log(x1: int, x0: int, share: float, tolerance: float, ratio: float) -> float:
    """log of the factor testing θ >= tolerance with the bet θ' = tolerance / ratio (ratio = θ_j)."""
    if x1 + x0 == 0 or not 0.0 < share < 1.0:
        return 0.0
    pc = _p_of(tolerance, share)
    alt = 0.0 if math.isinf(ratio) else tolerance / ratio
    pa = _p_of(alt, share)
    if x1 > 0 and pa == 0.0:
        return _FLOOR
    out = x0 * (math.log1p(-pa) - math.log1p(-pc))
    if x1 > 0:
        out += x1 * (math.log(pa) - math.log(pc))
    return out


def _poisson_log(x1: int, mu: float, theta: float) -> float:
    """log θ^x1 exp(-(θ - 1) μ): the baseline bet."""
    if math.isinf(theta):
        return _FLOOR if mu > 0 else 0.0
    return x1 * math.log(theta) - (theta - 1.0) * mu


# --- the predictable plug-in bet (the pooled test's main bet) ---------------------------------------------

PLUG_IN_WEIGHT = 0.65  # of the pooled mixture; the configured alternatives share the rest
PLUG_IN_PRIOR_EVENTS = 40.0  # the prior's weight in ``ratio_den`` units (≈ updated events a harmless release gives)
PLUG_IN_MAX_RATIO = 100.0  # the largest ratio the plug-in bets (the mixture's large θ_j cover the rest)
POOLED_ALPHA_SHARE = 0.9  # of each signal's alpha to the pooled test; the localisation test gets the rest


def plug_in_log_theta(num: Any, den: Any, tolerance: float) -> Any:
    """log θ_t of the plug-in bet from the evidence before the tick (floats or numpy arrays alike).

    The Mantel–Haenszel estimate of the rate ratio over the ticks so far, ``Σ x1 (1 - s) / Σ x0 s`` (for
    baseline ticks ``Σ x1 / Σ μ``), with :data:`PLUG_IN_PRIOR_EVENTS` pseudo-events at ``tolerance`` (the
    smallest harm the plan asks the gate to see, the SPRT's design alternative):
    ``θ_t = (num + k · tol) / (den + k)``, clipped to ``[1, 100]``.  It depends only on ticks already
    folded, so each factor ``θ_t^x1 / (1 + (θ_t - 1) s)^x`` has conditional mean ≤ 1 under no harm exactly
    as a fixed bet's does, and the product stays a test supermartingale.
    """
    k = PLUG_IN_PRIOR_EVENTS
    if isinstance(num, float | int) and isinstance(den, float | int):
        raw = math.log((num + k * tolerance) / (den + k))
        return min(max(raw, 0.0), math.log(PLUG_IN_MAX_RATIO))
    import numpy as np  # noqa: PLC0415 (only the bench passes arrays)

    return np.clip(np.log((num + k * tolerance) / (den + k)), 0.0, math.log(PLUG_IN_MAX_RATIO))


def halt_thresholds(config: GateConfig, strata: int = 0) -> tuple[float, float]:
    """(pooled, localisation) e-value thresholds: alpha split over the ``G`` signals, then
    :data:`POOLED_ALPHA_SHARE` of a signal's share to its pooled test and the rest to its strata's
    localisation test (``S = max(max_strata, strata)`` strata: their average is one e-process)."""
    g = len(Signal)
    s_count = max(config.max_strata, strata)
    return g / (POOLED_ALPHA_SHARE * config.alpha), s_count * g / ((1.0 - POOLED_ALPHA_SHARE) * config.alpha)


def _plug_bets(ledger: Ledger, config: GateConfig) -> dict[str, float]:
    """log θ_t per signal from the pooled evidence of the ledger before this tick."""
    sums: dict[str, list[float]] = {}
    for r in ledger:
        acc = sums.setdefault(r.signal, [0.0, 0.0])
        acc[0] += r.ratio_num
        acc[1] += r.ratio_den
    prior = plug_in_log_theta(0.0, 0.0, config.tolerance)
    return {k: plug_in_log_theta(n, d, config.tolerance) for k, (n, d) in sums.items()} | {"": prior}


def _floor(value: float) -> float:
    return max(_FLOOR, value)


def _invalid(tick: object) -> str | None:
    where = f"tick {getattr(tick, 'signal', '?')}/{getattr(tick, 'stratum', '?')}"
    if not isinstance(tick, RiskTick):
        return (f"{where}: is {describe(tick)}, expected one tick of one signal in one stratum (signal, stratum, "
                "reference, events and hosts at risk of updated and control hosts)")
    try:
        Signal(tick.signal)
        RiskRef(tick.reference)
    except ValueError:
        return f"{where}: signal {shown(str(tick.signal))} or reference {shown(str(tick.reference))} is unknown"
    for name in ("treated_events", "control_events", "treated_hosts"):
        problem = whole_problem(where, name, getattr(tick, name), ints_only=True)
        if problem:
            return problem
    for name in ("treated_at_risk", "control_at_risk", "treated_hours"):
        problem = amount_problem(where, name, getattr(tick, name))
        if problem:
            return problem
    if tick.reference is RiskRef.CONTROL:  # for self-control the at-risk numbers are weights
        if tick.treated_events > tick.treated_at_risk:
            return f"{where}: treated_events {tick.treated_events} exceed treated_at_risk {tick.treated_at_risk}"
        if tick.control_events > tick.control_at_risk:
            return f"{where}: control_events {tick.control_events} exceed control_at_risk {tick.control_at_risk}"
    elif tick.reference is RiskRef.SELF and tick.treated_at_risk <= 0 and tick.treated_events + tick.control_events:
        return f"{where}: events against the stratum's own history need treated_at_risk > 0 (the weight 1)"
    elif tick.treated_events > 0 and tick.treated_hours <= 0:
        return f"{where}: treated_events {tick.treated_events} but treated_hours {tick.treated_hours}"
    return None


def _plainly_valid(tick: object) -> bool:
    """The common case of :func:`_invalid` (a tick a port built from counts), checked fast; False: check in full."""
    if type(tick) is not RiskTick or type(tick.signal) is not Signal or type(tick.reference) is not RiskRef:
        return False
    x1, x0, t, c, h = tick.treated_events, tick.control_events, tick.treated_at_risk, tick.control_at_risk, \
        tick.treated_hours
    if not (type(x1) is int and type(x0) is int and type(tick.treated_hosts) is int
            and type(t) is float and type(c) is float and type(h) is float
            and x1 >= 0 and x0 >= 0 and tick.treated_hosts >= 0 and 0.0 <= t < math.inf and 0.0 <= c < math.inf
            and 0.0 <= h < math.inf):
        return False
    if tick.reference is RiskRef.CONTROL:
        return x1 <= t and x0 <= c
    if tick.reference is RiskRef.SELF:
        return t > 0 or x1 + x0 == 0
    return x1 == 0 or h > 0


def accumulate(ledger: Ledger, ticks: Iterable[RiskTick], config: GateConfig) -> tuple[Ledger, tuple[str, ...]]:
    """Fold one tick's counts into the ledger; returns the new ledger and a problem per invalid tick.

    Several ticks for the same signal × stratum in one call are folded one after another.  Pure: the
    old ledger is not changed, so a tick whose decision is never committed leaves no trace.
    """
    rows = {(r.signal, r.stratum): r for r in ledger}
    thetas = [theta for theta, _ in config.alternatives]
    excess = [theta - 1.0 for theta in thetas]
    bets = _plug_bets(ledger, config)  # predictable: from the committed ledger, before this call's ticks
    problems: list[str] = []
    for tick in ticks:
        problem = None if _plainly_valid(tick) else _invalid(tick)
        if problem:
            problems.append(problem)
            continue
        key = (str(tick.signal), tick.stratum)
        old = rows.get(key) or LedgerRow(key[0], key[1], tuple(0.0 for _ in thetas), tuple(0.0 for _ in thetas),
                                         0, 0, 0.0, 0.0, 0, 0.0, str(tick.reference), 0, 0.0)
        # One updated host's repeated failures are not independent evidence (a host that flaps all day, a crash
        # loop): the bets count at most as many updated events as the stratum has updated hosts.  An updated event
        # left out has factor 1, which keeps each factor's mean at most 1 under no harm (module docstring).
        # Counts, words and the promotion evidence (which only gets harder to reach) keep every event.
        all1 = tick.treated_events
        x1 = min(all1, max(0, tick.treated_hosts - old.counted_treated)) if tick.treated_hosts > 0 else all1
        x0 = tick.control_events
        x = x1 + x0
        # A tick without a reference (no comparable host at risk, no history left) bets nothing; its host-hours
        # still count towards the rate route, whose upper bound on the updated hosts' own failure rate must be
        # within tolerance before a wave promotes (so a last wave on a server without history can finish).
        log_e, log_bound, log_plug = old.log_e, old.log_bound, old.log_plug
        log_theta = bets.get(key[0], bets[""])
        if tick.reference is RiskRef.BASELINE:
            mu = config.baseline_rate * tick.treated_hours
            expected, num, den = mu, float(x1), mu
            if x1 == 0 and mu > 0:  # the common case, written out: each bet loses (θ - 1) μ (θ = ∞: all)
                log_e = tuple(max(_FLOOR, a - t * mu) for a, t in zip(log_e, excess, strict=True))
                log_plug = max(_FLOOR, log_plug - math.expm1(log_theta) * mu)
            elif mu > 0 or x1 > 0:
                log_e = tuple(max(_FLOOR, a + _poisson_log(x1, mu, th)) for a, th in zip(log_e, thetas, strict=True))
                log_plug = max(_FLOOR, log_plug + _poisson_log(x1, mu, math.exp(log_theta)))
        else:
            total = tick.treated_at_risk + tick.control_at_risk
            share = tick.treated_at_risk / total if total > 0 else 0.0
            expected = (all1 + x0) * share
            num, den = x1 * (1.0 - share), x0 * share
            if x > 0 or all1 > 0:  # a tick without events changes no factor (each is 1)
                log_plug = max(_FLOOR, log_plug + x1 * log_theta - x * math.log1p(math.expm1(log_theta) * share))
                log_e = tuple(max(_FLOOR, a + _logrank_log(x1, x, share, th))
                              for a, th in zip(log_e, thetas, strict=True))
                log_bound = tuple(max(_FLOOR, a + _bound_log(all1, x0, share, config.tolerance, th))
                                  for a, th in zip(log_bound, thetas, strict=True))
        c_risk = tick.control_at_risk if (x + all1 > 0 or old.treated_events + old.control_events == 0) else old.control_at_risk
        rows[key] = LedgerRow(
            key[0], key[1], log_e, log_bound,
            old.treated_events + all1, old.control_events + x0, old.expected_treated + expected,
            old.treated_hours + tick.treated_hours, max(old.treated_hosts, tick.treated_hosts), c_risk,
            str(tick.reference), old.wave_events + all1, old.wave_hours + tick.treated_hours,
            old.self_hours + (tick.treated_hours if tick.reference is RiskRef.SELF else 0.0),
            log_plug, old.ratio_num + num, old.ratio_den + den, old.counted_treated + x1,
        )
    return tuple(rows.values()), tuple(problems)


def next_wave(ledger: Ledger) -> Ledger:
    """The ledger as a newly opened wave starts it: the halt evidence goes on (one e-process for the whole
    rollout, so no alpha is spent twice), the promotion evidence starts again (each wave shows its own bound)."""
    return tuple(r._replace(log_bound=tuple(0.0 for _ in r.log_bound), wave_events=0, wave_hours=0.0) for r in ledger)


def self_control_tick(signal: Signal, stratum: str, *, post_events: int, pre_events_revealed: int,
                      post_hours: float, pre_hours_total: float, ratio: float, treated_hosts: int = 0,
                      hours_before: float = 0.0) -> RiskTick:
    """A tick for a stratum judged against its own pre-update history (see the module docstring).

    ``hours_before`` / ``post_hours``: post-update host-hours before this tick and in it;
    ``pre_events_revealed``: pre-update events newly revealed by
    :func:`ringfence.domain.risksets.self_control_revealed`.  Once ``ratio × (hours_before +
    post_hours)`` passes the pre-update history there is no control left: the tick then carries no
    bet (both weights make the share 1, so every factor is 1) and the stratum waits for the pool.
    """
    exhausted = ratio * (hours_before + post_hours) > pre_hours_total
    return RiskTick(signal, stratum, post_events, 0 if exhausted else pre_events_revealed,
                    treated_at_risk=1.0, control_at_risk=0.0 if exhausted else ratio,
                    treated_hours=post_hours, treated_hosts=treated_hosts, reference=RiskRef.SELF)


# --- the decision -------------------------------------------------------------------------------


def _mix(logs: Sequence[float], config: GateConfig) -> float:
    terms = [math.log(w) + v for (_, w), v in zip(config.alternatives, logs, strict=True)]
    top = max(terms)
    return top + math.log(math.fsum(math.exp(t - top) for t in terms))


def stratum_e_value(row: LedgerRow, config: GateConfig) -> float:
    """log E_s: the stratum's own mixture e-value (localisation)."""
    return _mix(row.log_e, config)


def pooled_fixed_weights(config: GateConfig) -> tuple[float, ...]:
    """The weights of the configured fixed bets in the pooled test: the plug-in bets ratios up to
    :data:`PLUG_IN_MAX_RATIO`, so the fixed bets there are the configured ones above it (by default 100,
    1,000, 10,000 and "only updated hosts fail"), their weights renormalised to sum to one (all of them
    if none is above it)."""
    big = [w if theta >= PLUG_IN_MAX_RATIO else 0.0 for theta, w in config.alternatives]
    total = math.fsum(big)
    if total <= 0:
        return tuple(w for _, w in config.alternatives)
    return tuple(w / total for w in big)


def signal_e_value(rows: Sequence[LedgerRow], config: GateConfig) -> float:
    """log E_g: the pooled e-value of one signal over all strata (each bet's products multiplied):
    ``PLUG_IN_WEIGHT · Π plug-in factors + (1 - PLUG_IN_WEIGHT) · Σ_j v_j Π factors of θ_j`` with the
    weights ``v_j`` of :func:`pooled_fixed_weights`."""
    plug = math.log(PLUG_IN_WEIGHT) + math.fsum(r.log_plug for r in rows)
    terms = [math.log(v) + math.fsum(r.log_e[j] for r in rows)
             for j, v in enumerate(pooled_fixed_weights(config)) if v > 0]
    top_fixed = max(terms)
    fixed = math.log1p(-PLUG_IN_WEIGHT) + top_fixed + math.log(math.fsum(math.exp(t - top_fixed) for t in terms))
    top = max(plug, fixed)
    return top + math.log(math.exp(plug - top) + math.exp(fixed - top))


_PHRASE = {
    "silent": "stopped reporting without notice",
    "not_back": "did not come back after going away",
    "crashed": "crashed",
    "auto_reverted": "auto-reverted",
    "install_failed": "failed to install",
}



def _exp(log_value: float) -> float:
    return math.exp(log_value) if log_value < 700 else math.inf


def _words(row: LedgerRow) -> str:
    phrase = _PHRASE.get(row.signal, row.signal)
    hosts = f" of {row.treated_hosts:,}" if row.treated_hosts else ""
    head = f"{row.treated_events:,}{hosts} updated {row.stratum} hosts {phrase}"
    if 0 < row.treated_hosts < row.treated_events:  # repeated failures of the same hosts: one each counts
        head = (f"{row.treated_hosts:,} updated {row.stratum} {'host' if row.treated_hosts == 1 else 'hosts'} "
                f"{phrase} {row.treated_events:,} times ({row.counted_treated:,} counted: one per host)")
    if row.reference == RiskRef.CONTROL:
        return f"{head}, {row.control_events:,} of {row.control_at_risk:,.0f} comparable hosts reporting then did"
    if row.reference == RiskRef.SELF:
        return f"{head}, against {row.control_events:,} events in the stratum's own history before the update"
    return f"{head} in {row.treated_hours:,.0f} host-hours, {row.expected_treated:.2g} expected at the baseline"


def ledger_rows(ledger: Ledger, config: GateConfig) -> list[dict[str, Any]]:
    """Each signal × stratum of the ledger as the dashboard's evidence table shows it: counts, e-value, the
    stratum's own (localisation) threshold, ``failed`` when the stratum alone is past it, and the row in words."""
    threshold = halt_thresholds(config, len({r.stratum for r in ledger}))[1]
    out: list[dict[str, Any]] = []
    for r in ledger:
        e_value = _exp(stratum_e_value(r, config)) if max(r.log_e) > 0 else 1.0
        out.append({"signal": r.signal, "stratum": r.stratum, "verdict": "failed" if e_value >= threshold else "watching",
                    "treated_failed": r.treated_events, "treated_hosts": r.treated_hosts,
                    "control_failed": r.control_events, "control_hosts": round(r.control_at_risk),
                    "e_value": e_value, "threshold": threshold, "reason": _words(r)})
    return out


def decide(ledger: Ledger, config: GateConfig, problems: Sequence[str] = (), *, wave: int | None = None,
           expected_strata: Collection[str] = ()) -> GateResult:
    """The gate's verdict from the ledger (rules 1–4 of the module docstring).

    ``expected_strata``: strata the current wave covers; one without a row for a required signal keeps the
    gate Inconclusive (a data source that lost a stratum must not let it promote).
    """
    g = len(Signal)
    strata = {r.stratum for r in ledger}
    halt_threshold, local_threshold = halt_thresholds(config, len(strata))
    bound_target = math.log(2 * g / config.beta)
    where = f"halted wave {wave}: " if wave is not None else ""

    by_signal: dict[str, list[LedgerRow]] = {}
    for r in ledger:
        by_signal.setdefault(r.signal, []).append(r)
    # Each stratum's e-value once; a row whose every bet is at or below 1 has E_s ≤ 1 (the weights sum to ≤ 1), so
    # its largest log bet stands in for it: no threshold (all > 1) can be reached by it, and most rows are such.
    log_es = {(r.signal, r.stratum): stratum_e_value(r, config) if max(r.log_e) > 0 else max(r.log_e) for r in ledger}
    # Rule 2 first: evidence for a halt stands on its own counts, even next to an invalid tick.
    halts: list[tuple[float, str]] = []
    for signal, rows in by_signal.items():
        pooled = signal_e_value(rows, config)
        top = max(rows, key=lambda r: log_es[(r.signal, r.stratum)])
        if pooled >= math.log(halt_threshold):
            x1 = sum(r.treated_events for r in rows)
            x0 = sum(r.control_events for r in rows)
            exp = sum(r.expected_treated for r in rows)
            one = len([r for r in rows if r.treated_events]) == 1
            halts.append((pooled - math.log(halt_threshold) - 1e6,  # a stratum's own halt says where: it goes first
                          f"{where}{_words(top)}; e-value {_num(_exp(pooled))} ≥ {_num(halt_threshold)}" if one else
                          f"{where}{x1:,} {signal} events on updated hosts across {len(rows):,} "
                          f"{'stratum' if len(rows) == 1 else 'strata'} where "
                          f"a harmless release gives {exp:.2g} ({x0:,} on comparable hosts); most in {top.stratum}: "
                          f"{_words(top)}; pooled e-value {_num(_exp(pooled))} ≥ {_num(halt_threshold)}"))
        for r in rows:
            log_e = log_es[(r.signal, r.stratum)]
            if log_e >= math.log(local_threshold):
                halts.append((log_e - math.log(local_threshold),
                              f"{where}{_words(r)}; e-value {_num(_exp(log_e))} ≥ {_num(local_threshold)}"))
    if halts:
        halts.sort(reverse=True)
        more = f" (and {len(halts) - 1:,} more tests over threshold)" if len(halts) > 1 else ""
        return GateResult(Verdict.FAILED, halts[0][1] + more, (), None)
    if problems:
        more = f" (and {len(problems) - 1:,} more)" if len(problems) > 1 else ""
        return GateResult(Verdict.ERROR, f"error: {problems[0]}{more}", (), None)
    if not ledger:
        return GateResult(Verdict.INCONCLUSIVE, "inconclusive: no health data yet; the gate never promotes without data",
                          (), None)
    missing = sorted(str(s) for s in config.required_signals if str(s) not in by_signal)
    if missing:
        return GateResult(Verdict.INCONCLUSIVE, f"inconclusive: no {', '.join(missing)} data yet", (), None)
    have = {(r.signal, r.stratum) for r in ledger}
    lost = [(str(s), st) for st in expected_strata for s in sorted(config.required_signals) if (str(s), st) not in have]
    if lost:
        more = f" (and {len(lost) - 1:,} more)" if len(lost) > 1 else ""
        return GateResult(Verdict.INCONCLUSIVE, f"inconclusive: no {lost[0][0]} data for stratum {lost[0][1]}{more}",
                          (), None)
    suspects = [(log_es[(r.signal, r.stratum)], r) for r in ledger]
    worst_log, worst = max(suspects, key=lambda p: p[0])
    if worst_log >= math.log(config.suspect_e_value):
        return GateResult(Verdict.INCONCLUSIVE,
                          f"inconclusive: evidence of harm in {worst.stratum}: {_words(worst)}; e-value "
                          f"{_num(_exp(worst_log))} ≥ {_num(config.suspect_e_value)} (halts at {_num(local_threshold)})",
                          (), None)
    level = config.beta / (2 * g)
    pending: list[str] = []
    passed: list[str] = []
    required = {str(s) for s in config.required_signals}
    for signal, rows in sorted(by_signal.items()):
        if signal not in required:
            # An optional signal (``not_back``) halts (rule 2) but does not hold a promotion back (rule 4).
            continue
        bound = _mix([math.fsum(r.log_bound[j] for r in rows) for j in range(len(config.alternatives))], config)
        x1 = sum(r.wave_events for r in rows)
        hours = math.fsum(r.wave_hours for r in rows)
        rate = rate_upper_bound(x1, hours, level, config.alternatives) if hours > 0 else math.inf
        limit = config.tolerance * config.baseline_rate
        if bound >= bound_target:
            passed.append(f"{signal}: harm below {_num(config.tolerance)}× ({x1:,} events on updated hosts, "
                          f"{len(rows):,} strata)")
        elif rate <= limit:
            passed.append(f"{signal}: rate ≤ {rate:.2g}/host-hour ≤ {limit:.2g} over {hours:,.0f} updated host-hours")
        else:
            shown = f"rate ≤ {rate:.2g}/host-hour" if math.isfinite(rate) else "no updated host-hours yet"
            pending.append(f"{signal}: harm not yet bounded below {_num(config.tolerance)}× and {shown} "
                           f"(need ≤ {limit:.2g}) after {hours:,.0f} updated host-hours")
    if pending:
        more = f" (and {len(pending) - 1:,} more signals)" if len(pending) > 1 else ""
        return GateResult(Verdict.INCONCLUSIVE, f"inconclusive: {pending[0]}{more}", (), None)
    return GateResult(Verdict.SUCCESSFUL, f"promote: pooled over {len(strata):,} strata, " + "; ".join(passed), (), None)
