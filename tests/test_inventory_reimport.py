"""Re-imports change exactly what differs: children replaced as listed, versions bumped per changed host (PostgreSQL).

On PostgreSQL the import COPYs hosts and their agents, labels and services into staging tables and
applies set-based differences (adapters/db/stores/inventory.py); these rows check that the result is
the same as replacing every host whole, on both databases.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import text

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import inventory as store
from ringfence.domain.model import Host, HostId, InstalledAgent, Inventory, OsFamily, Service, ServiceId, TenantId
from ringfence.services.context import Actor
from ringfence.services.inventory import import_inventory
from tests.conftest import FakeClock


def _host(i: int) -> Host:
    return Host(id=HostId(f"r-{i:03d}"), hostname=f"h{i}", tenant=TenantId("t"), os_family=OsFamily.WINDOWS,
                os_build="22631", labels={"ring": "early", "site": f"s{i % 3}"},
                agents=(InstalledAgent(vendor="CrowdStrike", product="Falcon", version="7.1", kernel_mode=True),
                        InstalledAgent(vendor="Zscaler", product="ZCC", version="4.2")),
                services=())


def test_reimport_replaces_children_and_bumps_changed_hosts_only(db: Database, clock: FakeClock,
                                                                 admin: Actor) -> None:
    hosts = [_host(i) for i in range(6)]
    import_inventory(db, Inventory(hosts=tuple(hosts)), actor=admin, clock=clock)
    changed = {
        "r-000": replace(hosts[0], os_build="26100"),  # a column
        "r-001": replace(hosts[1], labels={"ring": "late"}),  # one label changed, one gone
        "r-002": replace(hosts[2], agents=hosts[2].agents[:1]),  # an agent gone
        "r-003": replace(hosts[3], agents=(*hosts[3].agents, InstalledAgent(vendor="Acme", product="EDR"))),
    }
    again = [changed.get(h.id, h) for h in hosts] + [_host(9)]
    result = import_inventory(db, Inventory(hosts=tuple(again)), actor=admin, clock=clock)
    assert (result.hosts_inserted, result.hosts_updated) == (1, 6)
    with db.transaction() as conn:
        for want in again:
            got = store.get_host(conn, want.id)
            assert got is not None
            assert (got.os_build, got.labels, got.agents, tuple(got.services)) == \
                (want.os_build, want.labels, want.agents, tuple(want.services)), want.id
        versions = dict(conn.execute(text("SELECT id, version FROM hosts")).tuples().all())
        counts = store.table_counts(conn)
    assert counts["host_agents"] == sum(len(h.agents) for h in again)
    assert counts["host_labels"] == sum(len(h.labels) for h in again)
    if db.is_sqlite:  # SQLite rewrites every imported host
        assert set(versions.values()) <= {1, 2} and versions["r-004"] == 2
    else:
        assert {h: v for h, v in versions.items() if v > 1} == dict.fromkeys(changed, 2)


def test_reimport_can_empty_a_hosts_children(db: Database, clock: FakeClock, admin: Actor) -> None:
    host = replace(_host(1), services=(ServiceId("svc"),))
    svc = Service(id=ServiceId("svc"), name="svc", tenant=TenantId("t"))
    import_inventory(db, Inventory(hosts=(host,), services=(svc,)), actor=admin, clock=clock)
    bare = replace(host, labels={}, agents=(), services=())
    import_inventory(db, Inventory(hosts=(bare,)), actor=admin, clock=clock)
    with db.transaction() as conn:
        got = store.get_host(conn, host.id)
    assert got is not None and (got.labels, got.agents, tuple(got.services)) == ({}, (), ())
