"""The health gate (ringfence.domain.gate): exact statistics, scenarios, Monte-Carlo, properties."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate, special, stats

from ringfence.domain.gate import (
    DEFAULT_ALTERNATIVES,
    GateConfig,
    Reference,
    Signal,
    StreamCounts,
    Verdict,
    evaluate,
    log_e_value_vs_baseline,
    log_e_value_vs_control,
    rate_upper_bound,
    ratio_upper_bound,
)
from ringfence.errors import InputError

CS = "windows/22631|Latitude 7440|CrowdStrike"


def stream(
    signal: Signal = Signal.SILENT,
    stratum: str = CS,
    treated: tuple[int, int, float] = (100, 0, 1_000.0),
    control: tuple[int, int, float] = (4_100, 0, 41_000.0),
) -> StreamCounts:
    """One stream from (hosts, failed, host-hours) per arm."""
    return StreamCounts(signal, stratum, *treated, *control)


def stratum_streams(stratum: str, treated: tuple[int, int, float], control: tuple[int, int, float]) -> list[StreamCounts]:
    """The same counts for every signal of one stratum."""
    return [stream(signal, stratum, treated, control) for signal in Signal]


def q_of(theta: float, p0: float) -> float:
    """Chance a failing host is treated at rate ratio theta when it is p0 at ratio 1."""
    return 1.0 if math.isinf(theta) else theta * p0 / (theta * p0 + 1.0 - p0)


# ---------------------------------------------------------------------------------------------
# The statistics against exact computations
# ---------------------------------------------------------------------------------------------

CASES = [(0, 0, 0.1), (1, 0, 1 / 4101), (3, 0, 12 / 4112), (3, 2, 0.05), (7, 40, 0.1), (30, 100, 0.093), (50, 50, 0.5)]


@pytest.mark.parametrize(("x1", "x0", "p0"), CASES)
def test_simple_alternative_equals_the_sprt_likelihood_ratio(x1: int, x0: int, p0: float) -> None:
    """With one alternative θ = 2 at weight 1 the e-value is the binomial SPRT ratio."""
    q = q_of(2.0, p0)
    sprt = stats.binom.pmf(x1, x1 + x0, q) / stats.binom.pmf(x1, x1 + x0, p0)
    got = float(log_e_value_vs_control(x1, x0, p0, ((2.0, 1.0),)))
    assert got == pytest.approx(math.log(sprt), abs=1e-9)


@pytest.mark.parametrize(("x1", "x0", "p0"), CASES)
def test_mixture_equals_the_weighted_sum_of_binomial_ratios(x1: int, x0: int, p0: float) -> None:
    """The default mixture, θ = ∞ included, term by term with scipy."""
    direct = sum(
        w * stats.binom.pmf(x1, x1 + x0, q_of(theta, p0)) / stats.binom.pmf(x1, x1 + x0, p0) for theta, w in DEFAULT_ALTERNATIVES
    )
    assert float(log_e_value_vs_control(x1, x0, p0)) == pytest.approx(math.log(direct), abs=1e-9)


def test_a_fine_grid_of_alternatives_equals_the_integral_over_its_prior() -> None:
    """A grid of ratios with equal weights is the mixture integral over log θ ~ Uniform(0, log 10)."""
    x1, x0, p0 = 6, 20, 0.1
    cells = 4_000
    edges = np.linspace(0.0, math.log(10.0), cells + 1)
    grid = tuple((float(math.exp(u)), 1.0 / cells) for u in 0.5 * (edges[1:] + edges[:-1]))

    def lr(u: float) -> float:
        q = q_of(math.exp(u), p0)
        return float(stats.binom.pmf(x1, x1 + x0, q) / stats.binom.pmf(x1, x1 + x0, p0)) / math.log(10.0)

    integral, _ = integrate.quad(lr, 0.0, math.log(10.0), epsabs=1e-12, epsrel=1e-10)
    assert math.exp(float(log_e_value_vs_control(x1, x0, p0, grid))) == pytest.approx(integral, rel=1e-6)


@pytest.mark.parametrize("total", [1, 2, 5, 20, 60])
@pytest.mark.parametrize("p0", [0.003, 0.1, 0.5])
def test_expected_e_value_under_the_null_is_at_most_one(total: int, p0: float) -> None:
    """E[e-value] = Σ w_j = 1 when p = p0 exactly, and less when updated hosts fail less (p < p0)."""
    k = np.arange(total + 1)
    e = np.exp(log_e_value_vs_control(k, total - k, p0))
    assert float(np.sum(stats.binom.pmf(k, total, p0) * e)) == pytest.approx(1.0, rel=1e-9)
    assert float(np.sum(stats.binom.pmf(k, total, 0.7 * p0) * e)) < 1.0


@pytest.mark.parametrize(("x1", "exposure", "rate"), [(0, 10.0, 1e-3), (3, 24.0, 1e-3), (12, 5_000.0, 1e-3), (40, 4_000.0, 1e-2)])
def test_baseline_e_value_is_the_poisson_mixture(x1: int, exposure: float, rate: float) -> None:
    """Against the baseline: Σ w_j Poisson(x1; θ_j μ) / Poisson(x1; μ); θ = ∞ adds nothing when μ > 0."""
    mu = rate * exposure
    direct = sum(
        w * stats.poisson.pmf(x1, theta * mu) / stats.poisson.pmf(x1, mu)
        for theta, w in DEFAULT_ALTERNATIVES
        if math.isfinite(theta)
    )
    assert float(log_e_value_vs_baseline(x1, exposure, rate)) == pytest.approx(math.log(direct), abs=1e-9)
    k = np.arange(int(1.2e4 * mu) + 200)  # past the mean of the largest finite bet, θ = 1e4
    log_mean = special.logsumexp(stats.poisson.logpmf(k, mu) + log_e_value_vs_baseline(k, exposure, rate))
    assert math.exp(log_mean) == pytest.approx(sum(w for t, w in DEFAULT_ALTERNATIVES if math.isfinite(t)), rel=1e-9)


def brute_force_ratio_bound(x1: int, x0: int, share: float, level: float) -> float:
    """Scan θc on a fine log grid; the first where the mirrored mixture, from scipy, reaches 1/level."""
    thetas = np.exp(np.linspace(math.log(1e-3), math.log(1e4), 60_001))
    x = x1 + x0
    p_c = thetas * share / (thetas * share + 1.0 - share)
    terms = []
    for theta, w in DEFAULT_ALTERNATIVES:
        q = p_c / (theta * (1.0 - p_c) + p_c)  # the ratio 1/θ below θc
        terms.append(math.log(w) + stats.binom.logpmf(x1, x, q) - stats.binom.logpmf(x1, x, p_c))
    log_e = special.logsumexp(terms, axis=0)
    hits = np.nonzero(log_e >= -math.log(level))[0]
    return float(thetas[hits[0]]) if hits.size else math.inf


@pytest.mark.parametrize(
    ("x1", "x0", "share"), [(0, 30, 0.01), (5, 50, 0.0909), (10, 1_000, 0.0099), (40, 40, 0.5), (3, 0, 0.01)]
)
def test_ratio_bound_agrees_with_brute_force_inversion(x1: int, x0: int, share: float) -> None:
    """The root-found bound equals the scan up to its grid step (2.7e-4 in log θ)."""
    level = 0.01 / 40
    got = ratio_upper_bound(x1, x0, share, level)
    want = brute_force_ratio_bound(x1, x0, share, level)
    if math.isinf(want):
        assert math.isinf(got)
    else:
        assert math.log(got) == pytest.approx(math.log(want), abs=3e-4)


@pytest.mark.parametrize(("failed", "exposure"), [(0, 4_000.0), (3, 100.0), (10, 1_000.0), (200, 50_000.0)])
def test_rate_bound_agrees_with_brute_force_inversion(failed: int, exposure: float) -> None:
    """The rate bound equals a scan of Σ w_j Poisson(x; r_j λc e) / Poisson(x; λc e) over λc."""
    level = 0.01 / 40
    rates = np.exp(np.linspace(math.log(1e-6), math.log(1.0), 60_001))
    mean = rates * exposure
    log_e = special.logsumexp(
        [
            math.log(w) + stats.poisson.logpmf(failed, mean / theta) - stats.poisson.logpmf(failed, mean)
            for theta, w in DEFAULT_ALTERNATIVES
        ],
        axis=0,
    )
    want = float(rates[np.nonzero(log_e >= -math.log(level))[0][0]])
    assert math.log(rate_upper_bound(failed, exposure, level)) == pytest.approx(math.log(want), abs=3e-4)


def test_bounds_need_data() -> None:
    """No failing host on either side bounds no ratio; no host-hours bound no rate."""
    assert math.isinf(ratio_upper_bound(0, 0, 0.1, 0.01))
    assert math.isinf(rate_upper_bound(0, 0.0, 0.01))
    # Zero failures in 4,840 host-hours: between log(4,000) / 4,840 and log(4,000 / w_∞) / 4,840 ≈ 2e-3.
    assert math.log(4_000) / 4_840 < rate_upper_bound(0, 4_840.0, 0.01 / 40) < math.log(4_000 / 0.25) / 4_840


# ---------------------------------------------------------------------------------------------
# p1 = 1: how many failing hosts halt
# ---------------------------------------------------------------------------------------------


def hosts_to_halt(treated: int, control: int, control_failed: int = 0, config: GateConfig | None = None) -> int:
    """Failing treated hosts (out of `treated`) at which the stream first halts; 0 if it never does."""
    config = config or GateConfig()
    for failed in range(1, treated + 1):
        s = stream(Signal.SILENT, CS, (treated, failed, float(treated)), (control, control_failed, float(control)))
        if evaluate([s], config).verdict is Verdict.FAILED:
            return failed
    return 0


def test_one_failing_host_is_nearly_enough_and_two_or_three_certainly_are() -> None:
    """At α = 0.01 split over 40 streams (threshold 4,000)."""
    alone = evaluate([stream(Signal.SILENT, CS, (1, 1, 1.0), (4_100, 0, 4_100.0))])
    assert alone.verdict is Verdict.INCONCLUSIVE
    assert 1_000 < alone.streams[0].e_value < 4_000  # ≈ w_∞ / p0 = 0.25 × 4,101, a factor 4 short
    assert hosts_to_halt(12, 4_100) == 2
    assert hosts_to_halt(12, 4_100, control_failed=4) == 3  # background silence in the control
    assert hosts_to_halt(100, 10_000) == 3  # a 1 % canary
    # One host is enough when the control is large enough: w_∞ / p0 ≥ 4,000.
    assert hosts_to_halt(1, 20_000) == 1


def test_the_halt_reason_reads_like_the_design() -> None:
    """'halted: 3 of 12 updated windows/22631 hosts silent vs 0 of 4,100 control hosts; e-value … ≥ threshold …'."""
    result = evaluate([stream(Signal.SILENT, "windows/22631", (12, 3, 12.0), (4_100, 0, 4_100.0))], GateConfig(max_streams=20))
    assert result.verdict is Verdict.FAILED
    assert result.reason.startswith("halted: 3 of 12 updated windows/22631 hosts silent vs 0 of 4,100 control hosts; e-value ")
    assert result.reason.endswith(" ≥ threshold 2,000")
    assert result.worst is not None and result.worst.e_value >= result.worst.threshold == 2_000


# ---------------------------------------------------------------------------------------------
# Scenario table
# ---------------------------------------------------------------------------------------------

GOOD = (500, 1, 10_000.0)  # 1e-4 failures per host-hour, far below 2 × the 1e-3 baseline
GOOD_CONTROL = (5_000, 10, 100_000.0)
STRATA = [f"windows/2263{i}|Latitude 7440|CrowdStrike" for i in range(5)] + [
    f"linux/6.{i}|PowerEdge R650|Falcon" for i in range(5)
]


def fleet(**overrides: tuple[tuple[int, int, float], tuple[int, int, float]]) -> list[StreamCounts]:
    """Ten strata × four signals of a good release; overrides[signal] = (treated, control) in STRATA[0]."""
    out = []
    for stratum in STRATA:
        for signal in Signal:
            treated, control = GOOD, GOOD_CONTROL
            if stratum == STRATA[0] and signal.name.lower() in overrides:
                treated, control = overrides[signal.name.lower()]
            out.append(stream(signal, stratum, treated, control))
    return out


SCENARIOS = [
    # (name, streams, config, expected verdict, words the reason must contain)
    ("good release with plenty of data", fleet(), GateConfig(), Verdict.SUCCESSFUL, "promote: all 40 streams in 10 strata"),
    (
        "silent regression in one stratum",
        fleet(silent=((500, 25, 10_000.0), (5_000, 10, 100_000.0))),
        GateConfig(),
        Verdict.FAILED,
        f"halted: 25 of 500 updated {STRATA[0]} hosts silent vs 10 of 5,000 control hosts",
    ),
    (
        "too few updated hosts",
        fleet(crashed=((3, 0, 60.0), GOOD_CONTROL)),
        GateConfig(),
        Verdict.INCONCLUSIVE,
        f"need ≥ 10 updated hosts in stratum {STRATA[0]}, have 3",
    ),
    ("no data", [], GateConfig(), Verdict.INCONCLUSIVE, "no health data yet"),
    ("zero hosts", stratum_streams(CS, (0, 0, 0.0), (0, 0, 0.0)), GateConfig(), Verdict.INCONCLUSIVE, "have 0"),
    (
        "a signal missing",
        [s for s in fleet() if not (s.stratum == STRATA[3] and s.signal is Signal.SILENT)],
        GateConfig(),
        Verdict.INCONCLUSIVE,
        f"no silent data for stratum {STRATA[3]}",
    ),
    (
        "not enough exposure yet",
        stratum_streams(CS, (50, 0, 100.0), (4_100, 0, 8_200.0)),
        GateConfig(),
        Verdict.INCONCLUSIVE,
        "need ratio ≤ 2 or rate ≤ 0.002/host-hour",
    ),
    ("negative counts", fleet(crashed=((500, -1, 10_000.0), GOOD_CONTROL)), GateConfig(), Verdict.ERROR, "treated_failed is -1"),
    (
        "more failed than hosts",
        fleet(silent=(GOOD, (5_000, 5_001, 100_000.0))),
        GateConfig(),
        Verdict.ERROR,
        "control_failed is 5001, more than control_hosts 5000",
    ),
    (
        "NaN host-hours",
        fleet(crashed=((500, 0, math.nan), GOOD_CONTROL)),
        GateConfig(),
        Verdict.ERROR,
        "treated_host_hours is nan",
    ),
    (
        "failures without host-hours",
        fleet(crashed=((500, 2, 0.0), GOOD_CONTROL)),
        GateConfig(),
        Verdict.ERROR,
        "treated_host_hours is 0",
    ),
    ("a stream twice", [*fleet(), fleet()[5]], GateConfig(), Verdict.ERROR, "appears more than once"),
    (
        "a halt outranks an error elsewhere",
        [
            stream(Signal.SILENT, s.stratum, (500, 30, 10_000.0), GOOD_CONTROL)
            if (s.stratum, s.signal) == (STRATA[9], "silent")
            else s
            for s in fleet(crashed=((500, -1, 10_000.0), GOOD_CONTROL))
        ],
        GateConfig(),
        Verdict.FAILED,
        "halted: 30 of 500",
    ),
    (
        "no control: crash burst against the baseline",
        stratum_streams(CS, (12, 3, 24.0), (5, 0, 10.0)),
        GateConfig(),
        Verdict.FAILED,
        "expected at the baseline 0.001/host-hour (only 5 control hosts, need ≥ 20)",
    ),
    (
        "no control: quiet and long enough",
        stratum_streams(CS, (400, 0, 8_000.0), (0, 0, 0.0)),
        GateConfig(),
        Verdict.SUCCESSFUL,
        "/host-hour ≤ 2 × baseline 0.001",
    ),
    (
        "busy signal bounded by the ratio",
        stratum_streams(CS, (1_000, 150, 30_000.0), (9_000, 1_350, 270_000.0)),
        GateConfig(),
        Verdict.SUCCESSFUL,
        "rate ratio ≤ 1.",
    ),
]


@pytest.mark.parametrize(("streams", "config", "verdict", "words"), [pytest.param(*row[1:], id=row[0]) for row in SCENARIOS])
def test_scenario(streams: list[StreamCounts], config: GateConfig, verdict: Verdict, words: str) -> None:
    """Each named row gets its verdict and a reason that says why."""
    result = evaluate(streams, config)
    assert result.verdict is verdict, result.reason
    assert words in result.reason, result.reason
    assert len(result.streams) == len(streams)


def test_a_stratum_the_wave_covers_but_no_data_names_is_inconclusive() -> None:
    """A data source that lost a whole stratum cannot let the gate promote."""
    result = evaluate(fleet(), expected_strata=[*STRATA, "macos/14.5|MacBook Pro|Jamf"])
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "no crashed data for stratum macos/14.5|MacBook Pro|Jamf (and 3 more missing streams)" in result.reason


def test_a_regression_confined_to_one_stratum_halts_there_while_the_pooled_numbers_look_normal() -> None:
    """3× the crash rate in one of ten strata: stratified it halts; pooled, the excess drowns."""
    bad, other = STRATA[7], (400, 10, 4_000.0)
    per_stratum = [stream(Signal.CRASHED, s, (400, 30, 4_000.0) if s == bad else other, (4_000, 100, 40_000.0)) for s in STRATA]
    pooled_treated = (sum(s.treated_hosts for s in per_stratum), sum(s.treated_failed for s in per_stratum), 40_000.0)
    pooled_control = (sum(s.control_hosts for s in per_stratum), sum(s.control_failed for s in per_stratum), 400_000.0)
    pooled_ratio = (pooled_treated[1] / pooled_treated[2]) / (pooled_control[1] / pooled_control[2])
    assert pooled_ratio == pytest.approx(1.2)

    result = evaluate(per_stratum, GateConfig(required_signals=frozenset({Signal.CRASHED})))
    assert result.verdict is Verdict.FAILED
    assert result.worst is not None and result.worst.stratum == bad
    assert [e.stratum for e in result.streams if e.verdict is Verdict.FAILED] == [bad]
    assert result.reason.startswith(f"halted: 30 of 400 updated {bad} hosts crashed vs 100 of 4,000 control hosts")

    pooled = evaluate([stream(Signal.CRASHED, "all", pooled_treated, pooled_control)], GateConfig(max_streams=1))
    assert pooled.verdict is not Verdict.FAILED
    assert pooled.streams[0].e_value < 10
    same = [stream(Signal.CRASHED, s, other, (4_000, 100, 40_000.0)) for s in STRATA]  # the control: no regression
    assert evaluate(same, GateConfig(required_signals=frozenset({Signal.CRASHED}))).verdict is not Verdict.FAILED


class Rollout:
    """A stratum with a wave opening over time, simulated hour by hour (or finer) with numpy.

    Failing hosts leave the risk set; treated hosts come from control hosts still at risk.
    """

    def __init__(self, rng: np.random.Generator, hosts: int) -> None:
        self.rng = rng
        self.at_risk = np.array([0, hosts])  # [treated, control]
        self.hosts = np.array([0, hosts])
        self.failed = np.array([0, 0])
        self.hours = np.array([0.0, 0.0])

    def update(self, count: int) -> None:
        """Move `count` control hosts still at risk to the treated arm."""
        count = min(count, int(self.at_risk[1]))
        self.at_risk += (count, -count)
        self.hosts += (count, -count)

    def tick(self, rates: tuple[float, float], dt: float = 1.0) -> None:
        """One step: each host at risk fails with 1 - exp(-rate × dt)."""
        fails = self.rng.binomial(self.at_risk, -np.expm1(-np.array(rates) * dt))
        self.hours += (self.at_risk - fails / 2) * dt
        self.at_risk -= fails
        self.failed += fails

    def counts(self, signal: Signal, stratum: str) -> StreamCounts:
        """The aggregate the gate sees."""
        h, f, e = self.hosts, self.failed, self.hours
        return StreamCounts(signal, stratum, int(h[0]), int(f[0]), float(e[0]), int(h[1]), int(f[1]), float(e[1]))


def test_crowdstrike_like_release_halts_after_at_most_three_failing_hosts() -> None:
    """Every updated host of one stratum goes silent; the control has its usual background silence."""
    rng = np.random.default_rng(19_07_2024)
    rollouts = {(s, g): Rollout(rng, 4_112) for s in STRATA for g in Signal}
    minutes = 1 / 60
    for minute in range(24 * 60):
        for (stratum, signal), r in rollouts.items():
            if minute % 5 == 0 and r.hosts[0] < 12:
                r.update(1)  # one host per stratum every five minutes
            bad = stratum == STRATA[0] and signal is Signal.SILENT
            r.tick((60.0 if bad else 1e-3, 1e-3), minutes)  # a bad host goes silent within a minute or so
        result = evaluate([r.counts(g, s) for (s, g), r in rollouts.items()])
        if result.verdict is Verdict.FAILED:
            break
    else:
        pytest.fail("the CrowdStrike-like release never halted")
    assert result.worst is not None and result.worst.stratum == STRATA[0] and result.worst.signal is Signal.SILENT
    assert 1 <= result.worst.counts.treated_failed <= 3, result.reason


def test_good_release_with_diurnal_noise_and_a_fleet_wide_shock_never_halts() -> None:
    """A wave that opens over 8 hours, a ±80 % daily swing and a 20× silence shock at hour 5 (mid-opening).

    The shock multiplies silence in control and updated hosts alike, while the updated share is still growing.
    """
    rng = np.random.default_rng(7)
    base = {Signal.CRASHED: 2e-4, Signal.SILENT: 3e-3, Signal.AUTO_REVERTED: 1e-4, Signal.INSTALL_FAILED: 5e-4}
    rollouts = {(s, g): Rollout(rng, 4_400) for s in STRATA for g in Signal}
    verdicts = []
    for hour in range(96):
        swing = 1.0 + 0.8 * math.sin(2 * math.pi * hour / 24)
        for (_, signal), r in rollouts.items():
            if hour < 8:
                r.update(50)
            rate = base[signal] * swing * (20.0 if hour == 5 and signal is Signal.SILENT else 1.0)
            r.tick((rate, rate))
        result = evaluate([r.counts(g, s) for (s, g), r in rollouts.items()])
        assert result.verdict is not Verdict.FAILED, f"hour {hour}: {result.reason}"
        verdicts.append(result.verdict)
    assert verdicts[0] is Verdict.INCONCLUSIVE  # early on there is not enough data to promote ...
    assert verdicts[-1] is Verdict.SUCCESSFUL  # ... and after four days there is (from hour 47 with this seed)


# ---------------------------------------------------------------------------------------------
# Monte-Carlo: repeated looks do not inflate the false-halt rate
# ---------------------------------------------------------------------------------------------


def simulate_null(
    rng: np.random.Generator, reps: int, looks: int, shape: tuple[int, ...] = (), opening: tuple[int, int] = (20, 2_000)
) -> tuple[np.ndarray, np.ndarray]:
    """Max over `looks` hourly looks of the log e-value of good releases (rate ratio 1).

    Each replicate is a stratum of 2,000 hosts whose wave grows by opening[0] hosts an hour up to
    opening[1], with a daily ±80 % swing and a 30× fleet-wide shock in one random hour.  Returns
    the gate's statistic and, for contrast, the same mixture with the naive null share
    ``e1 / (e1 + e0)`` from cumulative host-hours, which a growing wave during a shock fools.
    """
    size = (reps, *shape)
    treated, control = np.zeros(size, dtype=np.int64), np.full(size, 2_000, dtype=np.int64)
    n1 = np.zeros(size, dtype=np.int64)
    x1, x0, e1, e0 = np.zeros(size), np.zeros(size), np.zeros(size), np.zeros(size)
    shock = rng.integers(0, looks, size)
    best, naive = np.full(size, -np.inf), np.full(size, -np.inf)
    for t in range(looks):
        moved = np.minimum(control, np.clip(opening[1] - n1, 0, opening[0]))
        control -= moved
        treated += moved
        n1 += moved
        rate = 5e-3 * (1.0 + 0.8 * math.sin(2 * math.pi * t / 24)) * np.where(shock == t, 30.0, 1.0)
        p = -np.expm1(-rate)
        f1, f0 = rng.binomial(treated, p), rng.binomial(control, p)
        e1 += treated - f1 / 2
        e0 += control - f0 / 2
        treated -= f1
        control -= f0
        x1 += f1
        x0 += f0
        # The gate's null share: updated hosts over updated + control hosts still at risk.
        best = np.maximum(best, log_e_value_vs_control(x1, x0, n1 / (n1 + control)))
        naive = np.maximum(naive, log_e_value_vs_control(x1, x0, e1 / (e1 + e0)))
    return best, naive


@pytest.mark.parametrize(
    "opening", [pytest.param((200, 200), id="wave opened at once"), pytest.param((20, 2_000), id="wave growing")]
)
def test_false_halt_rate_per_stream_stays_below_alpha_under_fifty_looks(opening: tuple[int, int]) -> None:
    """20,000 good-release streams, 50 looks each, per-stream α = 0.05: halts ≤ α (Ville).

    Measured: 0.004 with the wave opened at once, 0.0006 with it growing; the naive host-hour share
    halts 0.009 and 0.41 of the time respectively.
    """
    best, naive = simulate_null(np.random.default_rng(2024), reps=20_000, looks=50, opening=opening)
    slack = 3 * math.sqrt(0.05 * 0.95 / 20_000)
    assert float(np.mean(best >= math.log(1 / 0.05))) <= 0.05 + slack
    if opening[0] < opening[1]:  # the scenario has teeth: cumulative host-hours would break α
        assert float(np.mean(naive >= math.log(1 / 0.05))) > 0.05 + slack


def test_false_halt_rate_of_the_whole_gate_stays_below_alpha() -> None:
    """2,000 gates of 40 streams at α = 0.01 (threshold 4,000), 50 looks each."""
    best, naive = simulate_null(np.random.default_rng(99), reps=2_000, looks=50, shape=(40,))
    rate = float(np.mean(np.any(best >= math.log(40 / 0.01), axis=1)))
    assert rate <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / 2_000)  # measured 0
    assert float(np.mean(np.any(naive >= math.log(40 / 0.01), axis=1))) > 0.5  # the naive share: every gate halts


def test_false_halt_rate_through_evaluate() -> None:
    """The same check through the gate itself (one stream, α = 0.1, 300 replicates × 50 looks)."""
    rng = np.random.default_rng(5)
    config = GateConfig(alpha=0.1, max_streams=1, required_signals=frozenset({Signal.CRASHED}))
    halted = 0
    for _ in range(300):
        r = Rollout(rng, 2_000)
        shock = int(rng.integers(0, 50))
        for t in range(50):
            r.update(20)
            rate = 5e-3 * (1.0 + 0.8 * math.sin(2 * math.pi * t / 24)) * (30.0 if t == shock else 1.0)
            r.tick((rate, rate))
            if evaluate([r.counts(Signal.CRASHED, "s")], config).verdict is Verdict.FAILED:
                halted += 1
                break
    assert halted / 300 <= 0.1 + 3 * math.sqrt(0.1 * 0.9 / 300)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


@st.composite
def valid_counts(draw: st.DrawFn, signal: Signal | None = None, stratum: str | None = None) -> StreamCounts:
    """Consistent counts: failed ≤ hosts, host-hours present when hosts are."""
    n1 = draw(st.integers(0, 5_000))
    n0 = draw(st.integers(0, 50_000))
    x1 = draw(st.integers(0, n1))
    x0 = draw(st.integers(0, n0))
    e1 = draw(st.floats(1.0, 1e6)) if n1 else 0.0
    e0 = draw(st.floats(1.0, 1e7)) if n0 else 0.0
    return StreamCounts(
        signal or draw(st.sampled_from(list(Signal))), stratum or draw(st.sampled_from(STRATA[:3])), n1, x1, e1, n0, x0, e0
    )


@given(counts=valid_counts(), extra=st.integers(1, 50), min_control=st.integers(1, 100))
def test_more_failing_updated_hosts_never_lower_the_e_value(counts: StreamCounts, extra: int, min_control: int) -> None:
    """Against the control or the baseline, one more failing updated host only adds evidence."""
    more = replace(counts, treated_hosts=counts.treated_hosts + extra, treated_failed=counts.treated_failed + extra)
    if more.treated_host_hours == 0:
        more = replace(more, treated_host_hours=1.0)
        counts = replace(counts, treated_hosts=more.treated_hosts, treated_host_hours=1.0)
    else:
        counts = replace(counts, treated_hosts=more.treated_hosts)
    config = GateConfig(min_control_hosts=min_control)
    before, after = evaluate([counts], config).streams[0], evaluate([more], config).streams[0]
    assert before.verdict is not Verdict.ERROR and after.verdict is not Verdict.ERROR
    assert after.e_value >= before.e_value * (1 - 1e-12)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), strata=st.integers(1, 3), min_treated=st.integers(1, 200))
def test_never_successful_with_a_stream_below_min_treated_hosts(data: st.DataObject, strata: int, min_treated: int) -> None:
    """Whatever the counts, a stream short of updated hosts keeps the gate from promoting."""
    streams = [data.draw(valid_counts(signal=g, stratum=s)) for s in STRATA[:strata] for g in Signal]
    i = data.draw(st.integers(0, len(streams) - 1))
    streams[i] = replace(streams[i], treated_hosts=min(streams[i].treated_hosts, min_treated - 1))
    streams[i] = replace(streams[i], treated_failed=min(streams[i].treated_failed, streams[i].treated_hosts))
    if streams[i].treated_hosts == 0:
        streams[i] = replace(streams[i], treated_host_hours=0.0)
    result = evaluate(streams, GateConfig(min_treated_hosts=min_treated))
    assert result.verdict is not Verdict.SUCCESSFUL
    assert result.verdict is not Verdict.ERROR


@given(counts=valid_counts())
def test_failed_exactly_when_the_e_value_reaches_the_threshold(counts: StreamCounts) -> None:
    """The halt rule has no other input than the e-value and the threshold."""
    evidence = evaluate([counts]).streams[0]
    assert (evidence.verdict is Verdict.FAILED) == (evidence.e_value >= evidence.threshold)
    assert evidence.reference is (
        Reference.CONTROL if counts.control_hosts >= 20 and counts.control_host_hours > 0 else Reference.BASELINE
    )


junk = st.one_of(st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True), st.just("3"), st.none(), st.booleans())


@given(values=st.tuples(junk, junk, junk, junk, junk, junk), signal=st.one_of(st.sampled_from(list(Signal)), st.just("melted")))
def test_bad_counts_never_raise(values: tuple[object, ...], signal: object) -> None:
    """A failing data source is data: any junk gives a verdict, and invalid junk gives ERROR naming the stream."""
    counts = StreamCounts(signal, "s", *values)  # type: ignore[arg-type]
    result = evaluate([counts])
    assert result.verdict in set(Verdict)
    if result.verdict is Verdict.ERROR:
        assert f"stream {signal}/s: " in result.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alpha", 0.0),
        ("alpha", 1.5),
        ("tolerance", -1.0),
        ("min_treated_hosts", 0),
        ("baseline_rate", math.nan),
        ("alternatives", ()),
    ],
)
def test_bad_config_is_refused_quoting_the_value(field: str, value: object) -> None:
    """Configuration errors name the field and quote the value."""
    with pytest.raises(InputError, match=f"gate.{field}: is {value!r}"):
        GateConfig(**{field: value})  # type: ignore[arg-type]


def test_alternatives_must_be_bets_above_one_with_weights_summing_to_at_most_one() -> None:
    """The mixture must be a sub-probability over ratios > 1, or the e-value is not an e-value."""
    with pytest.raises(InputError, match="rate ratio > 1"):
        GateConfig(alternatives=((0.5, 0.5),))
    with pytest.raises(InputError, match="summing to at most 1"):
        GateConfig(alternatives=((2.0, 0.7), (3.0, 0.7)))
