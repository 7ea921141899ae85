"""Fleet resilience assessment (DESIGN §3 C4) as pure functions: no I/O, no clock.

"What happens if everything matching this selector fails at once?"  :class:`Fleet`
indexes hosts and services once (integer codes per host, a sparse host × factor
incidence, redundancy-group membership as index arrays, the dependency graph), so
that :func:`assess` is array operations plus per-service work, and :func:`top`
sweeps every single vendor, kernel component, OS build and cloud region without
evaluating a Python predicate per host.  Every formula is in ``docs/assessment.md``.

Rules:

* **Hosts down** are the hosts the scenario selector matches.  The selector is
  evaluated on the precomputed codes with exactly the semantics of
  :func:`ringfence.domain.selector.compile_predicate` (each field condition is
  decided once per distinct value by that predicate on a representative host;
  agent conditions once per distinct agent, with "same agent" for ``and``).
* A **redundancy group** is *down* when it lost at least one member and fewer
  than ``min_healthy`` members survive; *degraded* when it lost members but
  ``min_healthy`` or more survive.  A service is *directly* down when any of its
  groups is down and *transitively* down when it depends (recursively) on a
  service that is down; ``via`` is the shortest dependency path, from the
  service's own dependency to the directly failed one.
* **Concentration**, **exposure** and **common-mode SPOFs** describe the whole
  fleet, not the scenario; they are computed once per :class:`Fleet`.
* **Recovery** queues each site's hosts down (key-escrow and directory hosts
  first, then by host tier, shortest job first) on the site's technicians as
  one pool; remote hosts (out-of-band or cloud) take the same effort from the
  same team but no site visit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import networkx as nx  # type: ignore[import-untyped]  # no stubs in the project's dev dependencies
import numpy as np
import numpy.typing as npt

from ringfence.domain.assessment_model import (
    Assessment,
    ComponentExposure,
    Concentration,
    KeyEscrow,
    Recommendation,
    RecoveryModel,
    RecoveryPlan,
    RecoveryResult,
    RtoBreach,
    ServiceImpact,
    Spof,
    TopEntry,
)
from ringfence.domain.model import DiskEncryption, Host, HostId, InstalledAgent, OsFamily, Platform, Service, TenantId
from ringfence.domain.recovery import (
    CLASSES,
    DEPENDENCY_TIERS,
    REIMAGE,
    BoolArray,
    Capacity,
    CriticalStep,
    FloatArray,
    IntArray,
    Lane,
    Runbook,
    build_capacity,
    class_minutes,
    classify,
    dependency_tier,
    queue_order,
    restore_times,
    schedule,
    waves,
)
from ringfence.domain.selector import And, Compare, Node, Not, Or, compile_predicate, parse
from ringfence.errors import InputError

__all__ = [
    "EDR_PRODUCTS",
    "KEY_SERVICES",
    "ON_PREMISES",
    "RECOMMENDATION_LIMIT",
    "TIER_WEIGHTS",
    "Fleet",
    "assess",
    "band",
    "hhi",
    "plan_recovery",
    "selector_value",
    "top",
]


#: Weight of a host or service by criticality tier 0..3 (tiers outside are clamped).
TIER_WEIGHTS: tuple[float, float, float, float] = (8.0, 4.0, 2.0, 1.0)

#: Kernel-mode agents that count as EDR: ``(vendor, product substring)``, both lower case;
#: an empty substring means every kernel-mode product of the vendor.  Vendors that also ship
#: kernel-mode VPN or backup drivers (Microsoft, Palo Alto Networks, Cisco, Fortinet) are
#: limited to their endpoint-security products.
EDR_PRODUCTS: tuple[tuple[str, str], ...] = (
    ("crowdstrike", ""),
    ("microsoft", "defender"),
    ("sentinelone", ""),
    ("trellix", ""),
    ("mcafee", ""),
    ("sophos", ""),
    ("trend micro", ""),
    ("broadcom", ""),
    ("symantec", ""),
    ("vmware", "carbon black"),
    ("eset", ""),
    ("palo alto networks", "cortex"),
    ("palo alto networks", "traps"),
    ("cisco", "secure endpoint"),
    ("cisco", "amp for endpoints"),
    ("fortinet", "fortiedr"),
    ("kaspersky", ""),
    ("bitdefender", ""),
    ("cybereason", ""),
    ("elastic", "defend"),
    ("check point", "harmony"),
    ("withsecure", ""),
    ("f-secure", ""),
    ("blackberry", "cylance"),
    ("cylance", ""),
    ("malwarebytes", ""),
    ("huntress", ""),
    ("deep instinct", ""),
    ("cortex", ""),
)

#: Services whose hosts are recovered first at every site (names, or names with a ``-N`` suffix).
KEY_SERVICES: tuple[str, ...] = ("key-escrow", "directory")

#: The cloud-provider / region bucket of hosts outside any cloud.
ON_PREMISES = "on-premises"

#: At most this many recommendations are returned (the highest-ranked).
RECOMMENDATION_LIMIT = 25

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # hour 0 of a plan without shifts (it never reads a calendar)
_FACTOR_KINDS = ("vendor", "component", "os_build", "cloud_region")
_NO_SITE = "(no site)"
_BURN_DOWN_POINTS = 24
#: A tenant whose own hosts are at least this share down gets "split tenant T's rings".
_TENANT_SPLIT_SHARE = 0.25
_TENANT_SPLIT_MIN_HOSTS = 2
#: Technician-hours that count as much as one tier-3 service in the ranking of recommendations.
_HOURS_PER_UNIT = 8.0

_PLAIN = re.compile(r"[A-Za-z0-9_.:/@+-]+")
_KEYWORDS = {"and", "or", "not", "in"}


def selector_value(value: str) -> str:
    """``value`` as a selector literal: bare when it is one plain word, else double-quoted and escaped."""
    if _PLAIN.fullmatch(value) and value.lower() not in _KEYWORDS:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def hhi(shares: Iterable[float]) -> float:
    """Herfindahl–Hirschman index of shares 0..1: Σ (100·share)², from 0 to 10,000."""
    return float(sum((100.0 * s) ** 2 for s in shares))


def band(index: float) -> str:
    """The concentration band of an HHI: < 1,500 unconcentrated, 1,500–2,500 moderate, > 2,500 high."""
    if index < 1500:
        return "unconcentrated"
    if index <= 2500:
        return "moderate"
    return "high"


def _concentration(category: str, weights: Mapping[str, float], of: str = "all hosts", fleet_hosts: int = 0) -> Concentration:
    total = sum(weights.values())
    shares = sorted(((k, v / total) for k, v in weights.items() if v > 0), key=lambda kv: (-kv[1], kv[0])) if total else []
    index = hhi(s for _, s in shares)
    return Concentration(category=category, hhi=index, effective_number=10_000.0 / index if index else 0.0,
                         band=band(index), shares=tuple(shares), of=of, base_hosts=float(total), fleet_hosts=fleet_hosts)


def _is_edr(vendor: str, product: str) -> bool:
    v, p = vendor.lower(), product.lower()
    return any(v == ev and ep in p for ev, ep in EDR_PRODUCTS)


def _is_key_service(name: str) -> bool:
    low = name.lower()
    return any(low == k or (low.startswith(k + "-") and low[len(k) + 1:].isdigit()) for k in KEY_SERVICES)


def _component_name(agent: InstalledAgent) -> str:
    """"vendor product", without repeating a vendor the product name already starts with."""
    if agent.product.lower().startswith(agent.vendor.lower()):
        return agent.product or agent.vendor
    return f"{agent.vendor} {agent.product}".strip()


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _val(x: object) -> str:
    return str(getattr(x, "value", x))


def _tier_weight(tier: int) -> float:
    return TIER_WEIGHTS[min(3, max(0, tier))]


class _Codes:
    """Integer codes for one hashable attribute of every host, first-seen order."""

    __slots__ = ("codes", "names")

    def __init__(self, values: Iterable[Hashable], n: int) -> None:
        table: dict[Hashable, int] = {}
        self.codes: IntArray = np.fromiter((table.setdefault(v, len(table)) for v in values), np.int64, n)
        self.names: list[Hashable] = list(table)

    @classmethod
    def derive(cls, parent: IntArray, values: Sequence[Hashable]) -> _Codes:
        """Codes of ``values[parent[i]]`` for every i, without touching the hosts again."""
        table: dict[Hashable, int] = {}
        remap = np.fromiter((table.setdefault(v, len(table)) for v in values), np.int64, len(values))
        out = cls.__new__(cls)
        out.codes = remap[parent] if len(values) else np.zeros(len(parent), np.int64)
        out.names = list(table)
        return out


@dataclass(frozen=True, slots=True)
class _Factor:
    kind: str  # one of _FACTOR_KINDS
    name: str  # display name
    selector: str
    edr: bool  # an EDR vendor or an EDR product


@dataclass(slots=True)
class _ServiceState:
    """Services under one down-mask."""

    g_lost: IntArray
    g_down: BoolArray
    s_direct: BoolArray
    s_degraded: BoolArray
    s_down: BoolArray
    parent: dict[int, int]  # transitively down service -> the dependency it went down through


#: Host attributes kept in each host's profile (see :class:`Fleet`), by position in the profile key: a selector
#: on one of them is evaluated per profile instead of per host.
_PROFILE_FIELDS: dict[str, int] = {"tenant": 0, "site": 1, "tier": 2, "os_family": 3, "os_build": 4, "platform": 5,
                                   "cloud_provider": 6, "cloud_region": 7, "hardware_vendor": 8, "encryption": 9,
                                   "oob_management": 10, "recovery_key_escrowed": 11, "recovery_key_verified": 14}


class Fleet:
    """A precomputed, reusable index over hosts and services; build once, assess many scenarios.

    ``escrow`` maps host ids to key-escrow records; where a host has a record, the record decides
    whether its recovery key is usable (escrowed and ``verified``), otherwise the host's own
    ``recovery_key_escrowed`` and ``recovery_key_verified`` flags do.

    Raises :class:`~ringfence.errors.InputError` when a redundancy group's selector is invalid.
    """

    def __init__(self, hosts: Sequence[Host], services: Sequence[Service],
                 escrow: Mapping[str, KeyEscrow] | None = None) -> None:
        self._build(hosts, services, escrow)

    def _build(self, hosts: Sequence[Host], services: Sequence[Service], escrow: Mapping[str, KeyEscrow] | None) -> None:
        self.hosts: tuple[Host, ...] = tuple(hosts)
        self.services: tuple[Service, ...] = tuple(services)
        self.escrow: Mapping[str, KeyEscrow] = dict(escrow or {})
        hs = self.hosts
        n = self.n = len(hs)
        self._field_cache: dict[str, tuple[IntArray, IntArray]] = {}
        self._cache: dict[str, object] = {}

        # One pass over the hosts: the index, a "profile" code per host (the combination of the
        # attributes the assessment needs; there are far fewer profiles than hosts) and the
        # host x agent incidence.  Everything per host is then an array lookup by profile.
        index: dict[str, int] = {}
        profiles: dict[tuple[object, ...], int] = {}
        prof_codes: list[int] = []
        by_id: dict[int, int] = {}
        by_value: dict[InstalledAgent, int] = {}
        agents: list[InstalledAgent] = []
        a_host: list[int] = []
        a_code: list[int] = []
        svc_pos = {s.id: k for k, s in enumerate(self.services)
                   if dependency_tier(s.name, s.tier) < dependency_tier("", 3)}
        served_by: list[tuple[int, int]] = []
        site_tz: dict[str, str] = {}
        for i, h in enumerate(hs):
            if h.id not in index:
                index[h.id] = i
            key = (h.tenant, h.site, h.tier, h.os_family, h.os_build, h.platform, h.cloud_provider, h.cloud_region,
                   h.hardware_vendor, h.encryption, h.oob_management, h.recovery_key_escrowed,
                   h.labels.get("role", ""), bool(h.services), h.recovery_key_verified)
            c = profiles.get(key)
            if c is None:
                c = profiles[key] = len(profiles)
            prof_codes.append(c)
            for a in h.agents:
                code = by_id.get(id(a))
                if code is None:
                    code = by_value.get(a)
                    if code is None:
                        code = by_value[a] = len(agents)
                        agents.append(a)
                    by_id[id(a)] = code
                a_host.append(i)
                a_code.append(code)
            if svc_pos and h.services:
                served_by.extend((i, svc_pos[x]) for x in h.services if x in svc_pos)
            if (h.site or _NO_SITE) not in site_tz:
                site_tz[h.site or _NO_SITE] = h.timezone
        self.index = index
        self.agents = agents
        self.agent_host: IntArray = np.asarray(a_host, np.int64)
        self.agent_code: IntArray = np.asarray(a_code, np.int64)
        prof = np.asarray(prof_codes, np.int64)
        pnames = list(profiles)
        self._profiles = pnames
        self._prof = prof
        self._profile_count: IntArray = np.bincount(prof, minlength=len(pnames))

        def per_profile(f: Callable[[tuple[object, ...]], object], dtype: type) -> npt.NDArray[Any]:
            return np.asarray([f(p) for p in pnames], dtype)[prof] if pnames else np.zeros(0, dtype)

        self.tier: IntArray = per_profile(lambda p: p[2], np.int64)
        self.host_weight: FloatArray = np.asarray(TIER_WEIGHTS, np.float64)[np.clip(self.tier, 0, 3)]
        self.tenant_codes = _Codes.derive(prof, [p[0] for p in pnames])
        self.site_codes = _Codes.derive(prof, [p[1] or _NO_SITE for p in pnames])
        self.os_codes = _Codes.derive(prof, [f"{_val(p[3])}/{p[4]}" if p[4] else _val(p[3]) for p in pnames])
        self._builds = _Codes.derive(prof, [str(p[4]).lower() for p in pnames])
        self._region = _Codes.derive(prof, [str(p[7]).lower() for p in pnames])
        self._build_name: dict[str, str] = {}
        self._region_name: dict[str, str] = {}
        for p in pnames:
            self._build_name.setdefault(str(p[4]).lower(), str(p[4]))
            self._region_name.setdefault(str(p[7]).lower(), str(p[7]))
        self.cloud: BoolArray = per_profile(lambda p: p[5] is Platform.CLOUD, np.bool_)
        self.oob: BoolArray = per_profile(lambda p: p[10], np.bool_)
        self.encrypted: BoolArray = per_profile(lambda p: p[9] is not DiskEncryption.NONE, np.bool_)
        self.key_ready: BoolArray = per_profile(lambda p: bool(p[11]) and bool(p[14]), np.bool_)
        for hid, rec in self.escrow.items():
            j = index.get(hid)
            if j is not None:
                self.key_ready[j] = rec.verified
        role_server = per_profile(lambda p: str(p[12]).lower() == "server", np.bool_)
        has_services = per_profile(lambda p: p[13], np.bool_)

        self._index_factors()
        self._index_services()

        served = np.zeros(n, np.bool_)
        served[self.gm_host] = True
        self.server: BoolArray = role_server | ((self.tier <= 2) & (has_services | served))
        self.host_class: IntArray = classify(self.server, self.cloud, self.encrypted, self.key_ready)
        # Dependency tier per host (directory 0, DNS 1, key escrow 2, tier-0 services 3, the rest 4): the
        # lowest of the services whose groups it is in or that it lists itself.
        s_dt = np.asarray([dependency_tier(s.name, s.tier) for s in self.services], np.int64)
        dep = np.full(n, dependency_tier("", 3), np.int64)
        if len(self.gm_host):
            np.minimum.at(dep, self.gm_host, s_dt[self.g_service[self.gm_group]])
        for i, k in served_by:
            dep[i] = min(dep[i], int(s_dt[k]))
        self.dep_tier: IntArray = dep
        key_services = [k for k, s in enumerate(self.services) if _is_key_service(s.name)]
        self.key_service_ids = set(key_services)
        #: Hosts of the directory, DNS and key escrow (recovered first at every site).
        self.first: BoolArray = dep < len(DEPENDENCY_TIERS)
        self.site_timezone: dict[str, str] = site_tz

    @property
    def id_rank(self) -> IntArray:
        """Rank of each host's id among the fleet's ids (the queue's final tie-break); computed once."""
        cached = self._cache.get("id_rank")
        if isinstance(cached, np.ndarray):
            return cached
        ids = np.asarray([h.id for h in self.hosts]) if self.n else np.zeros(0, "U1")
        rank = np.empty(self.n, np.int64)
        rank[np.argsort(ids, kind="stable")] = np.arange(self.n, dtype=np.int64)
        self._cache["id_rank"] = rank
        return rank

    # ------------------------------------------------------------------ indexing

    def _index_factors(self) -> None:
        """The host × factor incidence (kernel vendors, kernel components, OS builds, cloud regions)."""
        agents = self.agents
        # Factors: kernel vendors, kernel components, os builds, cloud regions.
        factors: list[_Factor] = []
        keys: dict[tuple[str, str], int] = {}
        inst: dict[int, list[tuple[bool, bool]]] = {}

        def factor(key: str, made: _Factor) -> int:
            f = keys.get((made.kind, key))
            if f is None:
                f = keys[(made.kind, key)] = len(factors)
                factors.append(made)
            return f

        agent_vendor = np.full(len(agents), -1, np.int64)
        agent_comp = np.full(len(agents), -1, np.int64)
        vendor_edr: dict[int, bool] = {}
        first_agent: dict[int, int] = {}
        for code, a in enumerate(agents):
            if not (a.kernel_mode or a.boot_start):
                continue
            vf = factor(a.vendor.lower(), _Factor("vendor", a.vendor, "", False))
            cf = factor(f"{a.vendor.lower()}\0{a.product.lower()}",
                        _Factor("component", _component_name(a), "", _is_edr(a.vendor, a.product)))
            agent_vendor[code], agent_comp[code] = vf, cf
            first_agent.setdefault(vf, code)
            first_agent.setdefault(cf, code)
            inst.setdefault(vf, []).append((a.kernel_mode, a.boot_start))
            inst.setdefault(cf, []).append((a.kernel_mode, a.boot_start))
            vendor_edr[vf] = vendor_edr.get(vf, False) or _is_edr(a.vendor, a.product)
        # Selectors reproduce exactly "some kernel-mode or boot-start agent of this vendor (and product)".
        for f, flags in inst.items():
            fx = factors[f]
            sample = agents[first_agent[f]]
            base = f"agent.vendor={selector_value(sample.vendor)}"
            if fx.kind == "component":
                base += f" and agent.product={selector_value(sample.product)}"
            sel = f"{base} and agent.kernel_mode=true"
            if not all(k for k, _ in flags):
                sel += f" or {base} and agent.boot_start=true"
            factors[f] = _Factor(fx.kind, fx.name, sel, vendor_edr[f] if fx.kind == "vendor" else fx.edr)

        n = self.n
        build_f = np.full(len(self._builds.names), -1, np.int64)
        for c, key in enumerate(self._builds.names):
            if key:
                name = self._build_name[str(key)]
                build_f[c] = factor(str(key), _Factor("os_build", name, f"os_build={selector_value(name)}", False))
        region_f = np.full(len(self._region.names), -1, np.int64)
        for c, key in enumerate(self._region.names):
            if key:
                name = self._region_name[str(key)]
                region_f[c] = factor(str(key), _Factor("cloud_region", name, f"cloud.region={selector_value(name)}", False))
        self.factors = factors
        self.agent_vendor, self.agent_comp = agent_vendor, agent_comp
        #: component factor -> its vendor factor
        self.comp_vendor: dict[int, int] = {int(c): int(v) for c, v in zip(agent_comp, agent_vendor, strict=True) if c >= 0}

        hosts_all = np.arange(n, dtype=np.int64)
        parts_h = [self.agent_host, self.agent_host, hosts_all, hosts_all]
        parts_f = [agent_vendor[self.agent_code], agent_comp[self.agent_code], build_f[self._builds.codes],
                   region_f[self._region.codes]]
        ph = np.concatenate(parts_h) if n else np.zeros(0, np.int64)
        pf = np.concatenate(parts_f) if n else np.zeros(0, np.int64)
        keep = pf >= 0
        nf = max(1, len(factors))
        pair = _unique(ph[keep] * nf + pf[keep])
        ph, pf = pair // nf, pair % nf
        # By host (pairs are sorted by host) and by factor.
        self.host_ptr: IntArray = np.searchsorted(ph, np.arange(n + 1)).astype(np.int64)
        self.host_fac: IntArray = pf
        order = np.argsort(pf, kind="stable")
        self.fac_host: IntArray = ph[order]
        self.fac_ptr: IntArray = np.searchsorted(pf[order], np.arange(len(factors) + 1)).astype(np.int64)

    def _index_services(self) -> None:
        """Group membership as index arrays, and the dependency graph."""
        svc = self.services
        self.svc_index: dict[str, int] = {}
        for k, s in enumerate(svc):
            self.svc_index.setdefault(s.id, k)
        g_service: list[int] = []
        g_min: list[int] = []
        g_name: list[str] = []
        members: list[IntArray] = []
        s_groups: list[list[int]] = []
        for k, s in enumerate(svc):
            mine: list[int] = []
            for gi, g in enumerate(s.redundancy_groups):
                if g.hosts:
                    index = self.index
                    idx = np.asarray(sorted({index[h] for h in g.hosts if h in index}), np.int64)
                elif g.selector:
                    try:
                        idx = np.flatnonzero(self.mask(g.selector)).astype(np.int64)
                    except InputError as e:
                        raise InputError(f"service {s.id} group {g.name or gi}: invalid selector",
                                         e.issues) from e
                else:
                    idx = np.zeros(0, np.int64)
                mine.append(len(members))
                members.append(idx)
                g_service.append(k)
                g_min.append(g.min_healthy)
                g_name.append(g.name or f"group {gi + 1}")
            s_groups.append(mine)
        self.g_members = members
        self.g_service: IntArray = np.asarray(g_service, np.int64)
        self.g_min: IntArray = np.asarray(g_min, np.int64)
        self.g_name = g_name
        self.g_size: IntArray = np.asarray([len(m) for m in members], np.int64)
        self.s_groups = s_groups
        self.gm_host: IntArray = np.concatenate(members) if members else np.zeros(0, np.int64)
        self.gm_group: IntArray = np.repeat(np.arange(len(members), dtype=np.int64), self.g_size)
        self.s_tier: IntArray = np.asarray([s.tier for s in svc], np.int64)

        graph = nx.DiGraph()
        graph.add_nodes_from(range(len(svc)))
        deps: list[list[int]] = []
        for k, s in enumerate(svc):
            ds = sorted({self.svc_index[d] for d in s.depends_on if d in self.svc_index})
            deps.append(ds)
            graph.add_edges_from((k, d) for d in ds)
        self.graph = graph
        self.deps = deps
        self.dependents: list[list[int]] = [sorted(graph.predecessors(k)) for k in range(len(svc))]
        cond = nx.condensation(graph)
        # Strongly connected components, dependencies before their dependents.
        self.scc_order: list[list[int]] = [sorted(cond.nodes[c]["members"]) for c in reversed(list(nx.topological_sort(cond)))]

    # ------------------------------------------------------------------ selectors

    def mask(self, scenario: str | Node) -> BoolArray:
        """Hosts matched by a selector, as a boolean array in fleet order (same answer as the predicate)."""
        node = parse(scenario) if isinstance(scenario, str) else scenario
        return self._eval(node)

    def _eval(self, node: Node) -> BoolArray:
        if isinstance(node, Compare):
            return self._agent_mask([node]) if node.is_agent else self._field_mask(node)
        if isinstance(node, Not):
            return ~self._eval(node.child)
        if isinstance(node, Or):
            out = np.zeros(self.n, np.bool_)
            for c in node.children:
                out |= self._eval(c)
            return out
        agent_cmps = [c for c in node.children if isinstance(c, Compare) and c.is_agent]
        out = self._agent_mask(agent_cmps) if agent_cmps else np.ones(self.n, np.bool_)
        for c in node.children:
            if not (isinstance(c, Compare) and c.is_agent):
                out &= self._eval(c)
        return out

    def _agent_mask(self, cmps: list[Compare]) -> BoolArray:
        pred = compile_predicate(And(tuple(cmps)))
        ok = np.fromiter((pred(_probe(a)) for a in self.agents), np.bool_, len(self.agents))
        out = np.zeros(self.n, np.bool_)
        if len(self.agents):
            out[self.agent_host[ok[self.agent_code]]] = True
        return out

    def _field_mask(self, node: Compare) -> BoolArray:
        field = "labels" if node.field == "label" or node.field.startswith("labels.") else node.field
        cached = self._field_cache.get(field)
        if cached is None:
            hs = self.hosts
            values: Iterable[Hashable]
            j = _PROFILE_FIELDS.get(field.replace(".", "_"))
            if j is not None:  # a field of the host's profile: its codes come from the profiles, not the hosts
                codes = _Codes.derive(self._prof, [p[j] for p in self._profiles]).codes
            else:
                if field == "labels":
                    seen: dict[int, Hashable] = {}

                    def key(h: Host) -> Hashable:
                        k = seen.get(id(h.labels))
                        if k is None:
                            k = seen[id(h.labels)] = tuple(sorted(h.labels.items()))
                        return k
                    values = (key(h) for h in hs)
                elif field == "service":
                    values = (h.services for h in hs)
                else:
                    attr = field.replace(".", "_")
                    values = (getattr(h, attr) for h in hs)
                codes = _Codes(values, self.n).codes
            reps = np.full(int(codes.max()) + 1 if len(codes) else 0, -1, np.int64)
            reps[codes[::-1]] = np.arange(len(codes) - 1, -1, -1, dtype=np.int64)  # first host with each code
            cached = self._field_cache[field] = (codes, reps)
        codes, reps = cached
        pred = compile_predicate(node)
        ok = np.fromiter((pred(self.hosts[r]) for r in reps), np.bool_, len(reps))
        return ok[codes] if len(reps) else np.zeros(self.n, np.bool_)

    def factor_mask(self, f: int) -> BoolArray:
        """Hosts carrying factor ``f`` (what :func:`top` uses instead of evaluating the selector)."""
        out = np.zeros(self.n, np.bool_)
        out[self.fac_host[self.fac_ptr[f]:self.fac_ptr[f + 1]]] = True
        return out

    # ------------------------------------------------------------------ services

    def service_state(self, down: BoolArray, *, paths: bool = True) -> _ServiceState:
        """Groups and services under a down-mask; ``parent`` links for ``via`` when ``paths``."""
        lost = np.bincount(self.gm_group, weights=down[self.gm_host], minlength=len(self.g_members)).astype(np.int64)
        g_down = (lost > 0) & (self.g_size - lost < self.g_min)
        g_hit = lost > 0
        ns = len(self.services)
        s_direct = np.bincount(self.g_service, weights=g_down, minlength=ns) > 0
        s_hit = np.bincount(self.g_service, weights=g_hit, minlength=ns) > 0
        s_down = s_direct.copy()
        parent: dict[int, int] = {}
        queue = [int(k) for k in np.flatnonzero(s_direct)]
        dependents = self.dependents
        head = 0
        while head < len(queue):
            u = queue[head]
            head += 1
            for v in dependents[u]:
                if not s_down[v]:
                    s_down[v] = True
                    parent[v] = u
                    queue.append(v)
        return _ServiceState(lost, g_down, s_direct, s_hit & ~s_down, s_down, parent if paths else {})

    # ------------------------------------------------------------------ whole-fleet facts (cached)

    def concentration(self) -> dict[str, Concentration]:
        """HHI per category over the whole fleet."""
        cached = self._cache.get("hhi")
        if isinstance(cached, dict):
            return cached
        out: dict[str, Concentration] = {}
        # EDR: each host with kernel-mode EDR counts once, split equally between its EDR vendors.
        edr_vendor = np.asarray([f for f, x in enumerate(self.factors) if x.kind == "vendor" and x.edr], np.int64)
        edr_weights: dict[str, float] = {}
        if len(edr_vendor):
            is_edr_agent = np.zeros(len(self.agents), np.bool_)
            for code, a in enumerate(self.agents):
                is_edr_agent[code] = a.kernel_mode and _is_edr(a.vendor, a.product)
            sel = is_edr_agent[self.agent_code] if len(self.agents) else np.zeros(0, np.bool_)
            nf = max(1, len(self.factors))
            pairs = _unique(self.agent_host[sel] * nf + self.agent_vendor[self.agent_code[sel]])
            ph, pf = pairs // nf, pairs % nf
            per_host = np.bincount(ph, minlength=self.n)
            w = np.bincount(pf, weights=1.0 / per_host[ph], minlength=nf)
            for f in np.flatnonzero(w):
                edr_weights[self.factors[f].name] = edr_weights.get(self.factors[f].name, 0.0) + float(w[f])
        n = self.n
        out["edr_vendor"] = _concentration("edr_vendor", edr_weights, "hosts with kernel-mode EDR", n)
        counted = [(p, float(c)) for p, c in zip(self._profiles, self._profile_count.tolist(), strict=True)]

        def tally(label: Callable[[tuple[object, ...]], str | None]) -> dict[str, float]:
            weights: dict[str, float] = {}
            for p, c in counted:
                name = label(p)
                if name is not None:
                    weights[name] = weights.get(name, 0.0) + c
            return weights

        def region(p: tuple[object, ...]) -> str:
            provider = str(p[6]).lower()
            if p[7]:
                return f"{provider}/{p[7]}"
            return provider or ON_PREMISES

        def hypervisor(p: tuple[object, ...]) -> str | None:
            if p[5] is Platform.VM:
                return str(p[8]) or "unknown"
            if p[5] is Platform.CLOUD:
                return str(p[6]).lower() or "unknown cloud"
            return None

        out["os_family"] = _concentration("os_family", tally(lambda p: _val(p[3])), fleet_hosts=n)
        counts = np.bincount(self.os_codes.codes, minlength=len(self.os_codes.names))
        out["os_build"] = _concentration("os_build", {str(k): float(c) for k, c in zip(self.os_codes.names, counts, strict=True)},
                                         fleet_hosts=n)
        out["disk_encryption"] = _concentration("disk_encryption", tally(lambda p: _val(p[9])), fleet_hosts=n)
        out["cloud_provider"] = _concentration("cloud_provider", tally(lambda p: str(p[6]).lower() or ON_PREMISES), fleet_hosts=n)
        out["cloud_region"] = _concentration("cloud_region", tally(region), fleet_hosts=n)
        out["hypervisor"] = _concentration("hypervisor", tally(hypervisor), "virtual and cloud hosts", n)
        self._cache["hhi"] = out
        return out

    def exposure(self) -> tuple[ComponentExposure, ...]:
        """Share and tier-weighted share of hosts running each kernel-mode or boot-start component."""
        cached = self._cache.get("exposure")
        if isinstance(cached, tuple):
            return cached
        total_w = float(self.host_weight.sum())
        flags: dict[int, tuple[bool, bool]] = {}
        for code, a in enumerate(self.agents):
            f = int(self.agent_comp[code])
            if f >= 0:
                k, b = flags.get(f, (False, False))
                flags[f] = (k or a.kernel_mode, b or a.boot_start)
        rows = []
        for f, (k, b) in flags.items():
            members = self.fac_host[self.fac_ptr[f]:self.fac_ptr[f + 1]]
            rows.append(ComponentExposure(
                component=self.factors[f].name, kernel_mode=k, boot_start=b, hosts=len(members),
                share=len(members) / self.n if self.n else 0.0,
                tier_weighted_share=float(self.host_weight[members].sum()) / total_w if total_w else 0.0))
        out = tuple(sorted(rows, key=lambda e: (-e.hosts, e.component)))
        self._cache["exposure"] = out
        return out

    def spofs(self) -> tuple[Spof, ...]:
        """Common-mode single points of failure of tier-0/1 services (whole fleet)."""
        cached = self._cache.get("spofs")
        if isinstance(cached, tuple):
            return cached
        out: list[Spof] = []
        nf = len(self.factors)
        crit_groups = np.flatnonzero(self.s_tier[self.g_service] <= 1) if len(self.g_service) else np.zeros(0, np.int64)
        sel = np.isin(self.gm_group, crit_groups)
        h, g = self.gm_host[sel], self.gm_group[sel]
        if nf and len(h):
            f, rep = _expand(self.host_ptr, self.host_fac, h)
            gg = g[rep]
            pairs, counts = _unique_counts(gg * nf + f)
            pg, pf = pairs // nf, pairs % nf
            fatal = counts > self.g_size[pg] - self.g_min[pg]
            by_service: dict[int, dict[int, list[int]]] = {}
            for gi, fi in zip(pg[fatal].tolist(), pf[fatal].tolist(), strict=True):
                by_service.setdefault(int(self.g_service[gi]), {}).setdefault(fi, []).append(gi)
            for k in sorted(by_service):
                out.extend(self._service_spofs(k, by_service[k]))
        result = tuple(sorted(out, key=lambda s: (s.tier, s.service, _FACTOR_KINDS.index(s.kind), s.name)))
        self._cache["spofs"] = result
        return result

    def _service_spofs(self, k: int, fatal: Mapping[int, list[int]]) -> list[Spof]:
        s = self.services[k]
        members = np.asarray(sorted({h for g in self.s_groups[k] for h in self.g_members[g].tolist()}), np.int64)
        replicas = len(members)
        comps_of_vendor: dict[int, list[int]] = {}
        for f in fatal:
            if self.factors[f].kind == "component":
                v = self.comp_vendor[f]
                comps_of_vendor.setdefault(v, []).append(f)
        out = []
        for f, groups in sorted(fatal.items()):
            fx = self.factors[f]
            if fx.kind == "vendor" and comps_of_vendor.get(f):
                continue  # a single product of this vendor already explains it
            carriers = self.factor_mask_count(f, members)
            what = {"component": fx.name, "vendor": f"kernel-mode software from {fx.name}",
                    "os_build": f"OS build {fx.name}", "cloud_region": f"in cloud region {fx.name}"}[fx.kind]
            verb = "run"
            if carriers == replicas:
                msg = f"all {replicas} replicas of {s.name} {verb} {what}"
            else:
                worst = groups[0]
                keep = int(self.g_size[worst]) - self.factor_mask_count(f, self.g_members[worst])
                msg = (f"{carriers} of {replicas} replicas of {s.name} {verb} {what}; group {self.g_name[worst]} "
                       f"would keep {keep} of the {int(self.g_min[worst])} it needs")
            out.append(Spof(service=s.id, tier=s.tier, kind=fx.kind, name=fx.name, replicas=replicas, message=msg))
        return out

    def factor_mask_count(self, f: int, hosts: IntArray) -> int:
        """How many of ``hosts`` carry factor ``f`` (looked up per host: ``hosts`` is small)."""
        ptr, fac = self.host_ptr, self.host_fac
        count = 0
        for h in hosts.tolist():
            a, b = int(ptr[h]), int(ptr[h + 1])
            k = a + int(np.searchsorted(fac[a:b], f))
            count += k < b and int(fac[k]) == f
        return count

    def transitive_dependents(self, k: int) -> list[int]:
        """Every service that depends on service ``k``, directly or through others."""
        seen = {k}
        stack = [k]
        while stack:
            u = stack.pop()
            for v in self.dependents[u]:
                if v not in seen:
                    seen.add(v)
                    stack.append(v)
        seen.discard(k)
        return sorted(seen)


def _probe(agent: InstalledAgent) -> Host:
    return Host(id=HostId(""), hostname="", tenant=TenantId(""), os_family=OsFamily.OTHER, agents=(agent,))


def _unique(x: IntArray) -> IntArray:
    """Sorted distinct values (``np.unique`` by sorting, which is faster here than its hash path)."""
    if not len(x):
        return x
    x = np.sort(x)
    return x[np.r_[True, x[1:] != x[:-1]]]


def _unique_counts(x: IntArray) -> tuple[IntArray, IntArray]:
    """Sorted distinct values and how often each occurs."""
    if not len(x):
        return x, np.zeros(0, np.int64)
    x = np.sort(x)
    starts = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])
    return x[starts], np.diff(np.r_[starts, len(x)]).astype(np.int64)


