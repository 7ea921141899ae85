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
from ringfence.errors import InputError, shown
from ringfence.services.context import Actor
from ringfence.sim.scenario import plan_names, scenario_names
from ringfence.sim.service import run_simulations

router = APIRouter(tags=["simulations"])

#: Hosts and replications one API call may simulate (about a minute of work at most).
API_MAX_HOSTS = 50_000
API_MAX_REPLICATIONS = 5


class SimulationRequest(Body):
    """A scenario (a name from examples/scenarios or an inline mapping) under one or more plans."""

    scenario: str | dict[str, Any] = Field(description="Scenario name, e.g. crowdstrike-2024, or the scenario itself")
    plans: list[str | dict[str, Any]] | None = Field(
        default=None, description="Plan names (big-bang, default …) or inline plans; required (or its old name)")
    policies: list[str | dict[str, Any]] | None = Field(
        default=None, json_schema_extra={"deprecated": True},
        description="Deprecated: the former name of plans (docs/api.md), accepted for one release")
    hosts: int = Field(default=20_000, ge=10, le=API_MAX_HOSTS, description=f"Fleet size, at most {API_MAX_HOSTS:,}")
    seed: int = Field(default=0, ge=0)
    replications: int = Field(default=1, ge=1, le=API_MAX_REPLICATIONS,
                              description=f"Runs per plan, at most {API_MAX_REPLICATIONS}")

    def plan_refs(self) -> tuple[str, list[str | dict[str, Any]]]:
        """The field the plans came in (``plans``, or the deprecated ``policies``) and the plans."""
        if self.plans is not None and self.policies is not None:
            raise InputError.single("plans", "is given together with its deprecated name policies",
                                    expected="plans alone")
        if self.plans is None and self.policies is None:
            raise InputError.single("plans", "is missing", expected="one or more plan names or inline plans")
        return ("plans", self.plans) if self.plans is not None else ("policies", self.policies or [])
    html: bool = Field(default=False, description="Also return the HTML report")


def _names_only(value: str, known: list[str], field: str) -> None:
    # Names only: the API never reads a file path a caller names.
    if value not in known:
        raise InputError.single(field, f"is {shown(value)}", expected="one of " + ", ".join(known) + " or an inline mapping")


@router.post("/v1/simulations", summary="Simulate a release under rollout plans (small, bounded)")
async def simulate(body: SimulationRequest, actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Run the scenario through the real engine with a virtual clock; one result object per plan."""
    if isinstance(body.scenario, str):
        _names_only(body.scenario, scenario_names(), "scenario")
    field, plans = body.plan_refs()
    for i, p in enumerate(plans):
        if isinstance(p, str):
            _names_only(p, plan_names(), f"{field}[{i}]")
    run = await run_in_threadpool(run_simulations, body.scenario, plans, hosts=body.hosts, seed=body.seed,
                                  replications=body.replications, max_hosts=API_MAX_HOSTS,
                                  max_replications=API_MAX_REPLICATIONS)
    out: dict[str, Any] = {"results": run.summaries()}
    if body.html:
        out["html"] = render_html(run)
    return out
