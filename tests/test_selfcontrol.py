"""Gate v2's self-control: a stratum with no concurrent control judged against its own history (docs/gate.md)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringfence.domain.counting import risk_observations
from ringfence.domain.engine import command, initial_status, reconcile
from ringfence.domain.gate import GateConfig, Verdict
from ringfence.domain.gate import Signal as V1Signal
from ringfence.domain.logrank import (
    Ledger,
    LedgerRow,
    RiskRef,
    Signal,
    accumulate,
    decide,
    ledger_from_doc,
    stratum_e_value,
)
from ringfence.domain.risksets import PreHistory, self_control_schedule, spread_revealed
from ringfence.domain.rollout import (
    Observations,
    Plan,
    Release,
    ReleaseId,
    ReleaseKind,
    RolloutId,
    RolloutSpec,
    RolloutState,
    StratumObservation,
    WaveObservation,
    WaveSpec,
)
from ringfence.errors import InputError

NAN = np.nan
GATE = GateConfig(required_signals=frozenset({V1Signal.SILENT, V1Signal.CRASHED}))
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
RELEASE = Release(ReleaseId("falcon-content@291"), "falcon-content", "291", ReleaseKind.CONTENT, ("windows",))


def _observe(n: int, history: PreHistory | None) -> object:
    return risk_observations(
        strata=["a"], stratum=np.zeros(n, dtype=np.int64), in_scope=np.ones(n, dtype=bool),
        wave=np.zeros(n, dtype=np.int64), current_wave=0, held=np.zeros(n, dtype=bool), exposed_s=np.zeros(n),
        rolled_back=np.zeros(n, dtype=bool), beat_s=np.full(n, 3500.0), notice_s=np.full(n, NAN),
        away_limit_s=np.full(n, 72 * 3600.0), crash_s=np.full(n, NAN), since_s=0.0, now_s=3600.0, grace_s=900.0,
        min_bake_s=600.0, required=frozenset(V1Signal), history=history)


def test_history_must_match_the_hosts() -> None:
    """A history with the wrong length or a negative count is refused, naming the field."""
    with pytest.raises(InputError, match=r"history\.hours"):
        _observe(3, PreHistory(np.zeros(3, np.int64), np.zeros(3, np.int64), np.zeros(2)))
    with pytest.raises(InputError, match=r"history\.silent_events"):
        _observe(2, PreHistory(np.array([0, -1]), np.zeros(2, np.int64), np.zeros(2)))
    _observe(2, PreHistory.empty(2))


def test_ledger_rows_stored_before_self_hours_still_load() -> None:
    """A ledger stored with 13 fields per row (before the self-control clock) loads with self_hours 0."""
    row = LedgerRow("silent", "a", (0.1,), (0.0,), 1, 2, 0.5, 3.0, 4, 10.0, "control", 1, 3.0, 2.5)
    assert ledger_from_doc([list(row)]) == (row,)
    assert ledger_from_doc([list(row)[:13]])[0].self_hours == 0.0
    with pytest.raises(InputError, match=r"gate_ledger\[0\]"):
        ledger_from_doc([[*list(row), 1.0]])


def _fleet(n: int, *, beat: float = 3500.0, crash: float = NAN, exposed: float = 0.0) -> dict[str, object]:
    return {"strata": ["a"], "stratum": np.zeros(n, dtype=np.int64), "in_scope": np.ones(n, dtype=bool),
            "wave": np.zeros(n, dtype=np.int64), "current_wave": 0, "held": np.zeros(n, dtype=bool),
            "exposed_s": np.full(n, exposed), "rolled_back": np.zeros(n, dtype=bool), "beat_s": np.full(n, beat),
            "notice_s": np.full(n, NAN), "away_limit_s": np.full(n, 72 * 3600.0), "crash_s": np.full(n, crash),
            "grace_s": 900.0, "min_bake_s": 600.0, "required": frozenset({V1Signal.SILENT, V1Signal.CRASHED})}


HISTORY4 = PreHistory(silent_events=np.array([2, 2, 3, 1]), crash_events=np.array([0, 1, 0, 0]),
                      hours=np.full(4, 100.0))


def test_spread_revealed_by_hand() -> None:
    """8 events over 400 pre host-hours sit at 25, 75, …, 375: 80 h reveal 2, 140 h reveal 3, 400 h all 8."""
    got = spread_revealed(np.array([8, 8, 8, 8, 0, 3]), np.array([400.0, 400.0, 400.0, 400.0, 50.0, 0.0]),
                          np.array([80.0, 140.0, 400.0, 1e9, 10.0, 10.0]))
    assert got.tolist() == [2, 3, 8, 8, 0, 0]


def test_a_fully_updated_stratum_is_judged_against_its_own_history_by_hand() -> None:
    """Four updated hosts, no waiting host: 8 silent and 1 crash event over 400 pre host-hours, ratio 20.

    The schedule reveals R(b) = min(20 b, 200) + min(200 b / (4 · 72), 200) pre host-hours after b updated ones."""
    fleet = _fleet(4)
    fleet["beat_s"] = np.array([100.0, 3500.0, 3500.0, 3500.0])  # host 0 falls silent at 1000
    fleet["crash_s"] = np.array([NAN, 2000.0, NAN, NAN])
    out = risk_observations(**fleet, since_s=0.0, now_s=3600.0, history=HISTORY4)  # type: ignore[arg-type]
    by = {str(t.signal): t for t in out.ticks}
    sil = by["silent"]
    # 4 updated host-hours at risk reveal 80 + 200 · 4 / 288 = 82.8 pre host-hours: events at 25 and 75 of 8
    # spread over 400; the control weight is 82.8 / 4 = 20 + 200 / 288 per updated host-hour.
    weight = 20.0 + 200.0 / 288.0
    assert sil.reference is RiskRef.SELF
    assert (sil.treated_events, sil.control_events, sil.treated_at_risk) == (1, 2, 1.0)
    assert sil.control_at_risk == pytest.approx(weight)
    assert sil.treated_hours == pytest.approx(4.0) and sil.treated_hosts == 4
    crashed = by["crashed"]  # one crash over 400 h sits at 200: not yet revealed by 82.8
    assert (crashed.reference, crashed.treated_events, crashed.control_events) == (RiskRef.SELF, 1, 0)
    ledger, problems = accumulate((), out.ticks, GATE)
    assert not problems
    row = {r.signal: r for r in ledger}["silent"]
    assert row.self_hours == pytest.approx(4.0) and row.wave_hours == pytest.approx(4.0)
    # factor of the bet θ = 2 at share s = 1/(1 + weight): 2 / (1 + s)^3
    j = [th for th, _ in GATE.alternatives].index(2.0)
    assert row.log_e[j] == pytest.approx(math.log(2.0) - 3 * math.log1p(1 / (1 + weight)))
    # next hour: 3 hosts at risk (host 0 silent) on the self clock from 4 h: 140 + 200 · 7 / 288 = 144.9 h
    # reveal 3 of 8 (the third sits at 125), one new
    fleet["beat_s"] = np.array([100.0, 7100.0, 7100.0, 7100.0])
    nxt = risk_observations(**fleet, since_s=3600.0, now_s=7200.0, history=HISTORY4, ledger=ledger)  # type: ignore[arg-type]
    sil2 = {str(t.signal): t for t in nxt.ticks}["silent"]
    assert (sil2.treated_events, sil2.control_events, sil2.treated_hours) == (0, 1, pytest.approx(3.0))


def test_the_history_runs_out_and_then_bets_nothing() -> None:
    """400 pre host-hours of 4 hosts: the first half at ratio 20 covers 10 updated host-hours, the second half at
    200 / 288 per updated host-hour lasts to 288 (72 h of each host at risk); past it a tick carries no bet."""
    fleet = _fleet(4)

    def row(self_hours: float) -> LedgerRow:
        return LedgerRow("silent", "a", (0.0,) * 9, (0.0,) * 9, 0, 0, 0.0, self_hours, 4, 20.0, "self", 0,
                         self_hours, self_hours)

    out = risk_observations(**fleet, since_s=0.0, now_s=3600.0, history=HISTORY4, ledger=(row(18.0),))  # type: ignore[arg-type]
    sil = {str(t.signal): t for t in out.ticks}["silent"]
    assert sil.control_at_risk == pytest.approx(200.0 / 288.0)  # where ratio 20 alone had run out: the second half
    ledger = (row(288.0),)
    out = risk_observations(**fleet, since_s=0.0, now_s=3600.0, history=HISTORY4, ledger=ledger)  # type: ignore[arg-type]
    sil = {str(t.signal): t for t in out.ticks}["silent"]
    assert (sil.reference, sil.control_at_risk, sil.control_events) == (RiskRef.SELF, 0.0, 0)
    folded, _ = accumulate(ledger, out.ticks, GATE)
    after = {r.signal: r for r in folded}["silent"]
    assert after.log_e == ledger[0].log_e and after.wave_hours == 292.0  # no bet; the host-hours still bound the rate
    assert after.self_hours == pytest.approx(292.0)


def test_the_schedule_reveals_each_stretch_of_history_once() -> None:
    """R(b) by hand, never above the history, and the sum of the ticks' revealed hours is R of their sum."""
    hours, hosts = np.array([400.0]), np.array([4])
    assert self_control_schedule(hours, hosts, 20.0, np.array([4.0]))[0] == pytest.approx(80 + 200 * 4 / 288)
    assert self_control_schedule(hours, hosts, 20.0, np.array([100.0]))[0] == pytest.approx(200 + 200 * 100 / 288)
    assert self_control_schedule(hours, hosts, 20.0, np.array([1e6]))[0] == pytest.approx(400.0)
    cuts = np.cumsum(np.r_[0.0, np.full(30, 11.0)])
    steps = np.diff(self_control_schedule(np.full(31, 400.0), np.full(31, 4), 20.0, cuts))
    assert np.all(steps >= 0) and math.fsum(steps) == pytest.approx(self_control_schedule(hours, hosts, 20.0,
                                                                                            cuts[-1:])[0])