def _expand(ptr: IntArray, data: IntArray, rows: IntArray) -> tuple[IntArray, IntArray]:
    """Ragged gather: ``data[ptr[r]:ptr[r+1]]`` for every r in ``rows``, with the position in ``rows``."""
    starts = ptr[rows]
    lens = ptr[rows + 1] - starts
    total = int(lens.sum())
    rep = np.repeat(np.arange(len(rows), dtype=np.int64), lens)
    offs = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    return data[np.repeat(starts, lens) + offs], rep


# ---------------------------------------------------------------------- assess


def assess(fleet: Fleet, scenario: str, *, recovery: RecoveryModel = RecoveryModel()) -> Assessment:  # noqa: B008 - frozen
    """What if every host matching ``scenario`` (a selector) failed at once?

    Raises :class:`~ringfence.errors.InputError` naming the field when the selector is invalid.
    """
    down = fleet.mask(scenario)
    idx = np.flatnonzero(down)
    n_down = len(idx)
    state = fleet.service_state(down)
    impacts_down, impacts_degraded = _impacts(fleet, state)
    rec, _ = _recovery(fleet, idx, state, recovery)
    spofs = fleet.spofs()
    critical = sorted({fleet.services[k].regulatory_function for k in np.flatnonzero(state.s_down)
                       if fleet.services[k].regulatory_function})
    return Assessment(
        scenario=scenario,
        hosts_total=fleet.n,
        hosts_down=n_down,
        hosts_down_share=n_down / fleet.n if fleet.n else 0.0,
        blast_radius=_blast_radius(fleet, idx),
        down_hosts=tuple(fleet.hosts[i].id for i in idx.tolist()),
        services_total=len(fleet.services),
        services_down=impacts_down,
        services_degraded=impacts_degraded,
        hhi=fleet.concentration(),
        exposure=fleet.exposure(),
        spofs=spofs,
        recovery=rec,
        recommendations=_recommendations(fleet, idx, state, rec, recovery, spofs),
        critical_functions=tuple(critical),
    )


