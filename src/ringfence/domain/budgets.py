"""Service disruption budgets: a PodDisruptionBudget for hosts.

A redundancy group of a business service needs ``min_healthy`` of its members
up.  While a release is unproven (its gate has not promoted the wave that
reached a host), every host running it might fail at once, so:

* **Rule.**  For every group, the members *at risk* (exposed to the unproven
  release, or already known to be down) may not exceed the group's
  ``allowance = len(members) - min_healthy`` (never below 0).  A host is
  exposable only when that holds, after adding it, for *every* group it
  belongs to: the tightest group decides.
* A host in no group is not limited by budgets (other rules, such as the wave
  cut and change windows, still apply).
* A host already exposed, or already counted as down, adds nothing to any
  group when exposed.
* ``min_healthy >= len(members)`` means no member may be exposed; a group
  that is already over budget (members went down, or the budget was
  tightened after hosts were exposed) blocks further exposure and shows a
  negative headroom; nothing is ever taken back by the ledger itself.
* :meth:`BudgetLedger.select` is greedy in candidate order, so callers pass
  candidates in their preferred order (e.g. by bucket).

Every decision comes with a sentence naming the service and group, such as
``"payments/fra-2: 1 of 2 exposed, min_healthy 1"``.  The ledger is pure: it
is built from budgets and the current exposed set, and callers rebuild it
when those change (hosts proven by a promotion are no longer exposed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ringfence.domain.model import RedundancyGroup, Service
from ringfence.errors import ConflictError, InputError, shown

__all__ = [
    "BudgetLedger",
    "GroupBudget",
    "budgets_from_services",
]

GroupKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class GroupBudget:
    """One redundancy group's budget: ``min_healthy`` of ``members`` (host ids) must stay up."""

    service: str
    group: str
    members: frozenset[str]
    min_healthy: int

    def __post_init__(self) -> None:
        if isinstance(self.min_healthy, bool) or not isinstance(self.min_healthy, int) or self.min_healthy < 0:
            raise InputError.single("min_healthy", f"is {shown(self.min_healthy)} for {self.service}/{self.group}",
                                    expected="a whole number, 0 or more")
        object.__setattr__(self, "members", frozenset(self.members))

    @property
    def key(self) -> GroupKey:
        """``(service, group)``, unique within a ledger."""
        return (self.service, self.group)

    @property
    def allowance(self) -> int:
        """How many members may be at risk at once: ``len(members) - min_healthy``, at least 0."""
        return max(0, len(self.members) - self.min_healthy)


def budgets_from_services(
    services: Iterable[Service],
    members_of: Callable[[RedundancyGroup], Iterable[str]],
) -> list[GroupBudget]:
    """One budget per redundancy group of each service.

    ``members_of`` resolves a group to host ids (its explicit ``hosts``, or
    its ``selector`` evaluated against the inventory); it is a parameter so
    this module stays free of the store.  Two groups of one service with the
    same name are refused.
    """
    out: list[GroupBudget] = []
    seen: set[GroupKey] = set()
    for service in services:
        for group in service.redundancy_groups:
            key = (str(service.id), group.name)
            if key in seen:
                raise InputError.single("redundancy_groups", f"has group {shown(group.name)} twice in service {service.id}",
                                        expected="distinct group names within a service")
            seen.add(key)
            out.append(GroupBudget(service=str(service.id), group=group.name,
                                   members=frozenset(str(h) for h in members_of(group)), min_healthy=group.min_healthy))
    return out