def test_a_stratum_with_waiting_hosts_keeps_its_concurrent_control_and_switches_when_they_are_gone() -> None:
    """Control while a waiting host reports; self-control (its clock from 0) once none does: one row, one e-process."""
    fleet = _fleet(5)
    fleet["exposed_s"] = np.array([0.0, 0.0, 0.0, 0.0, NAN])
    history = PreHistory(np.array([2, 2, 3, 1, 2]), np.zeros(5, np.int64), np.full(5, 100.0))
    first = risk_observations(**fleet, since_s=0.0, now_s=3600.0, history=history)  # type: ignore[arg-type]
    tick = {str(t.signal): t for t in first.ticks}["silent"]
    assert (tick.reference, tick.treated_at_risk, tick.control_at_risk) == (RiskRef.CONTROL, 4.0, 1.0)
    ledger, _ = accumulate((), first.ticks, GATE)
    fleet["exposed_s"] = np.array([0.0, 0.0, 0.0, 0.0, 3700.0])  # the last host is updated too
    fleet["beat_s"] = np.full(5, 7100.0)
    second = risk_observations(**fleet, since_s=3600.0, now_s=7200.0, history=history, ledger=ledger)  # type: ignore[arg-type]
    tick = {str(t.signal): t for t in second.ticks}["silent"]
    # 5 updated host-hours on a clock at 0 reveal 100 + 250 · 5 / 360 = 103.5 of 500 pre host-hours: 10 events at
    # 25, 75, 125, … → 2; the weight is 103.5 / 5
    assert (tick.reference, tick.control_events) == (RiskRef.SELF, 2)
    assert tick.control_at_risk == pytest.approx(20.0 + 250.0 / 360.0)
    folded, _ = accumulate(ledger, second.ticks, GATE)
    rows = [r for r in folded if r.signal == "silent"]
    assert len(rows) == 1 and rows[0].self_hours == pytest.approx(5.0) and rows[0].treated_hours == pytest.approx(9.0)