def _blast_radius(fleet: Fleet, idx: IntArray) -> dict[str, dict[str, int]]:
    def tally(codes: _Codes, label: Callable[[Hashable], str]) -> dict[str, int]:
        counts = np.bincount(codes.codes[idx], minlength=len(codes.names))
        pairs = [(label(codes.names[c]), int(counts[c])) for c in np.flatnonzero(counts)]
        return dict(sorted(pairs, key=lambda kv: (-kv[1], kv[0])))

    tiers = np.bincount(np.clip(fleet.tier[idx], 0, None), minlength=4) if len(idx) else np.zeros(4, np.int64)
    return {
        "tenant": tally(fleet.tenant_codes, str),
        "site": tally(fleet.site_codes, str),
        "os": tally(fleet.os_codes, str),
        "tier": {str(t): int(c) for t, c in enumerate(tiers) if c},
    }


def _impacts(fleet: Fleet, state: _ServiceState) -> tuple[tuple[ServiceImpact, ...], tuple[ServiceImpact, ...]]:
    svc = fleet.services
    down: list[ServiceImpact] = []
    degraded: list[ServiceImpact] = []

    def groups_text(k: int, only_down: bool) -> tuple[tuple[str, ...], str]:
        names, parts = [], []
        for g in fleet.s_groups[k]:
            lost = int(state.g_lost[g])
            if not lost or (only_down and not state.g_down[g]):
                continue
            size, need = int(fleet.g_size[g]), int(fleet.g_min[g])
            names.append(fleet.g_name[g])
            parts.append(f"{fleet.g_name[g]}: {size - lost} of {size} survive, needs {need}")
        return tuple(names), "; ".join(parts)

    for k in np.flatnonzero(state.s_down).tolist():
        s = svc[k]
        if state.s_direct[k]:
            failed, detail = groups_text(k, True)
            down.append(ServiceImpact(s.id, s.name, s.tenant, s.tier, "down", "direct", failed_groups=failed,
                                      detail=detail, regulatory_function=s.regulatory_function))
        else:
            path = []
            u = k
            while u in state.parent:
                u = state.parent[u]
                path.append(svc[u].id)
            detail = f"depends on {svc[state.parent[k]].name}, which is down"
            down.append(ServiceImpact(s.id, s.name, s.tenant, s.tier, "down", "transitive", via=tuple(path),
                                      detail=detail, regulatory_function=s.regulatory_function))
    for k in np.flatnonzero(state.s_degraded).tolist():
        s = svc[k]
        failed, detail = groups_text(k, False)
        degraded.append(ServiceImpact(s.id, s.name, s.tenant, s.tier, "degraded", "direct", failed_groups=failed,
                                      detail=detail, regulatory_function=s.regulatory_function))

    def order(x: ServiceImpact) -> tuple[int, bool, str, str]:
        return (x.tier, x.cause != "direct", x.name, x.service)
    return tuple(sorted(down, key=order)), tuple(sorted(degraded, key=order))


