"""Tenant policies: which ring, delay and pin apply to a host, and whether they hold a rollout back.

Pure rules shared by the server's tick, desired state and the simulator, so the resolution rules exist once:
the most specific policy wins (a host group beats the whole tenant, a product beats ``*``); a host
without a policy is in the general ring, with no delay, on the latest release.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ringfence.domain.model import Host
from ringfence.domain.selector import compile_predicate

__all__ = ["HOLD_DELAYED", "HOLD_HELD", "TenantPolicies", "TenantPolicy", "policy_hold"]

HOLD_HELD = "held"
HOLD_DELAYED = "delayed"


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """Ring (early/general/pause), delay in hours and pin (latest, n-1, exact:VERSION)."""

    ring: str = "general"
    delay_hours: float = 0.0
    pin: str = "latest"


class TenantPolicies:
    """Tenant policies for one product, most specific first (host group beats tenant, product beats ``*``)."""

    def __init__(self, rows: list[dict[str, Any]], product: str) -> None:
        rows = [r for r in rows if r["product"] in (product, "*")]
        rows.sort(key=lambda r: (r["host_group"] == "", r["product"] == "*"))
        self._by_tenant: dict[str, list[tuple[Any, TenantPolicy]]] = defaultdict(list)
        for r in rows:
            pred = compile_predicate(r["host_group"]) if r["host_group"] else None
            self._by_tenant[r["tenant"]].append((pred, TenantPolicy(r["ring"], r["delay_hours"], r["pin"])))

    def __bool__(self) -> bool:
        return bool(self._by_tenant)

    def of(self, host: Host) -> TenantPolicy:
        """The policy that applies to this host."""
        for pred, policy in self._by_tenant.get(host.tenant, ()):
            if pred is None or pred(host):
                return policy
        return TenantPolicy()


def policy_hold(policy: TenantPolicy, version: str, started: datetime, now: datetime) -> str:
    """``held`` (paused ring, or pinned away from ``version``), ``delayed`` (tenant delay not over) or ``""``."""
    if policy.ring == "pause" or policy.pin not in ("latest", f"exact:{version}"):
        return HOLD_HELD
    if policy.delay_hours and now < started + timedelta(hours=policy.delay_hours):
        return HOLD_DELAYED
    return ""
