"""Shadow mode in the simulator (issue 16): a plan whose gate runs in shadow (``gate: {mode: shadow}``) is simulated
through the same engine; the simulator reports what the gate would have done, and when, and enforces nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from ringfence.domain.plans import plan_from_mapping, plan_to_mapping
from ringfence.sim.runner import simulate
from ringfence.sim.scenario import load_plan, load_scenario


def test_a_shadow_gate_reports_the_halt_it_would_have_made_and_enforces_nothing() -> None:
    scenario = replace(load_scenario("crowdstrike-2024"), horizon=timedelta(hours=6))
    enforced = load_plan("big-bang")
    shadow = plan_from_mapping({**plan_to_mapping(enforced), "gate": {**plan_to_mapping(enforced).get("gate", {}),
                                                                      "mode": "shadow"}})
    real = simulate(scenario, "big-bang", enforced, hosts=2_000, seed=1)
    told = simulate(scenario, "big-bang-shadow", shadow, hosts=2_000, seed=1)
    assert real.figures["halted"] and real.shadow == []  # an enforced gate halts and has nothing to report in shadow
    assert not told.figures["halted"] and told.halt is None  # the same release in shadow: nothing stopped …
    assert told.figures["exposed_hosts"] >= real.figures["exposed_hosts"]
    halts = [s for s in told.shadow if "would have halted wave 0" in s["title"]]
    assert len(halts) == 1, told.shadow  # … the would-be halt is reported once, with its evidence
    assert "shadow mode: the gate would have halted wave 0" in halts[0]["message"]
    assert "nothing enforced" in halts[0]["message"]
    at = datetime.fromisoformat(halts[0]["at"])  # the same engine on the same fleet: the same moment as the real halt
    assert at == scenario.start + timedelta(seconds=real.figures["time_to_halt_s"]), (at, real.figures)