class BudgetLedger:
    """Budgets plus the hosts currently at risk; answers "may this host be exposed now?".

    ``exposed`` are the hosts running an unproven release; ``down`` (optional)
    are hosts known to be unhealthy for any reason, which count against the
    budget the same way (Kubernetes counts only healthy pods as available).
    """

    def __init__(self, budgets: Iterable[GroupBudget], exposed: Iterable[str], *, down: Iterable[str] = ()) -> None:
        self._budgets: dict[GroupKey, GroupBudget] = {}
        self._groups_of: dict[str, list[GroupKey]] = {}
        for budget in budgets:
            if budget.key in self._budgets:
                raise InputError.single("budgets", f"has {budget.service}/{budget.group} twice",
                                        expected="one budget per service and group")
            self._budgets[budget.key] = budget
            for host in budget.members:
                self._groups_of.setdefault(host, []).append(budget.key)
        self._exposed: set[str] = set(exposed)
        self._down: frozenset[str] = frozenset(down)
        self._at_risk: dict[GroupKey, int] = dict.fromkeys(self._budgets, 0)
        self._exposed_in: dict[GroupKey, int] = dict.fromkeys(self._budgets, 0)
        self._down_in: dict[GroupKey, int] = dict.fromkeys(self._budgets, 0)
        for host in self._exposed | self._down:
            for key in self._groups_of.get(host, ()):
                self._at_risk[key] += 1
                self._exposed_in[key] += host in self._exposed
                self._down_in[key] += host in self._down

    @property
    def exposed(self) -> frozenset[str]:
        """The hosts exposed so far (given plus recorded)."""
        return frozenset(self._exposed)

    def _describe(self, key: GroupKey) -> str:
        budget = self._budgets[key]
        n = len(budget.members)
        down = f", {self._down_in[key]} down" if self._down_in[key] else ""
        text = f"{budget.service}/{budget.group}: {self._exposed_in[key]} of {n} exposed{down}, min_healthy {budget.min_healthy}"
        if budget.min_healthy > n:
            text += f" (only {n} members: no member may be exposed)"
        elif budget.min_healthy == n:
            text += " (every member must stay healthy: no member may be exposed)"
        elif self._at_risk[key] > budget.allowance:
            text += f" (over budget by {self._at_risk[key] - budget.allowance})"
        return text

    def can_expose(self, host_id: str) -> tuple[bool, str]:
        """Whether exposing ``host_id`` keeps every group it belongs to within budget, and why."""
        if host_id in self._exposed:
            return True, f"{host_id} is already exposed"
        keys = sorted(self._groups_of.get(host_id, ()))
        if not keys:
            return True, f"{host_id} is in no redundancy group"
        if host_id in self._down:
            return True, f"{host_id} is already counted as down in {', '.join(f'{s}/{g}' for s, g in keys)}"
        blocking = [k for k in keys if self._at_risk[k] + 1 > self._budgets[k].allowance]
        if blocking:
            return False, "; ".join(self._describe(k) for k in blocking)
        tightest = min(keys, key=lambda k: (self._budgets[k].allowance - self._at_risk[k], k))
        return True, f"within budget: {self._describe(tightest)}"

    def expose(self, host_id: str) -> None:
        """Record ``host_id`` as exposed; raises :class:`ConflictError` when a budget forbids it."""
        ok, reason = self.can_expose(host_id)
        if not ok:
            raise ConflictError(f"cannot expose {host_id}: {reason}")
        if host_id in self._exposed:
            return
        self._exposed.add(host_id)
        for key in self._groups_of.get(host_id, ()):
            self._exposed_in[key] += 1
            if host_id not in self._down:
                self._at_risk[key] += 1

    def select(self, candidates: Iterable[str], limit: int) -> list[str]:
        """Expose up to ``limit`` new hosts from ``candidates``, greedily in their order; returns them.

        Candidates already exposed, repeated, or blocked by a budget are
        skipped.  The chosen hosts are recorded as exposed.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InputError.single("limit", f"is {shown(limit)}", expected="a whole number, 0 or more")
        chosen: list[str] = []
        if limit == 0:
            return chosen
        for host in candidates:
            if host in self._exposed or not self.can_expose(host)[0]:
                continue
            self.expose(host)
            chosen.append(host)
            if len(chosen) >= limit:
                break
        return chosen

    def headroom(self) -> dict[tuple[str, str], int]:
        """Per ``(service, group)``, how many more members may be exposed (negative when over budget)."""
        return {key: budget.allowance - self._at_risk[key] for key, budget in self._budgets.items()}
