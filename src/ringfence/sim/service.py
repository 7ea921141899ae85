"""The simulate use case: one scenario, several plans, replications; used by the CLI, the API and bench/.

:func:`run_simulations` validates its inputs (errors name the field), loads each plan, runs
every plan × replication through :func:`ringfence.sim.runner.simulate` (replication ``r`` uses seed
``seed + r``, the same seeds for every plan, so plans are compared on the same fleets and draws) and
returns the per-plan summaries in the JSON shape of the ``simulate`` command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ringfence.domain.plans import plan_from_mapping
from ringfence.domain.rollout import Plan
from ringfence.errors import InputError, shown
from ringfence.sim.fleet import build_template
from ringfence.sim.runner import SimResult, simulate, summarise
from ringfence.sim.scenario import Scenario, load_plan, load_scenario, scenario_from_mapping

__all__ = ["MAX_HOSTS", "MAX_REPLICATIONS", "SimulationRun", "run_simulations"]

#: Largest fleet one run accepts (the CrowdStrike replay is 10M; the memory target is 6 GB at 8.5M).
MAX_HOSTS = 20_000_000
MAX_REPLICATIONS = 100_000


@dataclass
class SimulationRun:
    """What a simulate call produced: per plan, its replications and their summary."""

    scenario: Scenario
    plans: list[str]
    results: dict[str, list[SimResult]] = field(default_factory=dict)

    def summaries(self) -> list[dict[str, Any]]:
        """One JSON object per plan (see ringfence.sim.runner for the keys)."""
        return [summarise(self.results[p]) for p in self.plans]


def _plan(ref: str | Mapping[str, Any]) -> tuple[str, Plan]:
    if isinstance(ref, Mapping):
        plan = plan_from_mapping(ref)
        return plan.name, plan
    return ref, load_plan(ref)


def run_simulations(scenario: str | Mapping[str, Any] | Scenario, plans: Sequence[str | Mapping[str, Any]], *,
                    hosts: int | None = None, seed: int = 0, replications: int = 1, max_hosts: int = MAX_HOSTS,
                    max_replications: int = MAX_REPLICATIONS,
                    progress: Callable[[str, int, float], None] | None = None) -> SimulationRun:
    """Simulate the scenario's release under each plan; ``progress(plan, replication, fraction)``."""
    if isinstance(scenario, Scenario):
        sc = scenario
    elif isinstance(scenario, Mapping):
        sc = scenario_from_mapping(scenario)
    else:
        sc = load_scenario(scenario)
    if not plans:
        raise InputError.single("plan", "none given", expected="one or more plans, e.g. big-bang default")
    n = hosts if hosts is not None else sc.hosts
    if isinstance(n, bool) or not isinstance(n, int) or not 10 <= n <= max_hosts:
        raise InputError.single("hosts", f"is {shown(n)}", expected=f"a whole number from 10 to {max_hosts:,}")
    if isinstance(replications, bool) or not isinstance(replications, int) or not 1 <= replications <= max_replications:
        raise InputError.single("replications", f"is {shown(replications)}", expected=f"1 … {max_replications:,}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError.single("seed", f"is {shown(seed)}", expected="a whole number ≥ 0")
    loaded = [_plan(p) for p in plans]
    names = [name for name, _ in loaded]
    if len(set(names)) != len(names):
        raise InputError.single("plan", f"names repeat: {names}", expected="each plan once")
    run = SimulationRun(scenario=sc, plans=names)
    for r in range(replications):
        template = build_template(sc, seed + r)
        for name, plan in loaded:
            def report(fraction: float, name: str = name, r: int = r) -> None:
                if progress is not None:
                    progress(name, r, fraction)
            result = simulate(sc, name, plan, hosts=n, seed=seed + r, template=template, progress=report)
            run.results.setdefault(name, []).append(result)
    return run
