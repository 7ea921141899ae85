"""Storage: migrations match the tables, optimistic versions stop lost updates, imports are atomic."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import inventory as store
from ringfence.adapters.db.stores import tokens as token_store
from ringfence.adapters.db.tables import Base
from ringfence.domain.access import Role
from ringfence.domain.model import Host, HostId, Inventory, OsFamily, TenantId
from ringfence.errors import ConflictError, InputError
from ringfence.services import inventory, tokens
from ringfence.services.context import Actor
from tests.conftest import FakeClock


def test_migrations_match_the_table_classes(db: Database) -> None:
    """Alembic's head schema is exactly what tables.py declares (no missing migration)."""
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert db.is_current()


def test_optimistic_version_stops_the_second_writer(db: Database, clock: FakeClock, admin: Actor) -> None:
    """Two writers read the same version; the first revoke wins, the second gets ConflictError."""
    _, record = tokens.create_token(db, name="x", role="viewer", actor=admin, clock=clock)
    stale_version = record.version
    with db.transaction() as conn:
        token_store.revoke(conn, record.id, now=clock(), expected_version=stale_version)
    with pytest.raises(ConflictError, match="changed by someone else"), db.transaction() as conn:
        token_store.revoke(conn, record.id, now=clock(), expected_version=stale_version)


def _hosts(prefix: str, n: int, build: str) -> Inventory:
    return Inventory(hosts=tuple(Host(id=HostId(f"{prefix}{i:04d}"), hostname=f"h{i}", tenant=TenantId("t"),
                                      os_family=OsFamily.WINDOWS, os_build=build) for i in range(n)))


def test_concurrent_imports_of_the_same_hosts_serialise(db: Database, clock: FakeClock, operator: Actor) -> None:
    """Several threads re-import the same hosts at once: every import lands whole, versions count them all."""
    inventory.import_inventory(db, _hosts("h", 200, "0"), actor=operator, clock=clock)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            inventory.import_inventory(db, _hosts("h", 200, str(k)), actor=operator, clock=clock)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.engine.connect() as conn:
        versions = {r[0] for r in conn.execute(text("SELECT version FROM hosts"))}
        builds = {r[0] for r in conn.execute(text("SELECT os_build FROM hosts"))}
        seqs = [r[0] for r in conn.execute(text("SELECT seq FROM audit_log ORDER BY seq"))]
    assert versions == {5}
    assert len(builds) == 1  # each import replaced all 200 hosts as a unit
    assert seqs == list(range(1, 6))  # audit appends got consecutive numbers


def test_failed_import_leaves_no_trace(db: Database, clock: FakeClock, operator: Actor) -> None:
    """A cross-reference error found inside the transaction rolls back every row written."""
    with db.transaction() as conn:
        before = store.table_counts(conn)
    bad = Inventory(hosts=(Host(id=HostId("a"), hostname="a", tenant=TenantId("t"), os_family=OsFamily.LINUX,
                                services=("missing",)),))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="does not exist"):
        inventory.import_inventory(db, bad, actor=operator, clock=clock)
    with db.transaction() as conn:
        assert store.table_counts(conn) == before


def test_duplicate_ids_in_one_import_are_rejected(db: Database, clock: FakeClock, operator: Actor) -> None:
    """The same host twice in one batch is an error naming the id, not a silent last-wins."""
    inv = _hosts("d", 2, "1")
    inv = Inventory(hosts=inv.hosts + inv.hosts[:1])
    with pytest.raises(InputError, match="appears 2 times"):
        inventory.import_inventory(db, inv, actor=operator, clock=clock)


def test_viewer_cannot_import(db: Database, clock: FakeClock, viewer: Actor) -> None:
    """Roles are enforced in the service layer too, not only in routes."""
    from ringfence.errors import PermissionDeniedError

    with pytest.raises(PermissionDeniedError):
        inventory.import_inventory(db, _hosts("v", 1, "1"), actor=viewer, clock=clock)


def test_reimport_updates_children(db: Database, clock: FakeClock, operator: Actor) -> None:
    """Re-importing a host replaces its agents and labels rather than appending."""
    from dataclasses import replace

    from ringfence.domain.model import InstalledAgent

    h = Host(id=HostId("r1"), hostname="r1", tenant=TenantId("t"), os_family=OsFamily.LINUX,
             agents=(InstalledAgent("A", "a"), InstalledAgent("B", "b")), labels={"x": "1"})
    inventory.import_inventory(db, Inventory(hosts=(h,)), actor=operator, clock=clock)
    h2 = replace(h, agents=(InstalledAgent("C", "c", kernel_mode=True),), labels={"y": ""},
                 last_seen=datetime(2026, 11, 24, 8, tzinfo=UTC))
    inventory.import_inventory(db, Inventory(hosts=(h2,)), actor=operator, clock=clock)
    page = inventory.list_hosts(db, actor=operator, where="")
    assert page.hosts == [h2]


def test_role_order() -> None:
    """viewer < operator < approver < admin."""
    assert Role.ADMIN.allows(Role.APPROVER) and Role.APPROVER.allows(Role.OPERATOR)
    assert not Role.OPERATOR.allows(Role.APPROVER) and not Role.VIEWER.allows(Role.OPERATOR)
