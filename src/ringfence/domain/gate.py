"""The health gate: a pure, anytime-valid sequential test on aggregated counts (DESIGN §5).

The gate takes counts of **hosts** per *stream* (one :class:`Signal` × one stratum) for the
updated ("treated") hosts and the not-yet-updated ("control") hosts of the same stratum over the
same clock time, and returns a :class:`GateResult` with one of four verdicts and a sentence that
says why.  It does no I/O and reads no clock; calling it after every tick is the intended use.

Rules, in the order they are applied
------------------------------------

1. **ERROR** for a stream whose counts are invalid (negative, NaN or infinite, not a whole number,
   failed > hosts, host-hours without hosts, failures without host-hours, an unknown signal, the
   same signal × stratum twice).  The reason names the stream and the field.  Bad counts never
   raise: a failing data source is data.  ERROR never promotes.
2. **FAILED** as soon as any valid stream's e-value reaches its threshold ``K / alpha`` (Bonferroni
   over ``K = max(max_streams, number of streams given)`` streams).  FAILED wins over every other
   verdict, including ERROR in another stream: the evidence for a halt stands on its own counts.
3. **INCONCLUSIVE** when anything needed for promotion is missing: no streams; a stratum (given or
   named in ``expected_strata``) without a stream for one of ``required_signals``; a stream with
   fewer than ``min_treated_hosts`` updated hosts; or a stream whose upper confidence bound is not
   yet within ``tolerance``.  Inconclusive pauses; it never promotes (fail closed).
4. **SUCCESSFUL** only when none of the above applies: every stream of every stratum has at least
   ``min_treated_hosts`` updated hosts and an anytime-valid upper confidence bound showing the harm
   is within ``tolerance`` (rule 6).

Statistics
----------

*Model.*  In a stream, a host still at risk (no event yet) has its first event at rate ``λ1(t)``
if updated and ``λ0(t)`` if not; under ``H0`` the update does no harm, ``λ1(t) <= λ0(t)``, and
``θ = λ1/λ0`` is the rate ratio.  Rates may swing with the time of day or a fleet-wide shock;
only their ratio matters.  ``x1`` of ``n1`` treated hosts failed in ``e1`` host-hours, ``x0`` of
``n0`` control hosts in ``e0`` host-hours.

5. *Halt test against the concurrent control* (``n0 >= min_control_hosts`` and ``e0 > 0``).
   Take the failing hosts one at a time.  Given that some host fails at time ``t``, it is an
   updated one with probability ``θ T(t) / (θ T(t) + C(t))`` (``T``, ``C``: hosts at risk in each
   arm), which under ``H0`` is at most the updated share ``s(t) = T/(T+C)`` — whatever ``λ(t)``
   does, so a swing or shock that hits both arms alike cannot halt the gate.  Updated hosts only
   join their arm and control hosts only leave theirs, so every earlier share is at most

       p0 = n1 / (n1 + n0 - x0)        (``StreamEvidence.null_share``)

   The e-value is the one-sided mixture likelihood ratio over the rate ratios ``θ_j`` of
   ``GateConfig.alternatives`` (weights ``w_j``, ``Σ w_j <= 1``, every ``θ_j > 1``; ``θ = ∞``
   means "every failing host is an updated one")::

       E = Σ_j w_j · Π_failing-hosts θ_j^[updated] / (1 + (θ_j - 1) p0)
         = Σ_j w_j · θ_j^x1 / (1 + (θ_j - 1) p0)^x                    with x = x1 + x0

   i.e. ``Σ_j w_j Binom(x1; x, p_j) / Binom(x1; x, p0)`` with ``p_j = θ_j p0 / (θ_j p0 + 1 - p0)``.
   A factor has conditional mean ``(p θ_j + 1 - p) / (1 + (θ_j - 1) s) <= 1`` when the host is
   updated with probability ``p <= s``, and it falls as ``s`` grows, so ``E`` is at most the same
   product taken with each failure's own share, a non-negative supermartingale under ``H0``.  By
   Ville's inequality ``P(E ever >= K/alpha) <= alpha/K`` however often the gate looks.  One more
   failing updated host multiplies term ``j`` by ``θ_j / (1 + (θ_j - 1) p0) >= 1``: the e-value never
   goes down.  With ``p1 = 1`` (every updated host fails, no control host does) ``E >= w_∞ / p0^x1``.

   *Without a usable control* (fewer than ``min_control_hosts`` control hosts, or no control
   host-hours) the treated hosts are compared with ``baseline_rate``: with ``μ = baseline_rate ·
   e1`` expected failures, ``E = Σ_j w_j θ_j^x1 exp(-(θ_j - 1) μ)`` (a Poisson mixture martingale;
   ``θ = ∞`` adds nothing once ``μ > 0``).  This test cannot tell a release from a fleet-wide
   shock, and its guarantee holds only while the normal rate is at most ``baseline_rate``.

6. *Promotion bounds* (level ``beta / K`` each), found by inverting the mirrored mixtures (ratios
   ``r_j = 1 / θ_j``, so ``r = 0`` for ``θ = ∞``):

   * ``ratio_upper``: the smallest ``θc`` whose null ``θ >= θc`` the data reject, with
     ``E⁻(θc) = Σ_j w_j r_j^x1 / (1 + (r_j - 1) p(θc))^x``, ``p(θc) = θc s̄ / (θc s̄ + 1 - s̄)`` and
     ``s̄ = e1 / (e1 + e0)`` the updated share of host-hours; ``E⁻`` increases with ``θc``.  With no
     failing host at all the bound is ``∞``: the ratio of two unseen rates cannot be bounded.
   * ``rate_upper``: the smallest ``λc`` with ``Σ_j w_j r_j^x1 exp((1 - r_j) λc e1) >= K/beta``,
     an upper confidence bound on the treated rate per host-hour (Poisson mixture).

   A stream passes when ``ratio_upper <= tolerance`` (only with a usable control) **or**
   ``rate_upper <= tolerance · baseline_rate``.  So a promoted stream has, with probability
   ``>= 1 - beta/K``, a treated rate within ``tolerance`` × its concurrent control's, or one that
   is small in absolute terms (within ``tolerance × baseline_rate`` per host-hour).  The second
   route is what lets rare signals promote at all: with no failing host on either side the ratio
   is unknowable, but ``e1`` quiet host-hours bound the rate near ``log(K/beta) / e1``.  It is only
   as conservative as ``baseline_rate``: set that to a normal rate, not a generous one.

*Alpha split.*  Bonferroni with a fixed ``K``: a threshold must not fall as streams appear (a
lower earlier threshold would have spent more than its share), so ``K`` is ``max_streams``, set
at or above signals × strata for the rollout; if more streams turn up, ``K`` grows to their
number, which only raises thresholds.

*What the caller must count.*  ``treated_hosts``: every host of the stratum updated so far (failed
ones included; it never goes down).  ``control_hosts``: hosts still waiting (failed ones
included; it never goes up).  Failures and host-hours of the control over the same clock time as
the treated hosts' observation.  A signal that cannot happen on a control host (an install that
was never attempted) belongs in the control counts only if something comparable is counted
there; otherwise pass ``control_hosts = 0`` and the baseline is used.

*Limits.*  The gate is stateless and sees cumulative counts.  The halt test is exact for any
timing (rule 5).  ``ratio_upper`` uses the average share ``s̄``, exact when the share is constant
(a wave's cohort after it has been updated, against the hosts still waiting); while a wave is
opening, a shock that coincides with the opening can make it too tight, so a wave should open
quickly compared with its bake time.  ``rate_upper`` assumes a steady rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from ringfence.errors import InputError, describe, shown

__all__ = [
    "DEFAULT_ALTERNATIVES",
    "GateConfig",
    "GateResult",
    "Reference",
    "Signal",
    "StreamCounts",
    "StreamEvidence",
    "Verdict",
    "amount_problem",
    "evaluate",
    "log_e_value_vs_baseline",
    "log_e_value_vs_control",
    "number_words",
    "rate_upper_bound",
    "ratio_upper_bound",
    "whole_problem",
]


class Signal(StrEnum):
    """A per-host failure signal after an update; a host counts once however often it fires."""

    CRASHED = "crashed"  # crashed or boot-looped
    SILENT = "silent"  # applied or was offered the update, then no heartbeat past the grace period
    AUTO_REVERTED = "auto_reverted"
    INSTALL_FAILED = "install_failed"


class Verdict(StrEnum):
    """Outcome of the gate (argo-rollouts' analysis phases); only SUCCESSFUL promotes."""

    SUCCESSFUL = "successful"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


class Reference(StrEnum):
    """What the treated hosts of a stream were compared with."""

    CONTROL = "control"  # the not-yet-updated hosts of the same stratum, same clock time
    BASELINE = "baseline"  # GateConfig.baseline_rate (too few control hosts)


#: Rate ratios θ (treated / control failure rate) the halt test bets on, with their weights.
#: Heavy weight at θ = ∞ (the 2024 failure: every updated host fails) and at 2–3× regressions;
#: large finite ratios keep the power when a few control hosts also fail.
DEFAULT_ALTERNATIVES: tuple[tuple[float, float], ...] = (
    (1.5, 0.10),
    (2.0, 0.15),
    (3.0, 0.15),
    (5.0, 0.10),
    (10.0, 0.10),
    (100.0, 0.05),
    (1_000.0, 0.05),
    (10_000.0, 0.05),
    (math.inf, 0.25),
)


@dataclass(frozen=True, slots=True)
class StreamCounts:
    """Aggregated host counts for one signal × one stratum (never per-host data).

    Failed counts are hosts with at least one event of the signal since their update (treated) or
    over the same clock time (control).  Host-hours are the summed time at risk, which should stop
    at a host's first event.  ``treated_hosts`` counts every host updated so far and never goes
    down; ``control_hosts`` counts the hosts still waiting, failed ones included, and never goes up
    (the halt test's validity rests on both; see the module docstring).
    """

    signal: Signal
    stratum: str
    treated_hosts: int
    treated_failed: int
    treated_host_hours: float
    control_hosts: int
    control_failed: int
    control_host_hours: float


def _all_signals() -> frozenset[Signal]:
    return frozenset(Signal)


@dataclass(frozen=True, slots=True)
class GateConfig:
    """Settings of the health gate; every field has a documented default.

    ``alpha``: family-wise probability that a harmless update ever halts the gate, however often it
    is evaluated, split as ``alpha/K`` per stream.  ``beta``: family-wise probability of promoting a stream whose harm exceeds the
    tolerance, split the same way.  ``tolerance``: promote only when the data bound the
    treated/control failure-rate ratio at or below this (or the treated rate at or below
    ``tolerance × baseline_rate``).  ``min_treated_hosts``: fewer updated hosts in a stream means
    Inconclusive.  ``min_control_hosts``: with fewer control hosts the stream is compared with
    ``baseline_rate`` (failures per host-hour) instead.  ``max_streams``: ``K`` of the split; set
    it at or above signals × strata.  ``required_signals``: every stratum needs a stream of each.
    ``alternatives``: the (rate ratio > 1, weight) mixture of the test, weights summing to ≤ 1.

    Gate v2 (:mod:`ringfence.domain.logrank`) also reads: ``mode`` (``enforce``, or ``shadow``: decisions
    are computed, shown and logged as "would have", nothing is enforced); ``max_strata`` (``S`` of the
    localisation test); ``suspect_e_value`` (a stratum at or above it blocks promotion and asks a
    person); ``self_control_ratio`` (pre-update host-hours revealed per post-update host-hour when a
    stratum is compared with its own history: each event then bets at most ``1 + ratio``, and the
    history must hold ``ratio ×`` the post-update host-hours; the server keeps weeks of heartbeats).
    """

    alpha: float = 0.01
    beta: float = 0.01
    tolerance: float = 2.0
    min_treated_hosts: int = 10
    min_control_hosts: int = 20
    baseline_rate: float = 1e-3
    max_streams: int = 40
    required_signals: frozenset[Signal] = field(default_factory=_all_signals)
    alternatives: tuple[tuple[float, float], ...] = DEFAULT_ALTERNATIVES
    mode: str = "enforce"
    max_strata: int = 40
    suspect_e_value: float = 20.0
    self_control_ratio: float = 20.0

    def __post_init__(self) -> None:
        def bad(name: str, value: object, expected: str) -> InputError:
            return InputError.single(f"gate.{name}", f"is {shown(value)}", expected=expected)

        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if not (isinstance(value, float | int) and 0.0 < value < 1.0):
                raise bad(name, value, "a probability strictly between 0 and 1")
        if not (isinstance(self.tolerance, float | int) and math.isfinite(self.tolerance) and self.tolerance > 0):
            raise bad("tolerance", self.tolerance, "a finite rate ratio > 0, e.g. 2.0")
        if not (isinstance(self.baseline_rate, float | int) and math.isfinite(self.baseline_rate) and self.baseline_rate > 0):
            raise bad("baseline_rate", self.baseline_rate, "a finite rate > 0 in failures per host-hour")
        if self.mode not in ("enforce", "shadow"):
            raise bad("mode", self.mode, "enforce (decisions are carried out) or shadow (only shown and logged)")
        for name in ("suspect_e_value", "self_control_ratio"):
            value = getattr(self, name)
            if not (isinstance(value, float | int) and not isinstance(value, bool) and math.isfinite(value)
                    and value > (1.0 if name == "suspect_e_value" else 0.0)):
                raise bad(name, value, "a finite number > 1" if name == "suspect_e_value" else "a finite number > 0")
        for name in ("min_treated_hosts", "min_control_hosts", "max_streams", "max_strata"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise bad(name, value, "an integer ≥ 1")
        if not self.required_signals or not all(isinstance(s, Signal) for s in self.required_signals):
            raise bad("required_signals", self.required_signals, f"a non-empty set of {', '.join(Signal)}")
        if not self.alternatives:
            raise bad("alternatives", self.alternatives, "at least one (rate ratio, weight) pair")
        for pair in self.alternatives:
            ratio, weight = pair if isinstance(pair, tuple) and len(pair) == 2 else (math.nan, math.nan)
            numbers = all(isinstance(v, float | int) and not isinstance(v, bool) for v in (ratio, weight))
            if not (numbers and ratio > 1.0 and weight > 0.0 and math.isfinite(weight)):  # ratio may be math.inf
                raise bad("alternatives", pair, "a rate ratio > 1 (or inf) with a weight > 0")
        if math.fsum(w for _, w in self.alternatives) > 1.0 + 1e-9:
            raise bad("alternatives", self.alternatives, "weights summing to at most 1")


@dataclass(frozen=True, slots=True)
class StreamEvidence:
    """What the gate saw and concluded for one stream; every decision keeps its evidence.

    ``e_value`` is the halt statistic (``inf`` if it overflowed), ``threshold`` the value it must
    reach to halt, ``null_share`` the chance that a failing host is an updated one if the update
    were harmless (``p0``; None when compared with the baseline).  ``ratio_upper`` bounds the
    treated/control rate ratio (None without a usable control), ``rate_upper`` the treated failure
    rate per host-hour (None without host-hours); both are upper confidence bounds at level
    ``beta / K`` (see the module docstring for when they are anytime-valid).  ``reference`` is
    None for invalid counts.
    """

    counts: StreamCounts
    reference: Reference | None
    null_share: float | None
    e_value: float
    threshold: float
    ratio_upper: float | None
    rate_upper: float | None
    verdict: Verdict
    reason: str

    @property
    def signal(self) -> Signal:
        """The stream's signal."""
        return self.counts.signal

    @property
    def stratum(self) -> str:
        """The stream's stratum."""
        return self.counts.stratum


@dataclass(frozen=True, slots=True)
class GateResult:
    """The gate's verdict, one sentence with the numbers, the evidence per stream and the stream
    that decided (the one over its threshold, or furthest from promotion; None if none applies)."""

    verdict: Verdict
    reason: str
    streams: tuple[StreamEvidence, ...]
    worst: StreamEvidence | None


# --------------------------------------------------------------------------------------------
# Statistics (pure numbers; vectorised over counts so the simulator can use them in bulk)
# --------------------------------------------------------------------------------------------

FloatArray = npt.NDArray[np.float64]


def _split(alternatives: Sequence[tuple[float, float]]) -> tuple[FloatArray, FloatArray]:
    ratios = np.array([a[0] for a in alternatives], dtype=np.float64)
    log_w = np.log(np.array([a[1] for a in alternatives], dtype=np.float64))
    return ratios, log_w


def _logsumexp(terms: FloatArray) -> FloatArray:
    """log Σ exp over the last axis, exact for -inf terms and +inf (an overflowed bet)."""
    top = np.max(terms, axis=-1, keepdims=True)
    shift = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(terms - shift), axis=-1)) + shift[..., 0]
    return np.asarray(np.where(np.isposinf(top[..., 0]), np.inf, out), dtype=np.float64)