# ---------------------------------------------------------------------- recovery


def plan_recovery(fleet: Fleet, idx: IntArray, model: RecoveryModel = RecoveryModel(),  # noqa: B008 - frozen
                  runbooks: Sequence[Runbook] = (), *, start: datetime | None = None, keys_ready: bool = False,
                  start_hours: float = 0.0, ready_hours: FloatArray | None = None,
                  previous: RecoveryPlan | None = None) -> RecoveryPlan:
    """The shared recovery planner (:mod:`ringfence.domain.recovery`) for the fleet hosts ``idx``.

    ``start`` (aware) is the plan's hour 0; it is needed only when the model has shifts.  The first runbook
    whose ``match`` selects a host decides its minutes and whether it runs on an automated lane; a host no
    runbook matches takes its class minutes on its site's technicians.  ``keys_ready`` plans the what-if
    "every encrypted disk has a usable key" (the same classification with ``key_ready`` true).

    A re-plan passes the ``previous`` plan (same model and runbooks) and the hosts still to do: nothing that
    decides the queue changes with progress, so their runbooks, minutes and order are taken from it instead of
    being recomputed (every host of ``idx`` must be in ``previous``).
    """
    idx = np.asarray(idx, np.int64)
    if previous is not None:
        return _replan(fleet, idx, model, runbooks, previous, start, start_hours, ready_hours)
    if keys_ready:
        cls = classify(fleet.server[idx], fleet.cloud[idx], fleet.encrypted[idx], np.ones(len(idx), np.bool_))
    else:
        cls = fleet.host_class[idx]
    minutes = class_minutes(cls, model)
    rb = np.full(len(idx), -1, np.int64)
    for r, book in enumerate(runbooks):
        free = rb < 0
        if not free.any():
            break
        hit = free & (fleet.mask(book.match)[idx] if book.match else np.ones(len(idx), np.bool_))
        rb[hit] = r
        if book.minutes is not None:
            minutes[hit] = book.minutes
    lanes, of = _lanes(runbooks)
    lane = of[rb]
    site = fleet.site_codes.codes[idx]
    names = [str(x) for x in fleet.site_codes.names]
    order = queue_order(np.where(lane < 0, site, len(names) + lane), fleet.dep_tier[idx], fleet.tier[idx], minutes,
                        fleet.id_rank[idx])
    return _finish(fleet, idx, model, runbooks, cls, rb, minutes, lane, lanes, order, start, start_hours, ready_hours)


