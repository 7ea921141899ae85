"""What a fleet resilience assessment produces (DESIGN §3 C4): plain frozen dataclasses.

:mod:`ringfence.domain.assessment` computes them from the inventory (pure);
:mod:`ringfence.adapters.reports.assessment` renders them as HTML with charts,
Markdown and JSON.  JSON keys are fixed by the issue: ``hosts_down``,
``hosts_down_share``, ``services_down``, ``services_degraded``, ``hhi``,
``spofs``, ``recovery_hours``, ``eta_hours_by_site``, ``rto_breaches``,
``recommendations`` (see :meth:`Assessment.as_json`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ringfence.domain.recovery import RecoveryModel, Wave

__all__ = [
    "Assessment",
    "ComponentExposure",
    "Concentration",
    "KeyEscrow",
    "Recommendation",
    "RecoveryModel",
    "RecoveryPlan",
    "RecoveryResult",
    "RtoBreach",
    "ServiceImpact",
    "Spof",
    "TopEntry",
]


@dataclass(frozen=True, slots=True)
class KeyEscrow:
    """Where a host's disk recovery key is escrowed and whether that was verified (never the key)."""

    host_id: str
    key_id: str
    location: str
    verified: bool


@dataclass(frozen=True, slots=True)
class Concentration:
    """Herfindahl–Hirschman index of one category (0–10,000), effective number and band."""

    category: str
    hhi: float
    effective_number: float
    band: str  # "unconcentrated" (< 1,500), "moderate" (1,500–2,500), "high" (> 2,500)
    shares: tuple[tuple[str, float], ...]  # (name, share 0..1 of ``of``), largest first
    of: str = "all hosts"  # what the shares are shares of ("virtual and cloud hosts", ...)
    base_hosts: float = 0.0  # hosts in ``of``
    fleet_hosts: int = 0  # hosts in the whole fleet

    def fleet_share(self, share: float) -> float:
        """A share of ``of`` as a share of the whole fleet."""
        return share * self.base_hosts / self.fleet_hosts if self.fleet_hosts else 0.0


@dataclass(frozen=True, slots=True)
class ComponentExposure:
    """How much of the fleet runs one kernel-mode or boot-start component."""

    component: str  # "vendor product"
    kernel_mode: bool
    boot_start: bool
    hosts: int
    share: float
    tier_weighted_share: float


@dataclass(frozen=True, slots=True)
class ServiceImpact:
    """A service that is down or degraded under the scenario, and why."""

    service: str
    name: str
    tenant: str
    tier: int
    status: str  # "down" or "degraded"
    cause: str  # "direct" (its own redundancy groups fail) or "transitive" (through depends_on)
    failed_groups: tuple[str, ...] = ()
    via: tuple[str, ...] = ()  # dependency path to a directly failed service
    detail: str = ""
    regulatory_function: str = ""


@dataclass(frozen=True, slots=True)
class Spof:
    """A component or vendor present on every surviving path of a tier-0/1 service."""

    service: str
    tier: int
    kind: str  # "component" | "vendor" | "os_build" | "cloud_region"
    name: str
    replicas: int
    message: str


