"""Re-imports change exactly what differs: children replaced as listed, versions bumped per changed host (PostgreSQL).

On PostgreSQL the import COPYs hosts and their agents, labels and services into staging tables and
applies set-based differences (adapters/db/stores/inventory.py); these rows check that the result is
the same as replacing every host whole, on both databases.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import text

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import inventory as store
from ringfence.domain.model import Host, HostId, InstalledAgent, Inventory, OsFamily, Service, ServiceId, TenantId
from ringfence.services.context import Actor
from ringfence.services.inventory import import_inventory
from ringfence.sim.fleetgen import generate_fleet
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


def _indexes_and_keys(db: Database) -> set[tuple[str, str]]:
    with db.transaction() as conn:
        rows = conn.execute(text(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid IN ('hosts'::regclass, 'host_agents'::regclass, 'host_labels'::regclass, "
            "'host_services'::regclass) UNION ALL SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid IN ('hosts'::regclass, 'host_agents'::regclass, "
            "'host_labels'::regclass, 'host_services'::regclass)")).tuples().all()
    return set(rows)


def test_bulk_import_matches_the_merge_and_keeps_every_index_and_key(db: Database, clock: FakeClock, admin: Actor,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """An import that at least doubles the fleet drops and rebuilds the indexes (PostgreSQL); same rows as the merge."""
    monkeypatch.setattr(store, "BULK_MIN_HOSTS", 4)
    bulk: list[int] = []
    suspend = store._suspend_indexes
    monkeypatch.setattr(store, "_suspend_indexes", lambda cur: bulk.append(1) or suspend(cur))
    svc = Service(id=ServiceId("svc"), name="svc", tenant=TenantId("t"))
    first = [replace(_host(i), services=(ServiceId("svc"),) if i % 2 else ()) for i in range(3)]
    import_inventory(db, Inventory(hosts=tuple(first), services=(svc,)), actor=admin, clock=clock)  # merge: < 4
    before = _indexes_and_keys(db) if not db.is_sqlite else set()
    changed = replace(first[1], labels={"ring": "late"}, os_build="26100")
    again = [first[0], changed, *(_host(i) for i in range(10, 17))]  # 2 existing, 7 new: bulk on PostgreSQL
    result = import_inventory(db, Inventory(hosts=tuple(again)), actor=admin, clock=clock)
    assert (result.hosts_inserted, result.hosts_updated) == (7, 2)
    with db.transaction() as conn:
        for want in [*again, first[2]]:
            got = store.get_host(conn, want.id)
            assert got is not None and (got.os_build, got.labels, got.agents, tuple(got.services)) == \
                (want.os_build, want.labels, want.agents, tuple(want.services)), want.id
        versions = dict(conn.execute(text("SELECT id, version FROM hosts")).tuples().all())
    if not db.is_sqlite:
        assert bulk == [1]  # the second import only: 9 hosts into a fleet of 3
        assert _indexes_and_keys(db) == before and len(before) >= 11  # 5 + 2 + 2 + 1 indexes, 4 keys
        assert {h: v for h, v in versions.items() if v > 1} == {"r-001": 2}


def test_a_failed_bulk_import_leaves_hosts_and_indexes_as_they_were(db: Database, clock: FakeClock, admin: Actor,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if db.is_sqlite:
        pytest.skip("the bulk path is PostgreSQL's")
    monkeypatch.setattr(store, "BULK_MIN_HOSTS", 4)
    import_inventory(db, Inventory(hosts=(_host(1),)), actor=admin, clock=clock)
    before = _indexes_and_keys(db)
    bad = [_host(i) for i in range(2, 8)]
    bad[3] = replace(bad[3], agents=(InstalledAgent(vendor="x" * 300, product="EDR"),))  # longer than the column
    with pytest.raises(Exception, match="too long"):
        import_inventory(db, Inventory(hosts=tuple(bad)), actor=admin, clock=clock)
    with db.transaction() as conn:
        assert store.table_counts(conn)["hosts"] == 1
    assert _indexes_and_keys(db) == before


# --- a bad row in the middle of a large import (the COPY paths) ---------------------------------------------------

def _state(db: Database) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the host tables, in key order: what "the inventory as it was" means."""
    keys = {"tenants": "id", "hosts": "id", "host_agents": "host_id, idx", "host_labels": "host_id, key",
            "host_services": "host_id, service_id", "services": "id"}
    with db.transaction() as conn:
        return {t: list(conn.execute(text(f"SELECT * FROM {t} ORDER BY {k}")).tuples())
                for t, k in keys.items()}