def _lanes(runbooks: Sequence[Runbook]) -> tuple[list[Lane], IntArray]:
    """The automated lanes of ``runbooks`` and each runbook's lane (-1: technicians)."""
    lanes: list[Lane] = []
    of = np.full(len(runbooks) + 1, -1, np.int64)  # the last entry: no runbook
    for r, book in enumerate(runbooks):
        if book.automated is not None:
            of[r] = len(lanes)
            lanes.append(Lane(book.name, book.automated.concurrency, book.automated.cap_minutes))
    return lanes, of


def _replan(fleet: Fleet, idx: IntArray, model: RecoveryModel, runbooks: Sequence[Runbook], previous: RecoveryPlan,
            start: datetime | None, start_hours: float, ready_hours: FloatArray | None) -> RecoveryPlan:
    pos = np.full(fleet.n, -1, np.int64)
    pos[previous.host_index] = np.arange(len(previous.host_index))
    p = pos[idx]
    if (p < 0).any():
        raise InputError.single("hosts", f"{int((p < 0).sum()):,} hosts are not in the previous plan",
                                expected="a re-plan of hosts that were planned before")
    mine = np.full(fleet.n, -1, np.int64)
    mine[idx] = np.arange(len(idx))
    order = mine[previous.host_index[previous.queue]]
    order = order[order >= 0]
    lanes, of = _lanes(runbooks)
    rb = previous.runbook[p]
    return _finish(fleet, idx, model, runbooks, previous.host_class[p], rb, previous.minutes[p], of[rb], lanes, order,
                   start, start_hours, ready_hours)


