"""Inventory use cases: import (all-or-nothing), list and show hosts, services and tenants."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.adapters.db.stores import inventory as store
from ringfence.domain.access import Role
from ringfence.domain.model import Host, Inventory, Service, Tenant, TenantId
from ringfence.domain.selector import Compare, Or
from ringfence.domain.selector import parse as parse_selector
from ringfence.errors import FieldIssue, InputError, NotFoundError, shown
from ringfence.runtime import collector_paused
from ringfence.services.context import Actor, Clock

__all__ = ["HostPage", "ImportResult", "get_host", "import_inventory", "list_hosts", "list_services", "list_tenants"]

MAX_PAGE = 5000


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import changed."""

    hosts_inserted: int = 0
    hosts_updated: int = 0
    services_inserted: int = 0
    services_updated: int = 0
    tenants_created: int = 0
    sources: tuple[str, ...] = ()
    audit_seq: int = 0

    def as_dict(self) -> dict[str, object]:
        """JSON form."""
        return {"hosts_inserted": self.hosts_inserted, "hosts_updated": self.hosts_updated,
                "services_inserted": self.services_inserted, "services_updated": self.services_updated,
                "tenants_created": self.tenants_created, "sources": list(self.sources), "audit_seq": self.audit_seq}


@dataclass(frozen=True, slots=True)
class HostPage:
    """One page of hosts; ``next_after`` continues the listing (keyset pagination)."""

    hosts: list[Host]
    total: int
    next_after: str | None = None
    where: str = ""
    extra: dict[str, object] = field(default_factory=dict)


def _check_batch(inv: Inventory) -> list[FieldIssue]:
    issues: list[FieldIssue] = []
    for kind, ids in (("host", [h.id for h in inv.hosts]), ("service", [s.id for s in inv.services])):
        for dup, n in Counter(ids).items():
            if n > 1 and len(issues) < 100:
                issues.append(FieldIssue(field="id", location=f"{kind} {dup}",
                                         message=f"{kind} id {shown(dup)} appears {n} times in this import",
                                         expected=f"each {kind} once per import"))
    return issues


def import_inventory(db: Database, inv: Inventory, *, actor: Actor, clock: Clock, sources: tuple[str, ...] = (),
                     reason: str = "") -> ImportResult:
    """Upsert tenants, hosts and services in one transaction, with one audit entry.

    Checks that every service a host names, every service a service depends
    on, and every host a redundancy group lists exists in this import or in
    the inventory already; any problem rejects the whole import.
    """
    actor.require(Role.OPERATOR, "importing inventory")
    issues = _check_batch(inv)
    if not (inv.hosts or inv.services or inv.tenants):
        raise InputError.single("files", "contain no tenants, hosts or services", expected="at least one record")
    now = clock()
    # the rows of a large fleet are millions of small acyclic objects: no cyclic collection (ringfence.runtime)
    with collector_paused(), db.transaction() as conn:
        batch_hosts = {h.id for h in inv.hosts}
        batch_services = {s.id for s in inv.services}
        wanted_services = {sid for h in inv.hosts for sid in h.services} | {d for s in inv.services for d in s.depends_on}
        known_services = batch_services | store.existing_service_ids(conn, wanted_services - batch_services)
        for h in inv.hosts:
            for sid in h.services:
                if sid not in known_services and len(issues) < 100:
                    issues.append(FieldIssue(field="services", location=f"host {h.id}",
                                             message=f"names service {shown(sid)}, which does not exist",
                                             expected="a service defined in this import or imported before"))
        for s in inv.services:
            for dep in s.depends_on:
                if dep not in known_services and len(issues) < 100:
                    issues.append(FieldIssue(field="depends_on", location=f"service {s.id}",
                                             message=f"names service {shown(dep)}, which does not exist",
                                             expected="a service defined in this import or imported before"))
        group_hosts = {hid for s in inv.services for g in s.redundancy_groups for hid in g.hosts}
        known_hosts = batch_hosts | store.existing_host_ids(conn, group_hosts - batch_hosts)
        for s in inv.services:
            for g in s.redundancy_groups:
                missing = [hid for hid in g.hosts if hid not in known_hosts]
                if missing and len(issues) < 100:
                    issues.append(FieldIssue(field=f"redundancy_groups.{g.name}.hosts", location=f"service {s.id}",
                                             message=f"{len(missing)} host(s) do not exist, e.g. {shown(missing[0])}",
                                             expected="hosts in this import or imported before"))
        if issues:
            raise InputError("inventory import rejected, nothing was changed", issues)
        explicit = {t.id: t for t in inv.tenants}
        implied = ({h.tenant for h in inv.hosts} | {s.tenant for s in inv.services}) - set(explicit)
        new_implied = implied - store.existing_tenant_ids(conn, implied)
        tenants = [*explicit.values(), *(Tenant(id=TenantId(t), name=t) for t in sorted(new_implied))]
        tenants_created = store.upsert_tenants(conn, tenants, now)
        hosts_inserted, hosts_updated = store.upsert_hosts(conn, inv.hosts, now)
        services_inserted, services_updated = store.upsert_services(conn, inv.services, now)
        result = ImportResult(hosts_inserted=hosts_inserted, hosts_updated=hosts_updated,
                              services_inserted=services_inserted, services_updated=services_updated,
                              tenants_created=tenants_created, sources=sources)
        entry = audit_store.append(conn, at=now, actor=actor.name, action="inventory.import", target="inventory",
                                   source=actor.source, reason=reason,
                                   details={k: v for k, v in result.as_dict().items() if k != "audit_seq"})
    return replace(result, audit_seq=entry.seq)