def test_without_history_a_fully_updated_stratum_never_promotes_and_holds_past_max_bake() -> None:
    """A port with no history (None) or hosts without pre-update hours: no bet (it can never halt on them), the
    updated host-hours bound the stratum's own rate (a good last wave on a new server finishes), and a wave whose
    bound is not yet within tolerance goes to HOLD at max_bake."""
    for history in (None, PreHistory.empty(4)):
        ticks = risk_observations(**_fleet(4), since_s=0.0, now_s=3600.0, history=history).ticks  # type: ignore[arg-type]
        ledger, _ = accumulate((), ticks * 500, GATE)  # 2,000 updated host-hours, no event
        assert all(r.wave_hours == pytest.approx(2000.0) and not any(r.log_e) for r in ledger)
        assert decide(ledger[:0], GATE).verdict is Verdict.INCONCLUSIVE
    plan = Plan(name="big-bang", waves=(WaveSpec("all", fraction=1.0, min_bake=timedelta(minutes=30),
                                                 min_observed_hosts=1, max_bake=timedelta(hours=2)),), gate=GATE)
    spec = RolloutSpec(RolloutId("ro-1"), RELEASE, plan, salt="s", created_by="olga", created_at=T0)
    status = command(spec, initial_status(spec), "start", actor="olga", now=T0).status
    full = WaveObservation(in_reach=4, exposed=4, observed=4)
    for minutes in (1, 60, 125):
        now = T0 + timedelta(minutes=minutes)
        observed = Observations(waves=(full,), health_as_of=now, risk=ticks, risk_as_of=now,
                                strata=(StratumObservation("a", 4, 4),))
        status = reconcile(spec, status, observed, now).status
    assert status.state is RolloutState.HOLD, status.message


