"""The pure engine: transition rules as scenario tables, commands, and Hypothesis invariants."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringfence.domain.engine import command, initial_status, is_active, reconcile
from ringfence.domain.gate import GateConfig, Signal, StreamCounts
from ringfence.domain.rollout import (
    Decision,
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
    WaveObservation,
    WaveSpec,
    WaveState,
)
from ringfence.errors import ConflictError, PermissionDeniedError

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
RELEASE = Release(ReleaseId("falcon-content@291"), "falcon-content", "291", ReleaseKind.CONTENT, ("windows",))
PLAN = Plan(name="t", waves=(
    WaveSpec("canary", fraction=0.01, min_bake=timedelta(minutes=30), min_observed_hosts=5, max_rate_per_minute=2),
    WaveSpec("rest", fraction=1.0, min_bake=timedelta(minutes=30), min_observed_hosts=5, needs_approval=True),
), gate=GateConfig(min_treated_hosts=5, min_control_hosts=5, max_streams=8))
SPEC = RolloutSpec(RolloutId("ro-1"), RELEASE, PLAN, salt="s", created_by="olga", created_at=T0)


def started(now: datetime = T0) -> RolloutStatus:
    return command(SPEC, initial_status(SPEC), "start", actor="olga", now=now).status


def streams(treated: int, failed: int, control: int = 500, control_failed: int = 0, hours: float = 1.0,
            stratum: str = "windows/22631") -> tuple[StreamCounts, ...]:
    return tuple(StreamCounts(signal=s, stratum=stratum, treated_hosts=treated,
                              treated_failed=failed if s is Signal.SILENT else 0, treated_host_hours=treated * hours,
                              control_hosts=control, control_failed=control_failed if s is Signal.SILENT else 0,
                              control_host_hours=control * hours) for s in Signal)


def obs(*waves: WaveObservation, s: tuple[StreamCounts, ...] = (), as_of: datetime | None = T0) -> Observations:
    return Observations(waves=waves, streams=s, health_as_of=as_of)


W_REST = WaveObservation(in_reach=1000, exposed=0, eligible_now=900)


def test_exposes_at_the_rate_limit_and_never_more_than_eligible() -> None:
    """Rule 5: the first host at once, then max_rate_per_minute, never above what is eligible."""
    d = reconcile(SPEC, started(), obs(WaveObservation(in_reach=10, exposed=0, eligible_now=10), W_REST), T0)
    assert d.status.state is RolloutState.PROGRESSING
    assert [(i.kind, i.hosts) for i in d.intents] == [(IntentKind.EXPOSE, 1)]
    later = reconcile(SPEC, d.status, obs(WaveObservation(in_reach=10, exposed=1, eligible_now=9), W_REST),
                      T0 + timedelta(minutes=1.5))
    assert later.intents[0].hosts == 3  # floor(2/min × 1.5 min) + 1 - 1 already exposed
    few = reconcile(SPEC, d.status, obs(WaveObservation(in_reach=10, exposed=1, eligible_now=2), W_REST),
                    T0 + timedelta(minutes=1.5))
    assert few.intents[0].hosts == 2


def test_a_stop_never_turns_into_a_burst() -> None:
    """After two hours of late data, or a reconciler outage, exposure restarts at the rate, not all at once."""
    wave = WaveObservation(in_reach=500, exposed=1, eligible_now=499)
    d = reconcile(SPEC, started(), obs(replace(wave, exposed=0), W_REST), T0)
    held = reconcile(SPEC, d.status, obs(wave, W_REST, as_of=T0), T0 + timedelta(hours=2))
    assert held.reasons[0].code == "data_late"
    after = T0 + timedelta(hours=2, minutes=1)
    resumed = reconcile(SPEC, held.status, obs(wave, W_REST, as_of=after), after)
    assert resumed.intents[0].hosts == 1
    outage = reconcile(SPEC, d.status, obs(wave, W_REST, as_of=T0 + timedelta(hours=3)), T0 + timedelta(hours=3))
    assert outage.intents[0].hosts == 1


SCENARIOS = [
    # (name, wave-0 observation, streams, minutes after start, expected state, expected intent kinds)
    ("window closed", WaveObservation(in_reach=10, exposed=0, eligible_now=0, window_reason="closed: Saturday"),
     (), 0, RolloutState.WAITING_WINDOW, []),
    ("bad release halts and rolls back", WaveObservation(in_reach=10, exposed=3, eligible_now=7), streams(3, 3),
     10, RolloutState.ROLLING_BACK, [IntentKind.NOTIFY, IntentKind.ROLLBACK]),
    ("still baking", WaveObservation(in_reach=10, exposed=10, observed=10), streams(10, 0), 10,
     RolloutState.BAKING, []),
    ("too few observed", WaveObservation(in_reach=10, exposed=10, observed=2), streams(10, 0), 0,
     RolloutState.BAKING, []),
]


@pytest.mark.parametrize(("name", "wave0", "s", "minutes", "state", "intents"), SCENARIOS,
                         ids=[c[0] for c in SCENARIOS])
def test_scenarios(name: str, wave0: WaveObservation, s: tuple[StreamCounts, ...], minutes: int,
                   state: RolloutState, intents: list[IntentKind]) -> None:
    """Named rows: the engine's state and intents for one observation."""
    now = T0 + timedelta(minutes=minutes)
    d = reconcile(SPEC, started(), obs(wave0, W_REST, s=s, as_of=now), now)
    assert d.status.state is state, d.summary
    assert [i.kind for i in d.intents] == intents
    assert d.reasons and all(r.message for r in d.reasons)