def log_e_value_vs_control(
    treated_failed: npt.ArrayLike,
    control_failed: npt.ArrayLike,
    null_share: npt.ArrayLike,
    alternatives: Sequence[tuple[float, float]] = DEFAULT_ALTERNATIVES,
) -> FloatArray:
    """Natural log of the conditional mixture e-value ``Σ_j w_j θ_j^x1 / (1 + (θ_j - 1) p0)^x``.

    ``p0 = null_share`` is the chance, if the update were harmless, that a failing host is an
    updated one (at most the treated share of hosts at risk); arrays broadcast.  No failing host
    gives ``log(Σ w_j)`` (no evidence).
    """
    x1 = np.asarray(treated_failed, dtype=np.float64)[..., None]
    x0 = np.asarray(control_failed, dtype=np.float64)[..., None]
    p0 = np.asarray(null_share, dtype=np.float64)[..., None]
    ratios, log_w = _split(alternatives)
    x = x1 + x0
    finite = np.isfinite(ratios)
    safe = np.where(finite, ratios, 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = x1 * np.log(safe) - x * np.log1p((safe - 1.0) * p0)
        # θ = ∞: p_j = 1, so the term is -x1·log p0 when no control host failed, else -inf.
        inf_term = np.where(x0 > 0, -np.inf, np.where(x1 > 0, -x1 * np.log(p0), 0.0))
    terms = np.where(finite, term, inf_term) + log_w
    return _logsumexp(terms)


def log_e_value_vs_baseline(
    treated_failed: npt.ArrayLike,
    treated_exposure: npt.ArrayLike,
    baseline_rate: float,
    alternatives: Sequence[tuple[float, float]] = DEFAULT_ALTERNATIVES,
) -> FloatArray:
    """Natural log of the Poisson mixture e-value ``Σ_j w_j θ_j^x1 exp(-(θ_j - 1) μ)``, ``μ = rate · e1``."""
    x1 = np.asarray(treated_failed, dtype=np.float64)[..., None]
    mu = baseline_rate * np.asarray(treated_exposure, dtype=np.float64)[..., None]
    ratios, log_w = _split(alternatives)
    finite = np.isfinite(ratios)
    safe = np.where(finite, ratios, 2.0)
    term = x1 * np.log(safe) - (safe - 1.0) * mu
    inf_term = np.where(mu > 0, -np.inf, np.where(x1 > 0, np.inf, 0.0))
    terms = np.where(finite, term, inf_term) + log_w
    return _logsumexp(terms)


def _mirrored(alternatives: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(log r_j or -inf, log w_j) with r_j = 1/θ_j: the alternatives below a candidate bound."""
    return [(-math.log(ratio) if math.isfinite(ratio) else -math.inf, math.log(weight)) for ratio, weight in alternatives]


def _lse(values: list[float]) -> float:
    top = max(values)
    if math.isinf(top):
        return top
    return top + math.log(math.fsum(math.exp(v - top) for v in values))


_LOG_RATIO_CAP = math.log(1e12)  # bounds above 1e12 are reported as ∞


def _invert(log_e: Callable[[float], float], target: float, start: float) -> float:
    """The u where an increasing log_e(u) crosses target (∞ if it stays below up to start + 200).

    Brackets by steps of 4, then the Illinois variant of regula falsi (superlinear, never leaves
    the bracket) to |Δu| < 1e-11.
    """
    lo, hi = start, start
    f_lo = log_e(lo) - target
    while f_lo >= 0:
        lo -= 4.0
        f_lo = log_e(lo) - target
    f_hi = log_e(hi) - target
    while f_hi < 0:
        lo, f_lo = hi, f_hi
        hi += 4.0
        if hi > start + 200.0:
            return math.inf
        f_hi = log_e(hi) - target
    side = 0
    for _ in range(200):
        if hi - lo < 1e-11:
            break
        if math.isinf(f_hi):  # the r = 0 bet overflowed: bisect until finite
            mid = 0.5 * (lo + hi)
        else:
            mid = hi - f_hi * (hi - lo) / (f_hi - f_lo)
            if not lo < mid < hi:
                mid = 0.5 * (lo + hi)
        f_mid = log_e(mid) - target
        if f_mid >= 0:
            hi, f_hi = mid, f_mid
            if side == 1:
                f_lo *= 0.5
            side = 1
        else:
            lo, f_lo = mid, f_mid
            if side == -1:
                f_hi *= 0.5
            side = -1
    return hi


def ratio_upper_bound(
    treated_failed: int,
    control_failed: int,
    share: float,
    level: float,
    alternatives: Sequence[tuple[float, float]] = DEFAULT_ALTERNATIVES,
) -> float:
    """Upper confidence bound on the rate ratio θ at the given level (∞ if the data cannot bound it).

    ``share`` is the treated share of host-hours ``s``; ``p(θc) = θc s / (θc s + 1 - s)``.  The bound
    is the smallest ``θc`` at which ``E⁻(θc) = Σ_j w_j r_j^x1 / (1 + (r_j - 1) p(θc))^x``, the
    mixture over ``r_j = 1/θ_j`` testing ``θ >= θc``, reaches ``1 / level``.  Anytime-valid while
    the share is constant (see the module docstring).
    """
    x1, x0 = float(treated_failed), float(control_failed)
    x = x1 + x0
    if x == 0 or not 0.0 < share < 1.0:
        return math.inf
    mirrored = _mirrored(alternatives)
    target = -math.log(level)
    log_odds0 = math.log(share) - math.log1p(-share)

    def log_e(u: float) -> float:  # u = log θc
        # log(1 - p(θc)) = -log(1 + θc s/(1-s)), computed stably for large or small u.
        z = u + log_odds0
        log_1mp = -(z + math.log1p(math.exp(-z))) if z > 0 else -math.log1p(math.exp(z))
        p = math.exp(-math.log1p(math.exp(-z))) if z > -700 else 0.0
        terms = []
        for log_r, log_w in mirrored:
            if math.isinf(log_r):  # r = 0
                terms.append(log_w - x * log_1mp if x1 == 0 else -math.inf)
            else:
                terms.append(log_w + x1 * log_r - x * math.log1p((math.exp(log_r) - 1.0) * p))
        return _lse(terms)

    # The limit as θc → ∞: Σ w_j r_j^-x0 (plus ∞ from r = 0 when x1 = 0).
    if x1 > 0 and _lse([log_w - x0 * log_r for log_r, log_w in mirrored if not math.isinf(log_r)]) < target:
        return math.inf
    u = _invert(log_e, target, 0.0)
    return math.inf if u > _LOG_RATIO_CAP else math.exp(u)


def rate_upper_bound(
    failed: int,
    exposure: float,
    level: float,
    alternatives: Sequence[tuple[float, float]] = DEFAULT_ALTERNATIVES,
) -> float:
    """Anytime-valid upper confidence bound on a failure rate per host-hour (∞ without exposure).

    The smallest ``λc`` with ``Σ_j w_j r_j^x exp((1 - r_j) λc e) >= 1 / level``.
    """
    if exposure <= 0:
        return math.inf
    x = float(failed)
    mirrored = _mirrored(alternatives)
    target = -math.log(level)
    log_exposure = math.log(exposure)

    def log_e(u: float) -> float:  # u = log(λc · e)
        mean = math.exp(u)
        terms = []
        for log_r, log_w in mirrored:
            if math.isinf(log_r):
                terms.append(log_w + mean if x == 0 else -math.inf)
            else:
                terms.append(log_w + x * log_r + (1.0 - math.exp(log_r)) * mean)
        return _lse(terms)

    u = _invert(log_e, target, math.log(x + 1.0))
    return math.exp(u - log_exposure)


# --------------------------------------------------------------------------------------------
# The gate
# --------------------------------------------------------------------------------------------

_PHRASE = {
    Signal.CRASHED: "crashed",
    Signal.SILENT: "silent",
    Signal.AUTO_REVERTED: "auto-reverted",
    Signal.INSTALL_FAILED: "failed to install",
}

_COUNT_FIELDS = ("treated_hosts", "treated_failed", "control_hosts", "control_failed")
_HOUR_FIELDS = ("treated_host_hours", "control_host_hours")


def number_words(value: float) -> str:
    """A number for people: 4,000 / 2.1e4 / 0.0021 / ∞ (both gates' reasons)."""
    if math.isinf(value):
        return "∞"
    if value >= 1e4:
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa.removesuffix('.0')}e{int(exponent)}"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2g}"



_num = number_words


def whole_problem(where: str, name: str, value: object, *, ints_only: bool = False) -> str | None:
    """Why ``value`` is not a whole number ≥ 0 (an ``int``, or also a whole ``float`` unless ``ints_only``),
    naming the field; None when it is."""
    kinds = int if ints_only else int | float
    ok = (not isinstance(value, bool) and isinstance(value, kinds) and math.isfinite(value) and value >= 0
          and value == int(value))
    return None if ok else f"{where}: {name} is {shown(value)}, expected a whole number ≥ 0"


def amount_problem(where: str, name: str, value: object, what: str = "a finite number") -> str | None:
    """Why ``value`` is not a finite number ≥ 0, naming the field; None when it is."""
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and value >= 0
    return None if ok else f"{where}: {name} is {shown(value)}, expected {what} ≥ 0"


def _name(counts: object) -> str:
    signal = getattr(counts, "signal", "?")
    stratum = getattr(counts, "stratum", "?")
    return f"{signal}/{stratum}"


def _invalid(counts: object) -> str | None:
    """Why these counts cannot be used, naming the field; None when they are fine."""
    where = f"stream {_name(counts)}"
    if not isinstance(counts, StreamCounts):
        return (f"{where}: is {describe(counts)}, expected the counts of one signal in one stratum "
                "(signal, stratum, hosts, failed and host-hours of updated and control hosts)")
    try:
        Signal(counts.signal)
    except ValueError:
        return f"{where}: signal is {shown(counts.signal)}, expected one of {', '.join(Signal)}"
    stratum: object = counts.stratum
    if not isinstance(stratum, str):
        return f"{where}: stratum is {shown(counts.stratum)}, expected a string"
    for name in _COUNT_FIELDS:
        problem = whole_problem(where, name, getattr(counts, name))
        if problem:
            return problem
    for name in _HOUR_FIELDS:
        problem = amount_problem(where, name, getattr(counts, name), "a finite number of host-hours")
        if problem:
            return problem
    for arm in ("treated", "control"):
        hosts, failed, hours = (getattr(counts, f"{arm}_{f}") for f in ("hosts", "failed", "host_hours"))
        if failed > hosts:
            return f"{where}: {arm}_failed is {failed}, more than {arm}_hosts {hosts}"
        if hours > 0 and hosts == 0:
            return f"{where}: {arm}_host_hours is {shown(hours)} but {arm}_hosts is 0"
        if failed > 0 and hours == 0:
            return f"{where}: {arm}_failed is {failed} but {arm}_host_hours is 0"
    return None


def _error(counts: StreamCounts, threshold: float, reason: str) -> StreamEvidence:
    return StreamEvidence(counts, None, None, 1.0, threshold, None, None, Verdict.ERROR, reason)


def _progress(ev: StreamEvidence, config: GateConfig) -> float:
    """How far a stream is from promotion: its best bound over what it must reach (≤ 1 passes)."""
    best = math.inf
    if ev.ratio_upper is not None:
        best = ev.ratio_upper / config.tolerance
    if ev.rate_upper is not None:
        best = min(best, ev.rate_upper / (config.tolerance * config.baseline_rate))
    return best


def _assess(counts: StreamCounts, config: GateConfig, k: int) -> StreamEvidence:
    threshold = k / config.alpha
    level = config.beta / k
    x1, x0 = int(counts.treated_failed), int(counts.control_failed)
    e1, e0 = float(counts.treated_host_hours), float(counts.control_host_hours)
    n1, n0 = int(counts.treated_hosts), int(counts.control_hosts)
    phrase = _PHRASE[Signal(counts.signal)]
    seen = f"{x1:,} of {n1:,} updated {counts.stratum} hosts {phrase}"
    rate_upper = rate_upper_bound(x1, e1, level, config.alternatives) if e1 > 0 else None
    if n0 >= config.min_control_hosts and e0 > 0:
        reference = Reference.CONTROL
        # Updated hosts only join their arm and waiting hosts only leave theirs, so this bounds the
        # updated share of hosts at risk at every earlier failure from above (rule 5).
        at_risk = n1 + n0 - x0
        null_share = n1 / at_risk if at_risk > 0 else 0.0
        log_e = float(log_e_value_vs_control(x1, x0, null_share, config.alternatives))
        ratio_upper: float | None = ratio_upper_bound(x1, x0, e1 / (e1 + e0), level, config.alternatives)
        seen += f" vs {x0:,} of {n0:,} control hosts"
    else:
        reference = Reference.BASELINE
        log_e = float(log_e_value_vs_baseline(x1, e1, config.baseline_rate, config.alternatives))
        null_share = None
        ratio_upper = None
        seen += (
            f" in {e1:,.0f} host-hours vs {config.baseline_rate * e1:.2g} expected at the baseline "
            f"{config.baseline_rate:.2g}/host-hour (only {n0:,} control hosts, need ≥ {config.min_control_hosts:,})"
        )
    e_value = math.exp(log_e) if log_e < 700 else math.inf
    tally = f"e-value {_num(e_value)}"

    def make(verdict: Verdict, reason: str) -> StreamEvidence:
        return StreamEvidence(counts, reference, null_share, e_value, threshold, ratio_upper, rate_upper, verdict, reason)

    if log_e >= math.log(threshold):
        return make(Verdict.FAILED, f"halted: {seen}; {tally} ≥ threshold {_num(threshold)}")
    if n1 < config.min_treated_hosts:
        return make(
            Verdict.INCONCLUSIVE, f"need ≥ {config.min_treated_hosts:,} updated hosts in stratum {counts.stratum}, have {n1:,}"
        )
    tol = _num(config.tolerance)
    if ratio_upper is not None and ratio_upper <= config.tolerance:
        bound = f"rate ratio ≤ {_num(ratio_upper)} ≤ tolerance {tol}"
    elif rate_upper is not None and rate_upper <= config.tolerance * config.baseline_rate:
        bound = f"rate ≤ {rate_upper:.2g}/host-hour ≤ {tol} × baseline {config.baseline_rate:.2g}"
    else:
        shown = []
        if ratio_upper is not None:
            shown.append(f"rate ratio ≤ {_num(ratio_upper)}" if math.isfinite(ratio_upper) else "rate ratio not yet bounded")
        if rate_upper is not None:
            shown.append(f"rate ≤ {rate_upper:.2g}/host-hour")
        need = f"need ratio ≤ {tol} or rate ≤ {config.tolerance * config.baseline_rate:.2g}/host-hour"
        progress = f"{' and '.join(shown)}, " if shown else "no host-hours yet, "
        return make(Verdict.INCONCLUSIVE, f"not yet conclusive: {seen}; {progress}{need}; {tally} < threshold {_num(threshold)}")
    return make(Verdict.SUCCESSFUL, f"passed: {seen}; {bound}")


def evaluate(
    streams: Sequence[StreamCounts],
    config: GateConfig = GateConfig(),  # frozen, so one shared default is safe
    *,
    expected_strata: Collection[str] = (),
) -> GateResult:
    """Decide the gate from aggregated counts per stream; see the module docstring for the rules.

    ``expected_strata`` names strata the wave covers; one with no streams at all keeps the gate
    Inconclusive (a data source that lost a stratum must not let it promote).  Never raises for
    bad counts: they give an ERROR verdict naming the stream and field.
    """
    k = max(config.max_streams, len(streams))
    threshold = k / config.alpha
    evidence: list[StreamEvidence] = []
    seen_keys: set[tuple[str, str]] = set()
    for counts in streams:
        problem = _invalid(counts)
        if problem is None:
            key = (str(counts.signal), counts.stratum)
            if key in seen_keys:
                problem = f"stream {_name(counts)}: appears more than once"
            seen_keys.add(key)
        evidence.append(_error(counts, threshold, f"error: {problem}") if problem else _assess(counts, config, k))
    result = tuple(evidence)

    failed = [e for e in result if e.verdict is Verdict.FAILED]
    if failed:
        worst = max(failed, key=lambda e: e.e_value / e.threshold)
        more = f" (and {len(failed) - 1:,} more streams over threshold)" if len(failed) > 1 else ""
        return GateResult(Verdict.FAILED, worst.reason + more, result, worst)
    errors = [e for e in result if e.verdict is Verdict.ERROR]
    if errors:
        more = f" (and {len(errors) - 1:,} more invalid streams)" if len(errors) > 1 else ""
        return GateResult(Verdict.ERROR, errors[0].reason + more, result, errors[0])
    if not result:
        return GateResult(
            Verdict.INCONCLUSIVE, "inconclusive: no health data yet; the gate never promotes without data", result, None
        )

    strata = list(dict.fromkeys([e.stratum for e in result] + list(expected_strata)))
    present = {(e.signal, e.stratum) for e in result}
    missing = [(s, st) for st in strata for s in Signal if s in config.required_signals and (s, st) not in present]
    if missing:
        signal, stratum = missing[0]
        more = f" (and {len(missing) - 1:,} more missing streams)" if len(missing) > 1 else ""
        return GateResult(Verdict.INCONCLUSIVE, f"inconclusive: no {signal} data for stratum {stratum}{more}", result, None)

    pending = [e for e in result if e.verdict is Verdict.INCONCLUSIVE]
    if pending:
        short = [e for e in pending if e.counts.treated_hosts < config.min_treated_hosts]
        worst = min(short, key=lambda e: e.counts.treated_hosts) if short else max(pending, key=lambda e: _progress(e, config))
        detail = worst.reason.removeprefix("not yet conclusive: ")
        reason = f"inconclusive: {detail} ({len(pending):,} of {len(result):,} streams not yet conclusive)"
        return GateResult(Verdict.INCONCLUSIVE, reason, result, worst)

    worst = max(result, key=lambda e: _progress(e, config))
    where = f"{len(strata):,} {'stratum' if len(strata) == 1 else 'strata'}"
    reason = (
        f"promote: all {len(result):,} streams in {where} are within tolerance {_num(config.tolerance)}; "
        f"closest: {worst.reason.removeprefix('passed: ')}"
    )
    return GateResult(Verdict.SUCCESSFUL, reason, result, worst)