def test_big_bang_that_silences_every_host_halts_on_its_own_history() -> None:
    """p1 = 1 in a big-bang: 200 updated hosts fall silent, the history had 40 silences in 33,600 h: halted."""
    fleet = _fleet(200, beat=60.0)
    history = PreHistory(np.r_[np.ones(40, np.int64), np.zeros(160, np.int64)], np.zeros(200, np.int64),
                         np.full(200, 168.0))
    out = risk_observations(**fleet, since_s=0.0, now_s=1200.0, history=history)  # type: ignore[arg-type]
    ledger, _ = accumulate((), out.ticks, GATE)
    result = decide(ledger, GATE, wave=0)
    assert result.verdict is Verdict.FAILED, result.reason
    assert "200 of 200 updated a hosts stopped reporting without notice" in result.reason
    assert "the stratum's own history before the update" in result.reason


def _null_self_crossings(seed: int, hosts: int, rate: float, lookback_h: int, ratio: float, spread: float,
                         reps: int, a: float, harm: float = 1.0) -> int:
    """Replications of one self-controlled stratum (``hosts`` updated at 0, crashes reported) under no harm whose
    mixture e-value ever reaches 1/a, through risk_observations and accumulate.

    Each host has its own hazard, ``rate`` times a log-normal factor of sigma ``spread``, the same before and
    after the update, steady in time: the null self-control is valid under (docs/gate.md).  A shock common to
    the stratum's hosts after the update is not part of it (self-control cannot tell it from harm: only a
    concurrent control can).  Ticks of one hour until the history is used up; ``harm`` multiplies the hazard
    after the update.
    """
    rng = np.random.default_rng(seed)
    config = GateConfig(required_signals=frozenset({V1Signal.CRASHED}), self_control_ratio=ratio)
    ticks = int(lookback_h / ratio) + 1
    fleet = _fleet(hosts)
    crossed = 0
    for _ in range(reps):
        own = rate * rng.lognormal(-spread**2 / 2, spread, hosts)
        pre = PreHistory(np.zeros(hosts, np.int64), rng.poisson(own * lookback_h).astype(np.int64),
                         np.full(hosts, float(lookback_h)))
        ledger: Ledger = ()
        for h in range(ticks):
            fleet["crash_s"] = np.where(rng.random(hosts) < -np.expm1(-own * harm), h * 3600.0 + 1800.0, NAN)
            fleet["beat_s"] = np.full(hosts, (h + 1) * 3600.0)
            out = risk_observations(**fleet, since_s=h * 3600.0, now_s=(h + 1) * 3600.0, history=pre,  # type: ignore[arg-type]
                                    ledger=ledger, self_control_ratio=ratio)
            ledger, _ = accumulate(ledger, [t for t in out.ticks if t.signal is Signal.CRASHED], config)
            if ledger and stratum_e_value(ledger[0], config) >= math.log(1 / a):
                crossed += 1
                break
    return crossed


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), hosts=st.integers(5, 60), rate=st.floats(1e-3, 0.05),
       lookback=st.integers(24, 168), ratio=st.floats(4.0, 20.0), spread=st.floats(0.0, 1.5))
def test_null_false_halt_rate_with_self_control_stays_below_alpha(seed: int, hosts: int, rate: float, lookback: int,
                                                                  ratio: float, spread: float) -> None:
    """Under no harm, at most a of the replications ever cross 1/a (plus sampling slack)."""
    a, reps = 0.1, 100
    crossed = _null_self_crossings(seed, hosts, rate, lookback, ratio, spread, reps, a)
    assert crossed / reps <= a + 3 * math.sqrt(a * (1 - a) / reps)


def test_the_self_control_test_can_fail_a_harmful_release() -> None:
    """The same replications with the hazard tripled after the update: most cross (the check above has teeth)."""
    crossed = _null_self_crossings(3, 40, 0.02, 168, 8.0, 0.5, 40, 0.1, harm=3.0)
    assert crossed >= 30
