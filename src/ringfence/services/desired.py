"""Desired state of many hosts at once: what each product should be on each host, and why.

:func:`desired_many` answers, for every host it is given, exactly what the single-host
:func:`ringfence.services.rollouts.desired_state` answers (that function delegates here), with
a fixed number of store reads whatever the number of hosts: products and releases, kill switches,
tenant policies, rollouts (newest first), the exposed hosts of each rollout and reported
versions.  The rule itself is pure and lives in :mod:`ringfence.domain.desired`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ringfence.adapters.db.stores import rollouts as store
from ringfence.domain.desired import Desired, Exposure, KillSwitch, desired_version
from ringfence.domain.model import Host
from ringfence.domain.policies import TenantPolicies
from ringfence.domain.rollout import Release, RolloutState

__all__ = ["Desired", "desired_many", "desired_one", "releases_by_version"]


def desired_many(conn: Any, hosts: Sequence[Host], *, all_hosts: bool = False) -> dict[str, dict[str, Desired]]:
    """``host id → product → Desired`` for these hosts, inside the caller's transaction ``conn``
    (``all_hosts``: they are the whole inventory, so per-host filters are dropped from the reads)."""
    ids = None if all_hosts else [h.id for h in hosts]
    releases: dict[str, Release] = {r.id: r for r in store.list_releases(conn)}
    products = sorted({r.product for r in releases.values()})
    switches = {p: KillSwitch(s["actor"], s["reason"]) for p, s in store.active_kill_switches(conn).items()}
    versions = store.reported_versions(conn, ids)
    exposures = store.exposures(conn, ids)
    by_product: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
    for head in store.rollout_heads(conn):
        by_product[head[1]].append(head)
    tenants = sorted({h.tenant for h in hosts})
    policy_rows = [p for p in store.list_policies(conn) if p["tenant"] in tenants]
    exposed_rollouts = {rid for rid, _h in exposures}
    out: dict[str, dict[str, Desired]] = {h.id: {} for h in hosts}
    for product in products:
        switch = switches.get(product)
        policies = TenantPolicies(policy_rows, product)
        candidates = [(rid, RolloutState(state), releases[release_id].version)
                      for rid, _p, state, release_id in by_product.get(product, ()) if rid in exposed_rollouts]
        pinned: list[str | None] = []

        def previous(product: str = product, pinned: list[str | None] = pinned) -> str | None:
            if not pinned:  # one read per product, and only when some host is pinned to N-1
                prev = store.pinned_previous(conn, product)
                pinned.append(prev.version if prev is not None else None)
            return pinned[0]

        for host in hosts:
            current, lkg = versions.get((host.id, product), ("", ""))
            exposure = None
            for rid, state, version in candidates:
                mine = exposures.get((rid, host.id))
                if mine is not None:
                    exposure = Exposure(rid, state, version, from_version=mine[0], rolled_back=mine[1], wave=mine[2])
                    break
            out[host.id][product] = desired_version(exposure=exposure, switch=switch, policy=policies.of(host),
                                                    current=current, last_known_good=lkg, previous=previous)
    return out


def desired_one(conn: Any, host: Host) -> dict[str, Desired]:
    """Desired state of one host (the same rules and reads, restricted to it)."""
    return desired_many(conn, [host])[host.id]


def releases_by_version(conn: Any) -> dict[tuple[str, str], Release]:
    """``(product, version) → Release``, to find the artifacts a desired version names."""
    return {(r.product, r.version): r for r in store.list_releases(conn)}