def _with_bad_agent(hosts: list[Host], at: int) -> list[Host]:
    """``hosts`` with one agent whose vendor is NULL at position ``at``: only the database rejects it, mid-write.

    On PostgreSQL it fails the agents' COPY after the hosts are in (bulk path) or the insert from the staging
    tables after the hosts were merged (merge path: staging tables carry no NOT NULL); on SQLite the agents'
    insert after the hosts' upsert.  So each path has written rows when it fails.
    """
    bad = InstalledAgent(vendor=None, product="EDR")  # type: ignore[arg-type]  # a row no parser would pass
    return [replace(h, agents=(*h.agents, bad)) if i == at else h for i, h in enumerate(hosts)]


def test_a_bad_row_in_the_middle_of_a_large_first_import_changes_nothing(db: Database, clock: FakeClock,
                                                                         admin: Actor,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """21,000 hosts onto 1,000 (PostgreSQL: the bulk COPY path, indexes dropped); one bad row rolls it all back."""
    fleet = generate_fleet(store.BULK_MIN_HOSTS + 1000, 3)
    hosts = sorted(fleet.hosts, key=lambda h: h.id)
    first = hosts[::21]  # 1,000 hosts spread over the id range, so the batch mixes existing and new hosts
    services = tuple(replace(s, redundancy_groups=()) for s in fleet.services)  # their hosts come later
    import_inventory(db, Inventory(hosts=tuple(first), services=services), actor=admin, clock=clock)
    before, keys = _state(db), (_indexes_and_keys(db) if not db.is_sqlite else set())
    bulk: list[int] = []
    suspend = store._suspend_indexes
    monkeypatch.setattr(store, "_suspend_indexes", lambda cur: bulk.append(1) or suspend(cur))
    changed = {h.id for h in first}
    batch = [replace(h, os_build="26100") if h.id in changed else h for h in hosts]  # existing hosts change too
    with pytest.raises(Exception, match=r"(?i)not[- ]null"):
        import_inventory(db, Inventory(hosts=tuple(_with_bad_agent(batch, len(batch) // 2))), actor=admin,
                         clock=clock)
    assert _state(db) == before
    if not db.is_sqlite:
        assert bulk == [1]  # the failure happened on the bulk COPY path
        assert _indexes_and_keys(db) == keys
    # and the same batch without the bad row lands whole
    result = import_inventory(db, Inventory(hosts=tuple(batch)), actor=admin, clock=clock)
    assert (result.hosts_inserted, result.hosts_updated) == (len(hosts) - len(first), len(first))


def test_a_bad_row_in_the_middle_of_a_large_reimport_changes_nothing(db: Database, clock: FakeClock,
                                                                     admin: Actor,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-import 21,000 hosts, each changed (PostgreSQL: staging tables by binary COPY, then set-based merge)."""
    fleet = generate_fleet(store.BULK_MIN_HOSTS + 1000, 4)
    import_inventory(db, fleet, actor=admin, clock=clock)
    before = _state(db)
    merged: list[int] = []
    merge = store._merge_staged
    monkeypatch.setattr(store, "_merge_staged", lambda cur, hosts, now: merged.append(len(hosts)) or
                        merge(cur, hosts, now))
    hosts = sorted(fleet.hosts, key=lambda h: h.id)
    batch = [replace(h, os_build="26100", labels={**h.labels, "ring": "late"}) for h in hosts]
    with pytest.raises(Exception, match=r"(?i)not[- ]null"):
        import_inventory(db, Inventory(hosts=tuple(_with_bad_agent(batch, len(batch) // 2))), actor=admin,
                         clock=clock)
    assert _state(db) == before
    if not db.is_sqlite:
        assert merged == [len(hosts)]  # every host went through the staging tables
