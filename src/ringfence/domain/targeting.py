"""Targeting and placement, written once for the server and the simulator.

* :func:`targeted` — which hosts a release under a plan reaches: the release's platforms (OS family)
  and the plan's selector;
* :func:`wave_selection` — per host, which waves' selectors it matches;
* :func:`early_ring` — per host, whether its tenant policy puts it in the early ring;
* :func:`group_members` — which hosts a redundancy group (of a disruption budget) has;
* :func:`placements` — the :class:`~ringfence.domain.waves.Placement` of each host (stratum, salted bucket,
  tier, selections, early ring), what :func:`~ringfence.domain.waves.assign_waves` takes.

The server applies them to its inventory; the simulator to its template hosts and then spreads the
answers over its arrays (every simulated host is one template host's attributes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from ringfence.domain.cohorts import bucket, stratum_of
from ringfence.domain.model import Host, RedundancyGroup
from ringfence.domain.policies import TenantPolicies
from ringfence.domain.rollout import Plan
from ringfence.domain.selector import compile_predicate
from ringfence.domain.waves import Placement

__all__ = ["early_ring", "group_members", "placements", "targeted", "targets", "wave_selection"]


def targeted(plan: Plan, platforms: Iterable[str], hosts: Sequence[Host]) -> list[bool]:
    """Per host: does a release for ``platforms`` under ``plan`` reach it (OS family and plan selector)."""
    wanted = set(platforms)
    pred = compile_predicate(plan.selector) if plan.selector else None
    return [h.os_family.value in wanted and (pred is None or pred(h)) for h in hosts]


def targets(plan: Plan, platforms: Iterable[str], hosts: Sequence[Host]) -> list[Host]:
    """The hosts :func:`targeted` marks, in their order."""
    return [h for h, t in zip(hosts, targeted(plan, platforms, hosts), strict=True) if t]


def wave_selection(plan: Plan, hosts: Sequence[Host]) -> list[tuple[bool, ...]]:
    """Per host, per wave: does the host match that wave's selector (a wave without one matches nobody)."""
    preds = [compile_predicate(w.selector) if w.selector else None for w in plan.waves]
    return [tuple(bool(p is not None and p(h)) for p in preds) for h in hosts]


def early_ring(policies: TenantPolicies, hosts: Sequence[Host]) -> list[bool]:
    """Per host: does its tenant policy put it in the early ring."""
    return [policies.of(h).ring == "early" for h in hosts]


def placements(plan: Plan, salt: str, hosts: Sequence[Host], policies: TenantPolicies) -> list[Placement]:
    """What wave assignment needs about each host: stratum, salted bucket, tier, selections, early ring."""
    selected = wave_selection(plan, hosts)
    early = early_ring(policies, hosts)
    return [Placement(host_id=h.id, stratum=stratum_of(h), bucket=bucket(salt, h.id), tier=h.tier, selected=s,
                      early=e) for h, s, e in zip(hosts, selected, early, strict=True)]


def group_members(hosts: Sequence[Host]) -> Callable[[RedundancyGroup], list[str]]:
    """Resolve a redundancy group to host ids: its explicit ``hosts``, or its selector over ``hosts``."""
    def members_of(group: RedundancyGroup) -> list[str]:
        if group.hosts:
            return [str(h) for h in group.hosts]
        pred = compile_predicate(group.selector)
        return [h.id for h in hosts if pred(h)]
    return members_of