def _bake(status: RolloutStatus, minutes: int, s: tuple[StreamCounts, ...]) -> Decision:
    full = WaveObservation(in_reach=10, exposed=10, observed=10)
    first = reconcile(SPEC, status, obs(full, W_REST, s=s), T0)
    now = T0 + timedelta(minutes=minutes)
    return reconcile(SPEC, first.status, obs(full, W_REST, s=s, as_of=now), now)


def test_promotes_only_after_bake_with_a_successful_gate() -> None:
    """Rule 6: baked long enough, enough observed and a SUCCESSFUL gate promote to the next wave."""
    good = streams(200, 0, control=5000, hours=50.0)  # 10,000 host-hours bound the rate below 2× baseline
    d = _bake(started(), 31, good)
    assert d.gate is not None and d.gate.verdict.value == "successful", d.gate.reason
    assert (d.status.state, d.status.wave) == (RolloutState.PROGRESSING, 1), d.summary
    assert d.status.waves[0].state is WaveState.PASSED
    inconclusive = _bake(started(), 31, streams(10, 0, control=5000, hours=0.01))
    assert inconclusive.status.state is RolloutState.BAKING and inconclusive.status.wave == 0


def test_late_or_missing_health_data_never_promotes() -> None:
    """Rule 4: stale or missing data freezes the rollout: no exposure, no promotion."""
    good = streams(200, 0, control=5000, hours=50.0)
    full = WaveObservation(in_reach=10, exposed=10, observed=10)
    status = reconcile(SPEC, started(), obs(full, W_REST, s=good), T0).status
    now = T0 + timedelta(hours=2)
    for as_of in (None, now - timedelta(minutes=11)):
        d = reconcile(SPEC, status, obs(full, W_REST, s=good, as_of=as_of), now)
        assert d.status.wave == 0 and not d.intents
        assert d.reasons[0].code == "data_late"


def test_approval_is_four_eyes() -> None:
    """A wave that needs approval waits; the starter cannot approve; another approver can."""
    status = replace(started(), wave=1, state=RolloutState.PROGRESSING)
    d = reconcile(SPEC, status, obs(WaveObservation(in_reach=10, exposed=10), W_REST), T0)
    assert d.status.state is RolloutState.WAITING_APPROVAL
    assert [i.kind for i in d.intents] == [IntentKind.NOTIFY]
    with pytest.raises(PermissionDeniedError, match="four-eyes"):
        command(SPEC, d.status, "approve", actor="olga", now=T0)
    approved = command(SPEC, d.status, "approve", actor="adam", now=T0).status
    assert approved.waves[1].approved_by == "adam"
    again = reconcile(SPEC, approved, obs(WaveObservation(in_reach=10, exposed=10), W_REST), T0)
    assert again.intents[0].kind is IntentKind.EXPOSE