def list_hosts(db: Database, *, actor: Actor, where: str = "", limit: int = 100, after: str = "") -> HostPage:
    """A page of hosts matching a selector, in id order."""
    actor.require(Role.VIEWER, "listing hosts")
    if not 1 <= limit <= MAX_PAGE:
        raise InputError.single("limit", f"is {limit}", expected=f"1..{MAX_PAGE}")
    node = parse_selector(where) if where.strip() else None
    with db.transaction() as conn:
        hosts = store.list_hosts(conn, node, limit=limit + 1, after=after)
        total = store.count_hosts(conn, node)
    more = len(hosts) > limit
    hosts = hosts[:limit]
    return HostPage(hosts=hosts, total=total, next_after=hosts[-1].id if more and hosts else None, where=where)


def get_host(db: Database, host_id: str, *, actor: Actor) -> Host:
    """One host, with agents, labels and services: by its id, a unique prefix of it, or its hostname.

    Tables truncate ids (``00018818-d198-…``), so a prefix that names exactly one host is enough; a prefix or
    hostname that matches several hosts is refused with the candidates, never resolved by guessing.
    """
    actor.require(Role.VIEWER, "reading hosts")
    key = host_id.strip().rstrip("…").rstrip(".")
    with db.transaction() as conn:
        host = store.get_host(conn, key)
        matches: list[Host] = []
        if host is None and key and not any(c in key for c in "*?"):
            where = Or((Compare("hostname", "=", (key,)), Compare("id", "~", (key + "*",))))
            matches = store.list_hosts(conn, where, limit=6)
    if host is not None:
        return host
    if len(matches) == 1:
        return matches[0]
    if matches:
        some = ", ".join(f"{h.id} ({h.hostname})" for h in matches[:5])
        raise InputError(f"host {shown(host_id)} matches several hosts: {some}{' …' if len(matches) > 5 else ''}; "
                         "give more of the id")
    raise NotFoundError(f"host {shown(host_id)} not found (give its id, a unique start of it, or its hostname)")


def list_services(db: Database, *, actor: Actor, tenant: str = "") -> list[Service]:
    """Every business service (of one tenant)."""
    actor.require(Role.VIEWER, "listing services")
    with db.transaction() as conn:
        return store.list_services(conn, tenant or None)


def get_service(db: Database, service_id: str, *, actor: Actor) -> Service:
    """One service with its redundancy groups."""
    actor.require(Role.VIEWER, "reading services")
    with db.transaction() as conn:
        svc = store.get_service(conn, service_id)
    if svc is None:
        raise NotFoundError(f"service {shown(service_id)} not found")
    return svc


def list_tenants(db: Database, *, actor: Actor) -> list[Tenant]:
    """Every tenant."""
    actor.require(Role.VIEWER, "listing tenants")
    with db.transaction() as conn:
        return store.list_tenants(conn)