@dataclass(frozen=True, slots=True)
class RtoBreach:
    """A service whose modelled restore time exceeds its RTO or MTD."""

    service: str
    tier: int
    restore_hours: float
    rto_minutes: int | None
    mtd_minutes: int | None
    breaks: str  # "rto" or "mtd"


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    """Hands-on recovery of the hosts down."""

    key_readiness: float  # share of affected encrypted hosts with an escrowed and verified key
    encrypted_hosts: int
    hands_on_share: float  # share of affected hosts with neither out-of-band management nor a cloud console
    effort_hours_by_class: Mapping[str, float]
    recovery_hours: float  # until the last site is done
    eta_hours_by_site: Mapping[str, float]
    burn_down_by_site: Mapping[str, tuple[tuple[float, int], ...]]  # (hour, hosts still down)
    rto_breaches: tuple[RtoBreach, ...]
    first: tuple[str, ...]  # services recovered first (key escrow, directory)


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    """The shared planner's answer for some hosts of a fleet (:func:`ringfence.domain.assessment.plan_recovery`).

    Arrays are per planned host, in the order of ``host_index`` (indices into the fleet's hosts); hours are
    since the plan's start.  ``runbook`` is the index of the runbook that matched (-1: none, the host class
    decides); ``host_class`` indexes :data:`ringfence.domain.recovery.CLASSES`.
    """

    host_index: npt.NDArray[np.int64]
    host_class: npt.NDArray[np.int64]
    runbook: npt.NDArray[np.int64]
    minutes: npt.NDArray[np.float64]
    done_hours: npt.NDArray[np.float64]
    queue: npt.NDArray[np.int64]  # positions into host_index in queue order (kept for re-plans)
    recovery_hours: float
    eta_hours_by_site: Mapping[str, float]
    eta_hours_by_service: Mapping[str, float]
    burn_down_by_site: Mapping[str, tuple[tuple[float, int], ...]]
    waves: tuple[Wave, ...]
    critical_path: tuple[str, ...]  # sentences, from the last service back to its cause
    rto_breaches: tuple[RtoBreach, ...]


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One ranked action with the numbers behind it."""

    rank: int
    action: str
    why: str
    numbers: Mapping[str, float | int | str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Assessment:
    """The answer to "what if everything matching this selector failed at once"."""

    scenario: str
    hosts_total: int
    hosts_down: int
    hosts_down_share: float
    blast_radius: Mapping[str, Mapping[str, int]]  # dimension (tenant, site, os, tier) -> value -> hosts down
    down_hosts: tuple[str, ...]
    services_total: int
    services_down: tuple[ServiceImpact, ...]
    services_degraded: tuple[ServiceImpact, ...]
    hhi: Mapping[str, Concentration]  # category -> concentration (whole fleet)
    exposure: tuple[ComponentExposure, ...]
    spofs: tuple[Spof, ...]
    recovery: RecoveryResult
    recommendations: tuple[Recommendation, ...]
    critical_functions: tuple[str, ...]  # regulatory functions of services down

    def as_json(self) -> dict[str, Any]:
        """The JSON document (keys fixed by the issue)."""
        r = self.recovery
        return {
            "scenario": self.scenario,
            "hosts_total": self.hosts_total,
            "hosts_down": self.hosts_down,
            "hosts_down_share": self.hosts_down_share,
            "blast_radius": {k: dict(v) for k, v in self.blast_radius.items()},
            "services_total": self.services_total,
            "services_down": [_impact(s) for s in self.services_down],
            "services_degraded": [_impact(s) for s in self.services_degraded],
            "hhi": {k: {"hhi": c.hhi, "effective_number": c.effective_number, "band": c.band,
                        "shares_of": c.of, "base_hosts": c.base_hosts,
                        "shares": [{"name": n, "share": s, "fleet_share": c.fleet_share(s)} for n, s in c.shares]}
                    for k, c in self.hhi.items()},
            "exposure": [{"component": e.component, "kernel_mode": e.kernel_mode, "boot_start": e.boot_start,
                          "hosts": e.hosts, "share": e.share, "tier_weighted_share": e.tier_weighted_share}
                         for e in self.exposure],
            "spofs": [{"service": s.service, "tier": s.tier, "kind": s.kind, "name": s.name, "replicas": s.replicas,
                       "message": s.message} for s in self.spofs],
            "key_readiness": r.key_readiness,
            "hands_on_share": r.hands_on_share,
            "effort_hours_by_class": dict(r.effort_hours_by_class),
            "recovery_hours": r.recovery_hours,
            "eta_hours_by_site": dict(r.eta_hours_by_site),
            "rto_breaches": [{"service": b.service, "tier": b.tier, "restore_hours": b.restore_hours,
                              "rto_minutes": b.rto_minutes, "mtd_minutes": b.mtd_minutes, "breaks": b.breaks}
                             for b in r.rto_breaches],
            "recover_first": list(r.first),
            "recommendations": [{"rank": x.rank, "action": x.action, "why": x.why, "numbers": dict(x.numbers)}
                                for x in self.recommendations],
            "critical_functions": list(self.critical_functions),
        }


def _impact(s: ServiceImpact) -> dict[str, Any]:
    return {"service": s.service, "name": s.name, "tenant": s.tenant, "tier": s.tier, "status": s.status,
            "cause": s.cause, "failed_groups": list(s.failed_groups), "via": list(s.via), "detail": s.detail,
            "regulatory_function": s.regulatory_function}


@dataclass(frozen=True, slots=True)
class TopEntry:
    """One row of ``assess --top``: a single point whose failure hurts most."""

    rank: int
    kind: str  # "vendor" | "component" | "os_build" | "cloud_region"
    name: str
    selector: str
    critical_services_down: int  # tier 0 and 1
    services_down: int
    hosts_down: int
