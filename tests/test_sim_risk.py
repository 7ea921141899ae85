"""Gate v2 in the simulator: risk-set observations by the shared counting rule, and whole simulated rollouts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ringfence.domain.counting import risk_observations
from ringfence.domain.gate import Signal as V1Signal
from ringfence.domain.logrank import Ledger, RiskRef, Signal
from ringfence.errors import InputError
from ringfence.sim.runner import SimResult, simulate
from ringfence.sim.scenario import load_plan, load_scenario, scenario_from_mapping

NAN = np.nan


def test_risk_observations_by_hand() -> None:
    """Six hosts of one stratum over (0, 3600] with a 900 s grace, counted by hand (rules of risk_observations)."""
    # h0 updated, silent from 100 (event at 1000); h1 updated and healthy, crashed at 2000; h2 waiting, reporting;
    # h3 waiting, asleep with a notice at 200; h4 offline since before the start; h5 updated at 3000, not yet healthy.
    exposed = np.array([0.0, 0.0, NAN, NAN, NAN, 3000.0])
    seen = np.array([100.0, 3500.0, 3500.0, 200.0, -5000.0, 2990.0])
    notice = np.array([NAN, NAN, NAN, 200.0, NAN, NAN])
    crash = np.array([NAN, 2000.0, NAN, NAN, NAN, NAN])
    n = len(seen)
    out = risk_observations(
        strata=["a"], stratum=np.zeros(n, dtype=np.int64), in_scope=np.ones(n, dtype=bool),
        wave=np.zeros(n, dtype=np.int64), current_wave=0, held=np.zeros(n, dtype=bool), exposed_s=exposed,
        rolled_back=np.zeros(n, dtype=bool), beat_s=seen, notice_s=notice, away_limit_s=np.full(n, 72 * 3600.0),
        crash_s=crash, since_s=0.0, now_s=3600.0, grace_s=900.0, min_bake_s=600.0, required=frozenset(V1Signal))
    by = {(str(t.signal), t.stratum): t for t in out.ticks}
    silent = by[("silent", "a")]
    # At risk: h0 (its event is in this interval), h1, h5 updated; h2 waiting (h3 censored, h4 offline at start).
    assert (silent.treated_events, silent.control_events, silent.treated_at_risk, silent.control_at_risk) == (1, 0, 3, 1)
    assert silent.treated_hours == pytest.approx(3.0) and silent.treated_hosts == 3
    crashed = by[("crashed", "a")]
    assert (crashed.treated_events, crashed.control_events, crashed.treated_at_risk, crashed.control_at_risk) == (1, 0, 3, 1)
    assert ("not_back", "a") not in by  # no updated host is away with a notice, and nobody overran
    for signal in (Signal.INSTALL_FAILED, Signal.AUTO_REVERTED):
        tick = by[(str(signal), "a")]
        assert tick.reference is RiskRef.BASELINE and tick.treated_events == 0 and tick.treated_hours == pytest.approx(3.0)
    assert [(s.stratum, s.in_reach, s.observed) for s in out.strata] == [("a", 6, 1)]  # only h1 reported past the bake
    assert out.in_flight == 1  # h5: h0's silence and h1's crash are the gate's to judge


def test_crowdstrike_v2_in_flight_cap_and_silence() -> None:
    """A release that boot-loops every host it reaches: gate v2 halts on silence with at most 1 + max_in_flight crashed."""
    scenario = replace(load_scenario("crowdstrike-2024"), risk_sets=True)
    plan = load_plan("default")
    cap = plan.waves[0].max_in_flight
    assert cap is not None
    result = simulate(scenario, "default", plan, hosts=20_000, seed=1)
    figures = result.figures
    assert figures["halted"] and 0 < figures["crashed_hosts"] <= cap + 1
    assert result.halt is not None and "stopped reporting without notice" in result.halt["message"]


def test_sleeping_hosts_with_notice_do_not_count_as_silent() -> None:
    """Night falls on a quiet fleet: hosts that go to sleep say so and are censored, not silence events."""
    raw = {"name": "night", "start": "2026-03-02T20:00:00Z", "horizon_hours": 8, "tick_seconds": 300, "hosts": 3000,
           "release": {"product": "edr-agent", "version": "7.20.3", "kind": "agent", "platforms": ["windows"]},
           "fleet": {"template_hosts": 2000, "os_families": ["windows"]},
           "baseline": {"crash_per_host_hour": 1e-9, "heartbeat_loss_per_host_hour": 1e-9},
           "risk_sets": {"enabled": True}}
    plan = load_plan("default")
    quiet = simulate(scenario_from_mapping(raw), "default", plan, seed=2)
    assert not quiet.figures["halted"]
    ledger = {r.signal: r for r in _ledger(quiet)}
    assert ledger and all(r.treated_events == 0 and r.control_events == 0 for r in ledger.values())
    # The same night without notices: sleeping hosts are silence events, on both arms.
    loud = simulate(scenario_from_mapping({**raw, "risk_sets": {"enabled": True, "sleep_notice": False}}), "default",
                    plan, seed=2)
    silent = [r for r in _ledger(loud) if r.signal == "silent"]
    assert sum(r.control_events for r in silent) > 0


def _ledger(result: SimResult) -> Ledger:
    return result.gate_ledger


def test_bad_risk_sets_setting_names_the_field() -> None:
    with pytest.raises(InputError) as info:
        scenario_from_mapping({"name": "x", "risk_sets": {"enabled": "yes"}})
    assert "risk_sets.enabled" in {i.field for i in info.value.issues}
    with pytest.raises(InputError) as info:
        scenario_from_mapping({"name": "x", "risk_sets": {"away_limit_hours": -1}})
    assert "risk_sets.away_limit_hours" in {i.field for i in info.value.issues}