def _finish(fleet: Fleet, idx: IntArray, model: RecoveryModel, runbooks: Sequence[Runbook], cls: IntArray,
            rb: IntArray, minutes: FloatArray, lane: IntArray, lanes: Sequence[Lane], order: IntArray,
            start: datetime | None, start_hours: float, ready_hours: FloatArray | None) -> RecoveryPlan:
    site = fleet.site_codes.codes[idx]
    names = [str(x) for x in fleet.site_codes.names]
    has_shifts = bool(model.default_shifts or model.shifts)
    if has_shifts and start is None:
        raise InputError.single("start", "is missing", expected="the plan's start time when technicians have shifts")
    work = np.bincount(site, weights=np.where(lane < 0, minutes, 0.0), minlength=len(names))
    cache: dict[tuple[object, ...], Capacity] = {}
    capacity = [build_capacity(model, nm, fleet.site_timezone.get(nm, "UTC"), start or _EPOCH,
                               float(work.max()), cache, from_hours=start_hours)
                if has_shifts else Capacity(model.technicians.get(nm, model.technicians_per_site))
                for c, nm in enumerate(names)]
    done = schedule(site, minutes, order, capacity, lane=lane, lanes=lanes, start_hours=start_hours,
                    ready_hours=ready_hours)
    eta, burn = _eta_and_burn(site, done, names)
    group = np.where(lane < 0, site, len(names) + lane)
    # In queue order each site's (and lane's) done times never decrease, unless hosts have ready times.
    by_group = order if ready_hours is None else np.lexsort((done, group))
    done_all = np.zeros(fleet.n)
    done_all[idx] = done
    hit = np.zeros(fleet.n, np.bool_)
    hit[idx] = True
    state = fleet.service_state(hit, paths=False)
    down = np.flatnonzero(state.s_down).tolist()
    restore, why = restore_times(down, fleet.s_groups, fleet.g_members, fleet.g_min, state.g_lost, fleet.deps,
                                 fleet.scc_order, done_all)
    breaches: list[RtoBreach] = []
    for k, hours in restore.items():
        sv = fleet.services[k]
        m = hours * 60.0
        kind = ("mtd" if sv.mtd_minutes is not None and m > sv.mtd_minutes else
                "rto" if sv.rto_minutes is not None and m > sv.rto_minutes else "")
        if kind:
            breaches.append(RtoBreach(sv.id, sv.tier, hours, sv.rto_minutes, sv.mtd_minutes, kind))
    breaches.sort(key=lambda x: (x.tier, x.breaks != "mtd", -x.restore_hours, x.service))
    return RecoveryPlan(
        host_index=idx, host_class=cls, runbook=rb, minutes=minutes, done_hours=done, queue=order,
        recovery_hours=float(done.max()) if len(done) else 0.0,
        eta_hours_by_site=dict(sorted(eta.items())),
        eta_hours_by_service={fleet.services[k].id: h for k, h in sorted(restore.items())},
        burn_down_by_site=dict(sorted(burn.items())),
        waves=waves(np.where(lane < 0, site, 0), done, names, capacity, lane=lane, lanes=lanes, order=by_group),
        critical_path=_critical_path(fleet, restore, why),
        rto_breaches=tuple(breaches))


