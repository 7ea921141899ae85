"""The simulator's v2 defaults and scenario features: warm-up history, self-control in a big-bang, region/site
outages, hangs that recover, flapping hosts (docs/simulator.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ringfence.errors import InputError
from ringfence.sim.fleet import SimFleet, build_template
from ringfence.sim.runner import simulate
from ringfence.sim.scenario import load_plan, load_scenario, scenario_from_mapping

BASE: dict[str, Any] = {
    "name": "t", "start": "2026-03-02T12:00:00Z", "horizon_hours": 6, "tick_seconds": 300, "hosts": 2000,
    "release": {"product": "edr-agent", "version": "7.20.3", "kind": "agent", "platforms": ["windows"]},
    "fleet": {"template_hosts": 1000, "os_families": ["windows"]},
    "baseline": {"crash_per_host_hour": 1e-9, "heartbeat_loss_per_host_hour": 1e-9}}


def _fleet(raw: dict[str, Any], seed: int = 1) -> SimFleet:
    scenario = scenario_from_mapping(raw)
    return SimFleet(scenario, load_plan("default"), build_template(scenario, seed), hosts=scenario.hosts, seed=seed)


def test_gate_v2_is_the_default_and_enabled_false_keeps_the_first_gate() -> None:
    assert scenario_from_mapping({"name": "x"}).risk_sets
    assert not scenario_from_mapping({"name": "x", "risk_sets": {"enabled": False}}).risk_sets
    assert load_scenario("crowdstrike-2024").risk_sets
    assert all(w.max_bake is not None for w in load_plan("default").waves)


def test_warm_up_counts_each_hosts_history_by_the_rollout_rules() -> None:
    """12 h before a Monday noon start: hosts that sleep say so (no silence); heartbeat losses are silences."""
    quiet = _fleet({**BASE, "risk_sets": {"lookback_hours": 12}})
    history = quiet.warm_up()
    assert quiet.history is history and len(history.hours) == quiet.n
    assert int(history.silent_events.sum()) == 0 and int(history.crash_events.sum()) == 0
    # at risk only while reporting: between nobody (0 h) and everybody all along (12 h per host)
    assert 0.3 * 12 * quiet.n < float(history.hours.sum()) < 12 * quiet.n
    assert float(history.hours.max()) <= 12.0 + 1e-9
    loud = _fleet({**BASE, "risk_sets": {"lookback_hours": 12, "sleep_notice": False}})
    assert int(loud.warm_up().silent_events.sum()) > 0  # going to sleep without a word is a silence
    noisy = _fleet({**BASE, "risk_sets": {"lookback_hours": 12},
                    "baseline": {"crash_per_host_hour": 1e-3, "heartbeat_loss_per_host_hour": 5e-3}})
    h = noisy.warm_up()
    silent_rate, crash_rate = h.silent_events.sum() / h.hours.sum(), h.crash_events.sum() / h.hours.sum()
    assert 2.5e-3 < silent_rate < 1e-2 and 4e-4 < crash_rate < 2.5e-3  # the physics' rates (frailty mean 1)
    assert noisy.t == 0.0


def test_big_bang_that_boot_loops_every_host_halts_against_the_fleets_own_history() -> None:
    """No concurrent control in a big-bang: the warm-up history is the control, and p1 = 1 halts."""
    raw = {**BASE, "hosts": 3000, "horizon_hours": 4, "tick_seconds": 60,
           "baseline": {"crash_per_host_hour": 1e-5, "heartbeat_loss_per_host_hour": 1e-4},
           "failures": [{"p_crash": 1.0, "crash_after_s": [5, 120], "boot_loop": 1.0}]}
    result = simulate(scenario_from_mapping(raw), "big-bang", load_plan("big-bang"), seed=2)
    assert result.figures["halted"], result.log[-1]
    assert result.halt is not None and "the stratum's own history before the update" in result.halt["message"]
    assert result.figures["time_to_halt_s"] <= 3600
    # the same without a history (no look-back) bets nothing: never halts
    blind = simulate(scenario_from_mapping({**raw, "risk_sets": {"lookback_hours": 0}}), "big-bang",
                     load_plan("big-bang"), seed=2)
    assert not blind.figures["halted"]


def test_a_site_outage_takes_its_hosts_down_without_notice_and_they_come_back() -> None:
    fleet = _fleet({**BASE, "outages": [{"site": "*", "at_hours": 1, "hours": 1}]})
    fleet.advance(3000.0)
    up_before = np.count_nonzero(fleet.seen_s >= 3000.0)
    for t in (3900.0, 5400.0, 7000.0):
        fleet.advance(t)
    assert up_before > 0 and np.count_nonzero(fleet.seen_s > 3600.0) == 0  # nobody reported in the outage
    assert np.count_nonzero(fleet.notice_s > 3600.0) == 0  # and nobody said it was going away
    fleet.advance(7500.0)
    assert np.count_nonzero(fleet.seen_s >= 7500.0) > 0.8 * up_before  # back afterwards


def test_flapping_hosts_drop_out_part_of_every_period() -> None:
    fleet = _fleet({**BASE, "flapping": {"share": 1.0, "period_minutes": 60, "down_minutes": 30}})
    assert len(fleet.flapper) == fleet.n
    for t in np.arange(0.0, 3 * 3600.0, 300.0):
        fleet.advance(float(t))
    gone = fleet.t - fleet.seen_s > 20 * 60
    assert 0.2 < np.count_nonzero(gone) / fleet.n < 0.6


def test_a_hang_recovers_by_itself() -> None:
    """Hosts the release hangs go silent (no crash report, no notice) for hang_hours, then report again."""
    raw = {**BASE, "failures": [{"p_crash": 1.0, "crash_after_s": [10, 10], "hang": 1.0, "hang_hours": [1, 1]}]}
    fleet = _fleet(raw)
    idx = np.flatnonzero(fleet.seen_s >= -60.0)[:20]
    fleet.exposed_s[idx] = 0.0
    fleet.install_s[idx] = 0.0
    fleet._draw_harm(idx, np.zeros(len(idx)))
    for t in (60.0, 1800.0):
        fleet.advance(t)
    assert np.all(fleet.seen_s[idx] < 60.0) and np.all(np.isnan(fleet.last_crash_s[idx]))
    assert not fleet.boot_looped[idx].any()
    fleet.advance(3700.0)
    online = fleet._online(3700.0)[idx]
    assert online.sum() >= 10 and np.all(fleet.seen_s[idx][online] >= 3700.0)  # every one online then is back
    back, manual = fleet.recovery(None, None)
    assert manual == 0 and np.allclose(back[idx] - fleet.crashed_s[idx], 3600.0)


@pytest.mark.parametrize(("extra", "field"), [
    ({"outages": [{"at_hours": 1, "hours": 1}]}, "outages[0].region"),
    ({"outages": [{"region": "eu", "site": "x", "at_hours": 1}]}, "outages[0].region"),
    ({"outages": [{"region": "eu", "hours": -1}]}, "outages[0].hours"),
    ({"outages": [{"match": "nonsense ==", "hours": 1}]}, "outages[0].match"),
    ({"outages": [{"site": "x", "when": 3}]}, "outages[0].when"),
    ({"outages": "eu"}, "outages"),
    ({"flapping": {"share": 2}}, "flapping.share"),
    ({"flapping": {"share": 0.1, "period_minutes": 10, "down_minutes": 10}}, "flapping.down_minutes"),
    ({"flapping": {"share": 0.1, "every": 3}}, "flapping.every"),
    ({"failures": [{"p_crash": 0.5, "hang": 1.5}]}, "failures[0].hang"),
    ({"failures": [{"p_crash": 0.5, "hang": 1, "hang_hours": [5, 2]}]}, "failures[0].hang_hours"),
    ({"risk_sets": {"lookback_hours": -1}}, "risk_sets.lookback_hours"),
])
def test_bad_scenario_features_name_the_field(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as info:
        scenario_from_mapping({**BASE, **extra})
    assert field in {i.field for i in info.value.issues}
