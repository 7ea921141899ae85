"""Simulations: a small, bounded run of the simulator, synchronously (the big ones run from the CLI or bench/)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from ringfence.adapters.api.deps import require
from ringfence.adapters.api.problems import Body
from ringfence.adapters.reports.simulation import render_html
from ringfence.domain.access import Role
from ringfence.errors import InputError
from ringfence.services.context import Actor
from ringfence.sim.scenario import policy_names, scenario_names
from ringfence.sim.service import run_simulations

router = APIRouter(tags=["simulations"])

#: Hosts and replications one API call may simulate (about a minute of work at most).
API_MAX_HOSTS = 50_000
API_MAX_REPLICATIONS = 5


class SimulationRequest(Body):
    """A scenario (a name from examples/scenarios or an inline mapping) under one or more policies."""

    scenario: str | dict[str, Any] = Field(description="Scenario name, e.g. crowdstrike-2024, or the scenario itself")
    policies: list[str | dict[str, Any]] = Field(description="Policy names (big-bang, default …) or inline plans")
    hosts: int = Field(default=20_000, description=f"Fleet size, at most {API_MAX_HOSTS:,}")
    seed: int = Field(default=0, ge=0)
    replications: int = Field(default=1, description=f"Runs per policy, at most {API_MAX_REPLICATIONS}")
    html: bool = Field(default=False, description="Also return the HTML report")


def _names_only(value: str, known: list[str], field: str) -> None:
    # Names only: the API never reads a file path a caller names.
    if value not in known:
        raise InputError.single(field, f"is {value!r}", expected="one of " + ", ".join(known) + " or an inline mapping")


@router.post("/v1/simulations", summary="Simulate a release under rollout policies (small, bounded)")
async def simulate(body: SimulationRequest, actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Run the scenario through the real engine with a virtual clock; one result object per policy."""
    if isinstance(body.scenario, str):
        _names_only(body.scenario, scenario_names(), "scenario")
    for i, p in enumerate(body.policies):
        if isinstance(p, str):
            _names_only(p, policy_names(), f"policies[{i}]")
    run = await run_in_threadpool(run_simulations, body.scenario, body.policies, hosts=body.hosts, seed=body.seed,
                                  replications=body.replications, max_hosts=API_MAX_HOSTS,
                                  max_replications=API_MAX_REPLICATIONS)
    out: dict[str, Any] = {"results": run.summaries()}
    if body.html:
        out["html"] = render_html(run)
    return out
