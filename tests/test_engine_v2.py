"""The engine with gate v2: risk-set evidence in the status, HOLD past max_bake, the in-flight cap, shadow mode."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringfence.domain.engine import command, initial_status, is_active, reconcile
from ringfence.domain.gate import DEFAULT_ALTERNATIVES, GateConfig
from ringfence.domain.gate import Signal as V1Signal
from ringfence.domain.logrank import RiskTick, Signal, ledger_from_doc
from ringfence.domain.plans import plan_from_mapping, plan_to_mapping
from ringfence.domain.rollout import (
    IntentKind,
    Observations,
    Plan,
    Release,
    ReleaseId,
    ReleaseKind,
    RolloutId,
    RolloutSpec,
    RolloutState,
    RolloutStatus,
    StratumObservation,
    WaveObservation,
    WaveSpec,
)
from ringfence.errors import ConflictError, InputError, PermissionDeniedError

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
RELEASE = Release(ReleaseId("falcon-content@291"), "falcon-content", "291", ReleaseKind.CONTENT, ("windows",))
GATE = GateConfig(required_signals=frozenset({V1Signal.SILENT}))


def spec(*, mode: str = "enforce", max_bake: timedelta | None = timedelta(hours=2), cap: int | None = 5,
         rate: float | None = 1000.0, slow_start: bool = False) -> RolloutSpec:
    plan = Plan(name="t", waves=(
        WaveSpec("canary", count=10, min_bake=timedelta(minutes=30), min_observed_hosts=3, max_rate_per_minute=rate,
                 max_bake=max_bake, max_in_flight=cap, in_flight_slow_start=slow_start),
        WaveSpec("rest", fraction=1.0, min_bake=timedelta(minutes=30), min_observed_hosts=3),
    ), gate=replace(GATE, mode=mode))
    return RolloutSpec(RolloutId("ro-1"), RELEASE, plan, salt="s", created_by="olga", created_at=T0)


SPEC = spec()
REST = WaveObservation(in_reach=1000, exposed=0, eligible_now=900)


def started(s: RolloutSpec = SPEC) -> RolloutStatus:
    return command(s, initial_status(s), "start", actor="olga", now=T0).status


def obs(wave0: WaveObservation, ticks: tuple[RiskTick, ...], now: datetime, in_flight: int | None = None,
        strata: tuple[StratumObservation, ...] = ()) -> Observations:
    return Observations(waves=(wave0, REST), health_as_of=now, risk=ticks, risk_as_of=now, in_flight=in_flight,
                        strata=strata)


def silent(x1: int, x0: int, t: float, c: float, hours: float = 0.0, hosts: int = 0,
           stratum: str = "SurfaceLaptop5") -> RiskTick:
    return RiskTick(Signal.SILENT, stratum, x1, x0, t, c, treated_hours=hours, treated_hosts=hosts)


def test_silent_updated_hosts_halt_after_at_most_three_with_the_evidence_in_words_and_survive_restarts() -> None:
    status = started()
    wave = WaveObservation(in_reach=10, exposed=3, eligible_now=7)
    for i in range(3):
        now = T0 + timedelta(minutes=5 * (i + 1))
        d = reconcile(SPEC, status, obs(wave, (silent(1, 0, 1, 170, hosts=i + 1),), now), now)
        # kill -9 between ticks: the status goes through its JSON form and comes back with the same evidence
        doc = json.loads(json.dumps({"ledger": d.status.gate_ledger}))
        status = replace(d.status, gate_ledger=ledger_from_doc(doc["ledger"]))
        assert status.gate_as_of == now
        if d.status.state is not RolloutState.PROGRESSING:
            break
    assert (i + 1, d.status.state) == (2, RolloutState.ROLLING_BACK)  # the second silent host halts
    assert d.status.halt_reason.startswith(
        "halted wave 0 (canary): 2 of 2 updated SurfaceLaptop5 hosts stopped reporting without notice, "
        "0 of 170 comparable hosts reporting then did; e-value 8,746 ≥ 556")
    by_hand = sum(w * (171.0 if math.isinf(th) else th / (1 + (th - 1) / 171)) ** 2 for th, w in DEFAULT_ALTERNATIVES)
    assert 9_500 < by_hand < 10_500  # shown as 1e4; threshold 2 × 5 signals / alpha 0.01
    assert [i.kind for i in d.intents] == [IntentKind.NOTIFY, IntentKind.ROLLBACK]


def test_a_tick_that_is_never_committed_leaves_no_evidence() -> None:
    """The ledger lives in the returned status only: recomputing from the committed status gives the same result."""
    status = started()
    wave = WaveObservation(in_reach=10, exposed=3, eligible_now=7)
    now = T0 + timedelta(minutes=1)
    first = reconcile(SPEC, status, obs(wave, (silent(1, 0, 1, 170),), now), now)
    again = reconcile(SPEC, status, obs(wave, (silent(1, 0, 1, 170),), now), now)
    assert first.status.gate_ledger == again.status.gate_ledger and status.gate_ledger == ()


def test_the_in_flight_cap_bounds_a_release_that_crashes_every_host() -> None:
    """p1 = 1 at 1,000 hosts/min: no host ever reports healthy, so at most cap + 1 are exposed, at any rate."""
    big = spec(cap=5)
    status = started(big)
    exposed = 0
    for minute in range(60):
        now = T0 + timedelta(minutes=minute)
        wave = WaveObservation(in_reach=1000, exposed=exposed, eligible_now=1000 - exposed)
        d = reconcile(big, status, obs(wave, (), now, in_flight=exposed), now)
        exposed += sum(i.hosts for i in d.intents if i.kind is IntentKind.EXPOSE)
        status = d.status
    assert exposed == 6
    assert "in-flight cap: 6 exposed hosts not yet healthy" in d.summary
    # healthy hosts leave the flight: exposure goes on
    wave = WaveObservation(in_reach=1000, exposed=exposed, eligible_now=1000 - exposed)
    d = reconcile(big, status, obs(wave, (), now, in_flight=2), now + timedelta(minutes=1))
    assert [i.hosts for i in d.intents] == [4]



def test_the_in_flight_cap_opens_up_as_hosts_prove_healthy() -> None:
    """A healthy release: each crash window the hosts in flight prove healthy and the room doubles (slow start),
    so a canary wave of thousands finishes; hosts that crash never prove healthy and never widen it."""
    big = spec(cap=5, slow_start=True)
    status = started(big)
    exposed = proven = 0
    in_flight: list[int] = []  # exposures still inside their 15 min crash window, one entry per host
    per_window: list[int] = []
    for minute in range(60):
        now = T0 + timedelta(minutes=minute)
        if minute % 15 == 0:  # everything in flight reports healthy at the end of its window
            proven += len(in_flight)
            per_window.append(len(in_flight))
            in_flight = []
        wave = WaveObservation(in_reach=10_000, exposed=exposed, eligible_now=10_000 - exposed)
        o = replace(obs(wave, (), now, in_flight=len(in_flight)), proven=proven)
        d = reconcile(big, status, o, now)
        n = sum(i.hosts for i in d.intents if i.kind is IntentKind.EXPOSE)
        assert n <= max(0, 5 + proven + 1 - len(in_flight))
        exposed += n
        in_flight += [minute] * n
        status = d.status
    assert per_window[1:] == [6, 12, 24]  # doubling each crash window
    assert "at most 5 + 42 proven healthy + 1" in d.summary and exposed == 90
    # Without in_flight_slow_start the cap stays fixed whatever is proven.
    fixed = spec(cap=5)
    wave = WaveObservation(in_reach=10_000, exposed=90, eligible_now=9_910)
    o = replace(obs(wave, (), now, in_flight=6), proven=84)
    assert not [i for i in reconcile(fixed, started(fixed), o, now).intents if i.kind is IntentKind.EXPOSE]


QUIET = (silent(0, 0, 10, 100, hours=10.0),)


def _baking(s: RolloutSpec, minutes: float, ticks: tuple[RiskTick, ...] = QUIET,
            strata: tuple[StratumObservation, ...] = (), status: RolloutStatus | None = None) -> RolloutStatus:
    full = WaveObservation(in_reach=10, exposed=10, observed=10)
    status = status or reconcile(s, started(s), obs(full, (), T0), T0).status
    now = T0 + timedelta(minutes=minutes)
    return reconcile(s, status, obs(full, ticks, now, strata=strata), now).status


def test_an_inconclusive_wave_goes_to_hold_past_max_bake_and_a_person_decides() -> None:
    baking = _baking(SPEC, 60)
    assert baking.state is RolloutState.BAKING and "harm not yet bounded" in baking.message
    held = _baking(SPEC, 121, status=baking)
    assert held.state is RolloutState.HOLD and is_active(held)
    assert "still not conclusive after 121 min (limit 120 min)" in held.message
    assert "approve (promote), extend (bake longer) or halt" in held.message
    # on hold nothing moves by itself, even hours later with a good-looking gate
    full = WaveObservation(in_reach=10, exposed=10, observed=10)
    later = T0 + timedelta(hours=9)
    idle = reconcile(SPEC, held, obs(full, (silent(0, 60, 100, 100),), later), later)
    assert idle.status.state is RolloutState.HOLD and not idle.intents and idle.status.wave == 0
    # ... but it still halts on harm
    bad = reconcile(SPEC, held, obs(full, tuple(silent(1, 0, 1, 170) for _ in range(3)), later), later)
    assert bad.status.state is RolloutState.ROLLING_BACK
    with pytest.raises(PermissionDeniedError, match="four-eyes"):
        command(SPEC, held, "approve", actor="olga", now=later)
    approved = command(SPEC, held, "approve", actor="adam", now=later, reason="looked at the dashboards")
    assert (approved.status.state, approved.status.wave) == (RolloutState.PROGRESSING, 1)
    assert "approved on hold by adam (looked at the dashboards)" in approved.status.message
    extended = command(SPEC, held, "extend", actor="olga", now=later)
    assert extended.status.state is RolloutState.BAKING
    assert extended.status.bake_deadline_at == later + timedelta(hours=2)
    again = _baking(SPEC, 9 * 60 + 30, status=extended.status)
    assert again.state is RolloutState.BAKING  # within the extension
    with pytest.raises(ConflictError, match="not on hold"):
        command(SPEC, baking, "extend", actor="olga", now=later)
    halted = command(SPEC, held, "halt", actor="olga", now=later)
    assert halted.status.state is RolloutState.HALTED


def test_without_max_bake_an_inconclusive_wave_keeps_baking() -> None:
    s = spec(max_bake=None)
    assert _baking(s, 24 * 60).state is RolloutState.BAKING


def test_promotes_with_the_pooled_bound_and_every_stratum_observed() -> None:
    """Plenty of comparable events, none in excess: the pooled bound is within 2×; each stratum needs its minimum."""
    good = (silent(20, 20, 100, 100, hours=100.0, stratum="a"), silent(0, 1, 2, 50, hours=2.0, stratum="tiny"))
    missing = (StratumObservation("a", 8, 8), StratumObservation("tiny", 2, 0))
    waiting = _baking(SPEC, 31, good, missing)
    assert waiting.state is RolloutState.BAKING
    assert "stratum tiny: 0 of 1 required updated hosts reporting past the bake" in waiting.message
    seen = (StratumObservation("a", 8, 8), StratumObservation("tiny", 2, 1))
    promoted = _baking(SPEC, 31, good * 8, seen)
    assert (promoted.state, promoted.wave) == (RolloutState.PROGRESSING, 1), promoted.message
    assert "harm below 2×" in promoted.message
    # the next wave shows its own bound: the halt evidence goes on, the promotion evidence starts again
    assert all(r.wave_events == 0 and not any(r.log_bound) for r in promoted.gate_ledger)
    assert any(any(r.log_e) for r in promoted.gate_ledger)


def test_shadow_mode_decides_shows_and_enforces_nothing() -> None:
    s = spec(mode="shadow")
    status = started(s)
    wave = WaveObservation(in_reach=10, exposed=3, eligible_now=7)
    now = T0 + timedelta(minutes=5)
    d = reconcile(s, status, obs(wave, tuple(silent(1, 0, 1, 170) for _ in range(3)), now), now)
    assert d.status.state is RolloutState.PROGRESSING
    assert any(r.code == "shadow_halt" and "would have halted wave 0" in r.message for r in d.reasons)
    assert any(i.kind is IntentKind.EXPOSE for i in d.intents)
    baked = _baking(s, 31)
    assert baked.wave == 1 and "shadow mode, gate not enforced" in baked.message


def test_plans_read_and_write_the_new_fields() -> None:
    raw = plan_to_mapping(SPEC.plan)
    assert raw["waves"][0]["max_bake_minutes"] == 120 and raw["waves"][0]["max_in_flight"] == 5
    assert plan_from_mapping(raw) == SPEC.plan
    raw["gate"]["mode"] = "shadow"
    assert plan_from_mapping(raw).gate.mode == "shadow"
    raw["gate"]["mode"] = "loud"
    with pytest.raises(InputError, match="mode"):
        plan_from_mapping(raw)
    raw["gate"]["mode"] = "enforce"
    raw["waves"][0]["max_bake_minutes"] = 10
    with pytest.raises(InputError, match="shorter than min_bake_minutes"):
        plan_from_mapping(raw)


@settings(max_examples=200, deadline=None)
@given(in_flight=st.integers(0, 40), exposed=st.integers(0, 10), cap=st.integers(0, 8), minutes=st.integers(0, 30))
def test_exposure_never_exceeds_the_in_flight_room(in_flight: int, exposed: int, cap: int, minutes: int) -> None:
    """Whatever the counts, a tick exposes at most cap + 1 - in_flight hosts (and none when the room is gone)."""
    s = spec(cap=cap)
    now = T0 + timedelta(minutes=minutes)
    wave = WaveObservation(in_reach=10, exposed=exposed, eligible_now=10 - exposed)
    d = reconcile(s, started(s), obs(wave, QUIET, now, in_flight=in_flight), now)
    exposing = sum(i.hosts for i in d.intents if i.kind is IntentKind.EXPOSE)
    assert exposing <= max(0, cap + 1 - in_flight)