def test_commands_that_do_not_apply_conflict() -> None:
    """Commands check the state they apply to."""
    with pytest.raises(ConflictError):
        command(SPEC, started(), "start", actor="olga", now=T0)
    with pytest.raises(ConflictError):
        command(SPEC, initial_status(SPEC), "pause", actor="olga", now=T0)
    paused = command(SPEC, started(), "pause", actor="olga", now=T0).status
    assert command(SPEC, paused, "resume", actor="olga", now=T0).status.state is RolloutState.PROGRESSING
    aborted = command(SPEC, started(), "abort", actor="olga", now=T0).status
    with pytest.raises(ConflictError):
        command(SPEC, aborted, "resume", actor="olga", now=T0)
    halted = command(SPEC, started(), "halt", actor="olga", now=T0, reason="bad smell").status
    assert "bad smell" in halted.halt_reason
    rolling = command(SPEC, halted, "rollback", actor="olga", now=T0)
    assert rolling.intents[0].kind is IntentKind.ROLLBACK
    done = reconcile(SPEC, rolling.status, Observations(waves=(), rolled_back_pending=0), T0)
    assert done.status.state is RolloutState.ROLLED_BACK and not is_active(done.status)


# --- invariants (Hypothesis) -----------------------------------------------------------------

wave_obs = st.builds(
    lambda reach, exp, elig, observed: WaveObservation(in_reach=reach, exposed=min(exp, reach),
                                                       eligible_now=min(elig, reach - min(exp, reach)),
                                                       observed=min(observed, exp, reach)),
    st.integers(0, 500), st.integers(0, 500), st.integers(0, 500), st.integers(0, 500))
stream_sets = st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(5, 2000)), max_size=3).map(
    lambda rows: tuple(c for i, (t, f, c) in enumerate(rows) for c in streams(t, min(f, t), c, stratum=f"s{i}")))
states = st.sampled_from(list(RolloutState))


@settings(max_examples=300, deadline=None)
@given(w0=wave_obs, w1=wave_obs, s=stream_sets, minutes=st.integers(0, 600), state=states,
       wave=st.integers(0, 1), stale=st.booleans())
def test_invariants(w0: WaveObservation, w1: WaveObservation, s: tuple[StreamCounts, ...], minutes: int,
                    state: RolloutState, wave: int, stale: bool) -> None:
    """For any observation: exposure stays within the wave's cap, what is eligible and the rate limit;
    halted, paused and finished rollouts stay put; stale data never exposes or promotes."""
    base = replace(started(), state=state, wave=wave, rate_anchor_at=T0, rate_anchor_exposed=(w0, w1)[wave].exposed)
    now = T0 + timedelta(minutes=minutes)
    as_of = now - timedelta(hours=1) if stale else now
    d = reconcile(SPEC, base, obs(w0, w1, s=s, as_of=as_of), now)
    current = (w0, w1)[wave]
    for intent in d.intents:
        if intent.kind is IntentKind.EXPOSE:
            assert 0 < intent.hosts <= current.in_reach - current.exposed
            assert intent.hosts <= current.eligible_now
            rate = PLAN.waves[wave].max_rate_per_minute
            if rate is not None and d.status.rate_anchor_at == T0:
                assert intent.hosts <= int(rate * minutes) + 1
            assert not stale
    if state in (RolloutState.HALTED, RolloutState.PENDING, RolloutState.COMPLETED,
                 RolloutState.ABORTED, RolloutState.ROLLED_BACK):
        assert d.status.state is state and not d.intents
    if state in (RolloutState.PAUSED, RolloutState.HOLD):  # pausing (or a hold) stops exposure, not the gate
        assert not any(i.kind is IntentKind.EXPOSE for i in d.intents)
        assert d.status.state is state or (d.gate is not None and d.gate.verdict.value == "failed")
    if stale and state is not RolloutState.ROLLING_BACK:
        # stale data freezes the rollout where it is; only a failing gate moves it (to a halt)
        assert d.status.wave == wave
        assert d.status.state in (state, RolloutState.HALTED, RolloutState.ROLLING_BACK)
    if d.status.wave > wave:
        assert (d.gate is not None and d.gate.verdict.value == "successful") or current.in_reach == 0


def test_a_failing_gate_halts_a_paused_rollout() -> None:
    """Review finding: a paused rollout whose updated hosts all go silent is halted and rolled back."""
    paused = command(SPEC, started(), "pause", actor="olga", now=T0).status
    d = reconcile(SPEC, paused, obs(WaveObservation(in_reach=10, exposed=3), W_REST, s=streams(3, 3)), T0)
    assert d.status.state is RolloutState.ROLLING_BACK
    assert [i.kind for i in d.intents] == [IntentKind.NOTIFY, IntentKind.ROLLBACK]
