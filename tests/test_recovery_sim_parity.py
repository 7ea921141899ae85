"""The simulator, the assessment and a campaign plan never disagree on the same hosts (issue 17, item 7).

The simulator's recovery (:meth:`ringfence.sim.fleet.SimFleet.recovery`) is handed the crowdstrike-2024 mix with
every host crashed and boot-looped; the hosts it sends to technicians, with their sites, are then planned by the
shared planner (:func:`ringfence.domain.assessment.plan_recovery`, what ``ringfence recovery plan`` runs) and by
the assessment (:func:`ringfence.domain.assessment.assess`): the hour each host is back must be the same.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ringfence.domain.assessment import Fleet, assess, plan_recovery
from ringfence.domain.model import HostId


def test_simulator_recovery_equals_the_planner_and_the_assessment_on_the_same_hosts() -> None:
    from ringfence.sim.fleet import SimFleet, build_template  # the simulator is heavy to import
    from ringfence.sim.scenario import load_plan, load_scenario

    scenario = load_scenario("crowdstrike-2024")
    scenario = replace(scenario, recovery=replace(scenario.recovery, hosts_per_site=40))
    template = build_template(scenario, 0)
    n = 3000
    sim = SimFleet(scenario, load_plan("big-bang"), template, hosts=n, seed=3)
    rng = np.random.default_rng(1)
    sim.crashed_s[:] = rng.uniform(0, 7200, n)  # everyone crashes in the first two hours, and boot-loops
    sim.boot_looped[:] = True
    back, manual_count = sim.recovery(None, 1800.0)  # never withdrawn: nobody heals by rebooting
    assert sim.manual_work is not None
    manual, site, begin_s = sim.manual_work
    assert manual_count == n == len(manual)
    assert len(np.unique(site)) > 20  # many sites, each with its own technicians

    width = len(str(n))
    hosts = [replace(sim.template[int(sim.tmpl[h])], id=HostId(f"h{int(h):0{width}d}"),
                     hostname=f"h{int(h)}", site=f"s{int(s):04d}") for h, s in zip(manual, site, strict=True)]
    fleet = Fleet(hosts, [])
    model = scenario.recovery.planner()
    idx = np.arange(len(hosts), dtype=np.int64)
    ready = sim.crashed_s[manual] / 3600.0
    plan = plan_recovery(fleet, idx, model, start_hours=begin_s / 3600.0, ready_hours=ready)
    sim_hours = back[manual] / 3600.0
    planned = np.empty(len(hosts))
    planned[plan.host_index] = plan.done_hours
    assert planned == pytest.approx(sim_hours, abs=1e-9)
    assert plan.recovery_hours == pytest.approx(float(sim_hours.max()))
    # The ETA per site agrees with the assessment of the same hosts (its recovery starts at hour 0 with every
    # host ready): the planner at hour 0 is what ``ringfence assess`` prints.
    at_zero = plan_recovery(fleet, idx, model)
    report = assess(fleet, "os_family=windows", recovery=model)  # every host of the replay
    assert report.recovery.eta_hours_by_site == pytest.approx(at_zero.eta_hours_by_site)
    assert report.recovery.recovery_hours == pytest.approx(at_zero.recovery_hours)