def _eta_and_burn(site: IntArray, done: FloatArray, names: Sequence[str]) -> tuple[
        dict[str, float], dict[str, tuple[tuple[float, int], ...]]]:
    """ETA per site (its last host) and its burn-down: hosts not yet done at 25 evenly spaced hours (O(n))."""
    n_sites = len(names)
    count = np.bincount(site, minlength=n_sites)
    last = np.full(n_sites, -np.inf)
    if len(site):
        np.maximum.at(last, site, done)
    per = last[site]
    fin = np.isfinite(per) & (per > 0)
    cell = np.zeros(len(site), np.int64)
    cell[fin] = np.ceil(done[fin] * _BURN_DOWN_POINTS / per[fin]).astype(np.int64)
    cells = np.bincount(site * (_BURN_DOWN_POINTS + 1) + np.clip(cell, 0, _BURN_DOWN_POINTS),
                        minlength=n_sites * (_BURN_DOWN_POINTS + 1)).reshape(n_sites, _BURN_DOWN_POINTS + 1)
    # left[c, k]: hosts of site c whose cell is k or more.
    left = cells[:, ::-1].cumsum(axis=1)[:, ::-1]
    eta: dict[str, float] = {}
    burn: dict[str, tuple[tuple[float, int], ...]] = {}
    for c in np.flatnonzero(count).tolist():
        nm = names[c]
        t_last = float(last[c])
        eta[nm] = t_last
        if not math.isfinite(t_last):
            burn[nm] = ((0.0, int(count[c])),)
            continue
        grid = np.linspace(0.0, t_last, _BURN_DOWN_POINTS + 1)
        row = [int(x) for x in left[c, 2:].tolist()] + [0]  # at grid point j: hosts whose cell is above j
        burn[nm] = ((0.0, int(count[c])), *((float(h), x) for h, x in zip(grid[1:].tolist(), row, strict=True)))
    return eta, burn


def _critical_path(fleet: Fleet, restore: Mapping[int, float], why: Mapping[int, CriticalStep]) -> tuple[str, ...]:
    """From the service back last (ties: lower tier, then id) to the host that set its time."""
    if not restore:
        return ()
    k = min(restore, key=lambda x: (-restore[x], fleet.services[x].tier, fleet.services[x].id))
    out: list[str] = []
    seen: set[int] = set()
    while k not in seen:
        seen.add(k)
        step = why[k]
        name = fleet.services[k].id
        if step.cause == "dependency" and step.dependency >= 0 and step.dependency != k:
            out.append(f"{name} back at {restore[k]:.2f} h: waits for {fleet.services[step.dependency].id}")
            k = step.dependency
            continue
        if step.host >= 0:
            h = fleet.hosts[step.host]
            out.append(f"{name} back at {restore[k]:.2f} h: group {fleet.g_name[step.group]} reaches min_healthy "
                       f"when {h.id} (site {h.site or _NO_SITE}) is back")
        else:
            out.append(f"{name} back at {restore[k]:.2f} h" + (
                f": group {fleet.g_name[step.group]} cannot reach min_healthy" if step.group >= 0 else ""))
        break
    return tuple(out)


