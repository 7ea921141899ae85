"""Desired state of many hosts at once: what each product should be on each host, and why.

:func:`desired_many` answers, for every host it is given, exactly what the single-host
:func:`ringfence.services.rollouts.desired_state` answers (that function delegates here), with
a fixed number of queries whatever the number of hosts: products and releases, kill switches,
tenant policies, rollouts (newest first), the exposed rows of ``rollout_hosts`` and reported
versions.  The rules, in order, per host and product:

1. the newest rollout of the product that exposed the host decides: kill switch engaged →
   back to what the host ran when offered (rollback); host or rollout rolled back → the same;
   otherwise the rollout's release;
2. no rollout reached the host but the kill switch is engaged → its last known good version;
3. a tenant policy pin (``n-1``, ``exact:VERSION``);
4. otherwise keep the current version (``directive`` is False: the channel publishes nothing).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from ringfence.adapters.db.stores import rollouts as store
from ringfence.adapters.db.stores.base import chunks
from ringfence.adapters.db.tables import HostVersionRow, KillSwitchRow, RolloutHostRow, RolloutRow
from ringfence.domain.model import Host
from ringfence.domain.rollout import Release

__all__ = ["Desired", "desired_many", "desired_one", "releases_by_version"]


@dataclass(frozen=True, slots=True)
class Desired:
    """What one product should be on one host."""

    version: str
    reason: str
    rollout: str | None
    rollback: bool
    wave: int | None = None
    #: False when nothing decided it (the host keeps what it runs): such entries are not published.
    directive: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The form of :func:`ringfence.services.rollouts.desired_state`."""
        return {"version": self.version, "reason": self.reason, "rollout": self.rollout, "rollback": self.rollback}


@dataclass(frozen=True, slots=True)
class _Exposure:
    from_version: str
    rolled_back: bool
    wave: int | None


def _switches(conn: Connection) -> dict[str, dict[str, Any]]:
    return {r.product: {"actor": r.actor, "reason": r.reason}
            for r in conn.execute(select(KillSwitchRow).where(KillSwitchRow.active.is_(True)))}


def _versions(conn: Connection, host_ids: Sequence[str] | None) -> dict[tuple[str, str], tuple[str, str]]:
    cols = (HostVersionRow.host_id, HostVersionRow.product, HostVersionRow.version, HostVersionRow.last_known_good)
    out: dict[tuple[str, str], tuple[str, str]] = {}
    if host_ids is None:
        rows: Iterable[Any] = conn.execute(select(*cols))
    else:
        rows = [r for part in chunks(sorted(set(host_ids)), 900)
                for r in conn.execute(select(*cols).where(HostVersionRow.host_id.in_(part)))]
    for r in rows:
        out[(r.host_id, r.product)] = (r.version, r.last_known_good)
    return out


def _exposures(conn: Connection, host_ids: Sequence[str] | None) -> dict[tuple[str, str], _Exposure]:
    cols = (RolloutHostRow.rollout_id, RolloutHostRow.host_id, RolloutHostRow.from_version,
            RolloutHostRow.rolled_back_at, RolloutHostRow.exposed_wave)
    base = select(*cols).where(RolloutHostRow.exposed_at.is_not(None))
    if host_ids is None:
        rows: Iterable[Any] = conn.execute(base)
    else:
        rows = [r for part in chunks(sorted(set(host_ids)), 900)
                for r in conn.execute(base.where(RolloutHostRow.host_id.in_(part)))]
    return {(r.rollout_id, r.host_id): _Exposure(r.from_version, r.rolled_back_at is not None, r.exposed_wave)
            for r in rows}


def desired_many(conn: Connection, hosts: Sequence[Host], *, all_hosts: bool = False) -> dict[str, dict[str, Desired]]:
    """``host id → product → Desired`` for these hosts (``all_hosts``: they are the whole inventory,
    so per-host filters are dropped from the queries)."""
    from ringfence.services import rollouts  # noqa: PLC0415 - rollouts delegates desired_state here (no cycle at import)

    ids = None if all_hosts else [h.id for h in hosts]
    releases: dict[str, Release] = {r.id: r for r in store.list_releases(conn)}
    products = sorted({r.product for r in releases.values()})
    switches = _switches(conn)
    versions = _versions(conn, ids)
    exposures = _exposures(conn, ids)
    rollout_rows = list(conn.execute(select(RolloutRow.id, RolloutRow.product, RolloutRow.state, RolloutRow.release_id)
                                     .order_by(RolloutRow.created_at.desc(), RolloutRow.id)))
    by_product: dict[str, list[Any]] = defaultdict(list)
    for row in rollout_rows:
        by_product[row.product].append(row)
    tenants = sorted({h.tenant for h in hosts})
    policy_rows = [p for p in store.list_policies(conn) if p["tenant"] in tenants]
    exposed_rollouts = {rid for rid, _h in exposures}
    out: dict[str, dict[str, Desired]] = {h.id: {} for h in hosts}
    for product in products:
        switch = switches.get(product)
        policies = rollouts._Policies(policy_rows, product)  # type: ignore[attr-defined]  # one definition of precedence
        candidates = [r for r in by_product.get(product, ()) if r.id in exposed_rollouts]
        pinned: list[Release | None] | None = None
        for host in hosts:
            current, lkg = versions.get((host.id, product), ("", ""))
            chosen: Desired | None = None
            for row in candidates:
                mine = exposures.get((row.id, host.id))
                if mine is None:
                    continue
                release = releases[row.release_id]
                way_back = mine.from_version
                if switch is not None:
                    chosen = Desired(way_back, f"kill switch engaged by {switch['actor']}: "
                                     f"{switch['reason'] or 'no reason given'}; back from {release.version}",
                                     row.id, True, mine.wave)
                elif mine.rolled_back or row.state in ("rolling_back", "rolled_back"):
                    chosen = Desired(way_back, f"rolled back from {release.version} ({row.id})", row.id, True,
                                     mine.wave)
                else:
                    chosen = Desired(release.version, f"exposed in rollout {row.id} ({row.state})", row.id, False,
                                     mine.wave)
                break
            if chosen is None and switch is not None:
                # a host that never reported the product has nothing to go back to: nothing to publish
                chosen = Desired(lkg or current, f"kill switch engaged by {switch['actor']}: "
                                 f"{switch['reason'] or 'no reason given'}", None, True,
                                 directive=bool(lkg or current))
            if chosen is None:
                policy = policies.of(host)
                if policy.pin == "n-1":
                    if pinned is None:
                        pinned = [store.pinned_previous(conn, product)]
                    prev = pinned[0]
                    chosen = Desired(prev.version if prev is not None else current,
                                     "pinned to N-1 by tenant policy" + (
                                         "" if prev is not None else " (no earlier release completed a rollout: stay)"),
                                     None, False, directive=prev is not None)
                elif policy.pin.startswith("exact:"):
                    chosen = Desired(policy.pin.removeprefix("exact:"), f"pinned by tenant policy ({policy.pin})",
                                     None, False)
            if chosen is None:
                chosen = Desired(current, "no rollout has reached this host; keep the current version", None, False,
                                 directive=False)
            out[host.id][product] = chosen
    return out


def desired_one(conn: Connection, host: Host) -> dict[str, Desired]:
    """Desired state of one host (the same rules and queries, restricted to it)."""
    return desired_many(conn, [host])[host.id]


def releases_by_version(conn: Connection) -> dict[tuple[str, str], Release]:
    """``(product, version) → Release``, to find the artifacts a desired version names."""
    return {(r.product, r.version): r for r in store.list_releases(conn)}