def _recovery(fleet: Fleet, idx: IntArray, state: _ServiceState, model: RecoveryModel) -> tuple[RecoveryResult, RecoveryPlan]:
    plan = plan_recovery(fleet, idx, model)
    enc = fleet.encrypted[idx]
    n_enc = int(enc.sum())
    ready = int((enc & fleet.key_ready[idx]).sum())
    remote = fleet.oob[idx] | fleet.cloud[idx]
    cls = plan.host_class
    effort = {name: float(plan.minutes[cls == c].sum()) / 60.0 for c, name in enumerate(CLASSES)}
    hit = np.zeros(fleet.n, np.bool_)
    hit[idx] = True
    first_services = sorted(fleet.services[k].id for k in fleet.key_service_ids
                            if any(hit[fleet.g_members[g]].any() for g in fleet.s_groups[k]))
    return RecoveryResult(
        key_readiness=ready / n_enc if n_enc else 1.0,
        encrypted_hosts=n_enc,
        hands_on_share=float((~remote).sum()) / len(idx) if len(idx) else 0.0,
        effort_hours_by_class=effort,
        recovery_hours=max(plan.eta_hours_by_site.values(), default=0.0),
        eta_hours_by_site=plan.eta_hours_by_site,
        burn_down_by_site=plan.burn_down_by_site,
        rto_breaches=plan.rto_breaches,
        first=tuple(first_services),
    ), plan


# ---------------------------------------------------------------------- recommendations


def _recommendations(fleet: Fleet, idx: IntArray, state: _ServiceState, rec: RecoveryResult,
                     model: RecoveryModel, spofs: Sequence[Spof]) -> tuple[Recommendation, ...]:
    """Candidate actions scored by tier-weighted services protected plus technician-hours saved / 8."""
    svc = fleet.services
    cands: list[tuple[float, str, str, dict[str, float | int | str]]] = []

    def weight(ks: Iterable[int]) -> float:
        return sum(_tier_weight(svc[k].tier) for k in ks)

    # 1. Recovery keys: each host to reimage would instead be unlocked as what it is (PC, server or cloud VM).
    cls = fleet.host_class[idx]
    unready = int((cls == REIMAGE).sum())
    if unready:
        unlocked = classify(fleet.server[idx], fleet.cloud[idx], fleet.encrypted[idx], np.ones(len(idx), np.bool_))
        redo = cls == REIMAGE
        hours_saved = float((class_minutes(cls[redo], model) - class_minutes(unlocked[redo], model)).sum()) / 60.0
        reimage = np.zeros(fleet.n, np.bool_)
        reimage[idx[redo]] = True
        reimage_services = [k for k in np.flatnonzero(state.s_down).tolist()
                            if any(reimage[fleet.g_members[g]].any() for g in fleet.s_groups[k])]
        score = weight(reimage_services) + hours_saved / _HOURS_PER_UNIT
        cands.append((score, f"escrow and verify recovery keys for {unready:,} hosts",
                      f"{unready:,} of {rec.encrypted_hosts:,} encrypted hosts down have no escrowed and verified key "
                      f"(key readiness {rec.key_readiness:.0%}); each must be reimaged ({model.reimage_minutes:g} min) "
                      f"instead of unlocked, {hours_saved:,.1f} technician-hours in all",
                      {"hosts": unready, "key_readiness": round(rec.key_readiness, 4),
                       "technician_hours_saved": round(hours_saved, 1), "services_slowed": len(reimage_services)}))

    down_set = set(np.flatnonzero(state.s_down).tolist())
    # 2. Pin tier-0 groups of directly failed tier-0 services to N-1.
    for k in np.flatnonzero(state.s_direct & (fleet.s_tier == 0)).tolist():
        through = [d for d in fleet.transitive_dependents(k) if d in down_set and not state.s_direct[d]]
        groups = [fleet.g_name[g] for g in fleet.s_groups[k] if state.g_down[g]]
        cands.append((weight([k, *through]), f"pin tier-0 groups of {svc[k].name} to N-1",
                      f"{_plural(len(groups), 'group')} ({', '.join(groups)}) fell below min_healthy together; holding "
                      f"one group on the previous release keeps {svc[k].name} up, and "
                      f"{_plural(len(through), 'dependent service')} down with it",
                      {"service": svc[k].id, "groups": len(groups), "dependents_down": len(through)}))

    # 3. Diversify EDR where one EDR vendor or product takes down a tier-0/1 service that is down here.
    edr_names = {f.name for f in fleet.factors if f.edr and f.kind in ("vendor", "component")}
    seen: set[str] = set()
    for s in spofs:
        if s.kind not in ("vendor", "component") or s.name not in edr_names or s.service in seen:
            continue
        seen.add(s.service)
        k = fleet.svc_index[s.service]
        if k not in down_set:
            continue
        deps = fleet.transitive_dependents(k)
        cands.append((weight([k, *deps]), f"diversify EDR on service {svc[k].name}",
                      f"{s.message}; run a second EDR vendor on at least min_healthy hosts of each group "
                      f"({_plural(len(deps), 'service')} depend on it)",
                      {"service": s.service, "edr": s.name, "replicas": s.replicas, "dependents": len(deps)}))

    # 4. Split a tenant's rings when it lost a large share of its own hosts at once.
    if len(idx):
        tenant_codes = fleet.tenant_codes.codes
        total = np.bincount(tenant_codes, minlength=len(fleet.tenant_codes.names))
        lost = np.bincount(tenant_codes[idx], minlength=len(total))
        for t in np.flatnonzero(lost).tolist():
            share = lost[t] / total[t]
            if share < _TENANT_SPLIT_SHARE or lost[t] < _TENANT_SPLIT_MIN_HOSTS:
                continue
            tenant = str(fleet.tenant_codes.names[t])
            mine = [k for k in down_set if svc[k].tenant == tenant]
            cands.append((weight(mine) + float(fleet.host_weight[idx[tenant_codes[idx] == t]].sum()) / 100.0,
                          f"split tenant {tenant}'s rings",
                          f"{int(lost[t]):,} of {int(total[t]):,} of its hosts ({share:.0%}) failed at once; "
                          f"more rings with a delay between them cap one bad update at the first ring",
                          {"tenant": tenant, "hosts_down": int(lost[t]), "share": round(float(share), 4),
                           "services_down": len(mine)}))

    cands.sort(key=lambda c: (-c[0], c[1]))
    return tuple(Recommendation(rank=i + 1, action=a, why=w, numbers={**nums, "impact": round(score, 2)})
                 for i, (score, a, w, nums) in enumerate(cands[:RECOMMENDATION_LIMIT]))


# ---------------------------------------------------------------------- top


def top(fleet: Fleet, n: int = 10) -> list[TopEntry]:
    """The ``n`` single vendors, kernel components, OS builds and cloud regions whose failure hurts most.

    Ranked by tier-0/1 services down (direct and transitive), then hosts down, then services down.
    A component whose hosts are exactly its vendor's is left out (the vendor row covers it).
    Each entry's ``selector`` reproduces the scenario with :func:`assess`.
    """
    rows: list[tuple[int, int, int, str, str, str]] = []
    counts = np.diff(fleet.fac_ptr)
    crit = fleet.s_tier <= 1
    for f, fx in enumerate(fleet.factors):
        hosts = int(counts[f])
        if not hosts:
            continue
        if fx.kind == "component" and hosts == int(counts[fleet.comp_vendor[f]]):
            continue
        state = fleet.service_state(fleet.factor_mask(f), paths=False)
        rows.append((int((state.s_down & crit).sum()), hosts, int(state.s_down.sum()), fx.kind, fx.name, fx.selector))
    rows.sort(key=lambda r: (-r[0], -r[1], -r[2], _FACTOR_KINDS.index(r[3]), r[4]))
    return [TopEntry(rank=i + 1, kind=kind, name=name, selector=sel, critical_services_down=c,
                     services_down=s, hosts_down=h) for i, (c, h, s, kind, name, sel) in enumerate(rows[:max(0, n)])]
