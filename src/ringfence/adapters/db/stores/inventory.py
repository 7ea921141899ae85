"""Tenants, hosts (with agents, labels and services) and business services.

Writes are bulk upserts keyed by id, all inside the caller's transaction, so
an import either lands whole or not at all.  On PostgreSQL hosts and their
agents, labels and services go through ``COPY`` into temporary staging tables
and then set-based statements (``INSERT … ON CONFLICT``, anti-joins) that
change only what differs: a host row's ``version`` is bumped when the host
changed, and re-importing an unchanged fleet writes almost nothing.  Rows are
locked in id order, so two concurrent imports of the same hosts queue
instead of deadlocking.  SQLite rewrites each imported host and its child rows
(and bumps its ``version``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, delete, func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ringfence.adapters.db.selector_sql import to_sql
from ringfence.adapters.db.stores.base import bulk_insert, chunks, copy_rows, utc
from ringfence.adapters.db.tables import (
    HostAgentRow,
    HostLabelRow,
    HostRow,
    HostServiceRow,
    RedundancyGroupRow,
    ServiceRow,
    TenantRow,
)
from ringfence.domain.model import (
    DiskEncryption,
    Host,
    HostId,
    InstalledAgent,
    OsFamily,
    Platform,
    RedundancyGroup,
    Service,
    ServiceId,
    Tenant,
    TenantId,
)
from ringfence.domain.selector import Node

__all__ = [
    "all_hosts",
    "count_hosts",
    "existing_host_ids",
    "existing_service_ids",
    "existing_tenant_ids",
    "get_host",
    "get_service",
    "list_hosts",
    "list_services",
    "list_tenants",
    "table_counts",
    "upsert_hosts",
    "upsert_services",
    "upsert_tenants",
]

_HOST_COLS = (
    "id", "hostname", "tenant", "os_family", "os_name", "os_version", "os_build", "arch",
    "hardware_vendor", "hardware_model", "platform", "cloud_provider", "cloud_region", "cloud_zone",
    "site", "country", "subdivision", "timezone", "tier", "encryption", "recovery_key_escrowed",
    "recovery_key_verified", "oob_management", "local_admin", "usb_boot", "last_seen", "updated_at",
)
_IN_CHUNK = 900  # stays under SQLite's bound-parameter limit




def _insert(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


# --- tenants -----------------------------------------------------------------

def existing_tenant_ids(conn: Connection, ids: Iterable[str]) -> set[str]:
    """The subset of ``ids`` that are tenants already."""
    found: set[str] = set()
    for part in chunks(sorted(set(ids)), _IN_CHUNK):
        found.update(conn.scalars(select(TenantRow.id).where(TenantRow.id.in_(part))))
    return found


def upsert_tenants(conn: Connection, tenants: Sequence[Tenant], now: datetime) -> int:
    """Create or rename tenants; return how many were new."""
    if not tenants:
        return 0
    before = existing_tenant_ids(conn, (t.id for t in tenants))
    ins = _insert(conn)
    for part in chunks(sorted(tenants, key=lambda t: t.id), 500):
        stmt = ins(TenantRow).values([{"id": t.id, "name": t.name or t.id, "created_at": now, "updated_at": now,
                                       "version": 1} for t in part])
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"name": stmt.excluded.name, "updated_at": stmt.excluded.updated_at,
                  "version": TenantRow.version + 1},
        )
        conn.execute(stmt)
    return len({t.id for t in tenants} - before)


def list_tenants(conn: Connection) -> list[Tenant]:
    """Every tenant, by id."""
    rows = conn.execute(select(TenantRow.id, TenantRow.name).order_by(TenantRow.id))
    return [Tenant(id=TenantId(r.id), name=r.name) for r in rows]


# --- hosts -------------------------------------------------------------------

def existing_host_ids(conn: Connection, ids: Iterable[str]) -> set[str]:
    """The subset of ``ids`` that are hosts already."""
    found: set[str] = set()
    for part in chunks(sorted(set(ids)), _IN_CHUNK):
        found.update(conn.scalars(select(HostRow.id).where(HostRow.id.in_(part))))
    return found


def _host_row(h: Host, now: datetime) -> tuple[Any, ...]:
    return (h.id, h.hostname, h.tenant, h.os_family.value, h.os_name, h.os_version, h.os_build, h.arch,
            h.hardware_vendor, h.hardware_model, h.platform.value, h.cloud_provider, h.cloud_region,
            h.cloud_zone, h.site, h.country, h.subdivision, h.timezone, h.tier, h.encryption.value,
            h.recovery_key_escrowed, h.recovery_key_verified, h.oob_management, h.local_admin, h.usb_boot,
            utc(h.last_seen), now)


_ChildRows = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]


def _child_rows(hosts: Sequence[Host]) -> _ChildRows:
    agents = [(h.id, i, a.vendor, a.product, a.version, a.kernel_mode, a.boot_start)
              for h in hosts for i, a in enumerate(h.agents)]
    labels = [(h.id, k, v) for h in hosts for k, v in h.labels.items()]
    services = [(h.id, s) for h in hosts for s in dict.fromkeys(h.services)]
    return agents, labels, services


@contextmanager
def _child_rows_meanwhile(hosts: Sequence[Host]) -> Iterator[Future[_ChildRows]]:
    """The child rows of ``hosts``, built on a worker thread while the caller keeps PostgreSQL busy.

    Building ~3 child rows per host is pure Python (about 1.3 s of CPU per million hosts); done first, it left
    the server idle, done here it runs while the main thread waits on the server (psycopg releases the GIL
    while it waits), so the client's and the server's work overlap on two cores (bench/README.md).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ringfence-import-rows") as pool:
        yield pool.submit(_child_rows, hosts)


def upsert_hosts(conn: Connection, hosts: Sequence[Host], now: datetime) -> tuple[int, int]:
    """Insert or replace hosts with their children; return (inserted, updated)."""
    if not hosts:
        return 0, 0
    hosts = sorted(hosts, key=lambda h: h.id)
    if conn.dialect.name == "postgresql":
        updated = _upsert_hosts_pg(conn, hosts, now)
        return len(hosts) - updated, updated
    updated = _upsert_hosts_sqlite(conn, hosts, now)
    agents, labels, services = _child_rows(hosts)
    for name, cols, rows in zip(_CHILD_TABLES, _CHILD_COLS, (agents, labels, services), strict=True):
        bulk_insert(conn, _CHILD_ROWS[name].__table__, cols, rows)
    return len(hosts) - updated, updated


_CHILD_TABLES = ("host_agents", "host_labels", "host_services")
_CHILD_ROWS: dict[str, Any] = {"host_agents": HostAgentRow, "host_labels": HostLabelRow, "host_services": HostServiceRow}
_CHILD_COLS = (("host_id", "idx", "vendor", "product", "version", "kernel_mode", "boot_start"),
               ("host_id", "key", "value"), ("host_id", "service_id"))
_CHILD_KEYS = (("host_id", "idx"), ("host_id", "key"), ("host_id", "service_id"))


def _merge_staged(cur: Any, hosts: Sequence[Host], now: datetime) -> int:
    """COPY hosts and their children into temporary staging tables, then change only what differs, set-based.

    A host row is rewritten (and its ``version`` bumped) only when a column other than ``updated_at``
    or one of its agents, labels or services changed; child rows the import no longer lists are
    deleted and new or changed ones inserted, each with one statement over the staging table.
    Re-importing an unchanged fleet writes (almost) nothing.  (SQLite rewrites every imported host.)
    """
    cols = ", ".join(_HOST_COLS)
    compared = [c for c in _HOST_COLS if c not in ("id", "updated_at")]
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in _HOST_COLS if c != "id")
    differs = (f"({', '.join(f'hosts.{c}' for c in compared)}) IS DISTINCT FROM "
               f"({', '.join(f'EXCLUDED.{c}' for c in compared)})")
    with _child_rows_meanwhile(hosts) as children:
        _stage(cur, "_stage_hosts", _table(HostRow), _HOST_COLS, (_host_row(h, now) for h in hosts))
        for name, ccols, rows in zip(_CHILD_TABLES, _CHILD_COLS, children.result(), strict=True):
            _stage(cur, f"_stage_{name}", _table(_CHILD_ROWS[name]), ccols, rows)
    cur.execute("SELECT count(*) FROM _stage_hosts s JOIN hosts h ON h.id = s.id")
    row = cur.fetchone()
    updated = int(row[0]) if row else 0
    # Every statement below joins whole staging tables with whole tables: hash joins.  A nested loop,
    # which the planner picks when a table's statistics predate this transaction, is quadratic here.
    cur.execute("SET LOCAL enable_nestloop = off")
    changed = ""
    if updated:  # existing hosts: note those whose children change, delete children no longer listed as they are
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS _stage_changed (host_id text) ON COMMIT DROP")
        cur.execute("TRUNCATE _stage_changed")
        for name, ccols, keys in zip(_CHILD_TABLES, _CHILD_COLS, _CHILD_KEYS, strict=True):
            # keys with = (NOT NULL primary key columns: a hash join), the other columns null-safe
            same = " AND ".join(f"x.{c} = c.{c}" if c in keys else f"x.{c} IS NOT DISTINCT FROM c.{c}"
                                for c in ccols)
            cur.execute(f"INSERT INTO _stage_changed SELECT DISTINCT x.host_id FROM _stage_{name} x "  # noqa: S608
                        f"JOIN hosts h ON h.id = x.host_id WHERE NOT EXISTS (SELECT 1 FROM {name} c WHERE {same})")
            cur.execute(f"WITH gone AS (DELETE FROM {name} c USING _stage_hosts s WHERE c.host_id = s.id "  # noqa: S608
                        f"AND NOT EXISTS (SELECT 1 FROM _stage_{name} x WHERE {same}) RETURNING c.host_id) "
                        "INSERT INTO _stage_changed SELECT DISTINCT host_id FROM gone")
        changed = " OR hosts.id IN (SELECT host_id FROM _stage_changed)"
    # ORDER BY id: rows are locked in id order, so concurrent imports of the same hosts queue, never deadlock
    cur.execute(f"INSERT INTO hosts ({cols}, version) SELECT {cols}, 1 FROM _stage_hosts ORDER BY id "  # noqa: S608
                f"ON CONFLICT (id) DO UPDATE SET {sets}, version = hosts.version + 1 WHERE {differs}{changed}")
    for name, ccols, keys in zip(_CHILD_TABLES, _CHILD_COLS, _CHILD_KEYS, strict=True):
        key = " AND ".join(f"c.{k} = x.{k}" for k in keys)
        cur.execute(f"INSERT INTO {name} ({', '.join(ccols)}) SELECT {', '.join(f'x.{c}' for c in ccols)} "  # noqa: S608
                    f"FROM _stage_{name} x WHERE NOT EXISTS (SELECT 1 FROM {name} c WHERE {key})")
    cur.execute("RESET enable_nestloop")
    return updated


def _stage(cur: Any, stage: str, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A temporary table shaped like ``table`` (no indexes, no constraints), dropped at commit, filled by binary COPY.

    Binary COPY with the column types declared skips formatting and parsing every value as text
    (:func:`~ringfence.adapters.db.stores.base.copy_rows`).
    """
    cols = ", ".join(columns)
    cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS "  # noqa: S608 - our names
                f"SELECT {cols} FROM {table.name} WITH NO DATA")
    cur.execute(f"TRUNCATE {stage}")
    copy_rows(cur, Table(stage, MetaData(), *(Column(c, table.c[c].type) for c in columns)), columns, rows)
    cur.execute(f"ANALYZE {stage}")  # so the planner joins the staged rows by hash, not by nested loop


#: A PostgreSQL import of at least this many hosts into a fleet at most half its size writes with the
#: secondary indexes and foreign keys of the host tables dropped, and builds each table's once, after its COPY.
BULK_MIN_HOSTS = 20_000
_HOST_TABLES = ("hosts", *_CHILD_TABLES)
_BULK_LOCK = 0x7266696E76  # pg_advisory_xact_lock key: bulk imports run one at a time


def _upsert_hosts_pg(conn: Connection, hosts: Sequence[Host], now: datetime) -> int:
    """Write hosts and their children; return how many existed already.

    An import that at least doubles the fleet (the first import, a new site) takes the bulk path: the host
    tables are locked, their secondary indexes and foreign keys dropped, the new hosts and their children
    COPYed straight into the tables, the hosts that existed merged through the staging tables, and the
    indexes and keys built back, all in the caller's transaction.  Inserting a row updates every index of
    its table (a B-tree descent each) and checks each foreign key with a lookup; building an index sorts
    once and adding a foreign key back checks every row with one join (bench/README.md).  Any other
    import merges everything through the staging tables (:func:`_merge_staged`).
    """
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        restore: dict[str, list[str]] = {}
        old: Sequence[Host] = hosts
        new: Sequence[Host] = ()
        if len(hosts) >= BULK_MIN_HOSTS:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_BULK_LOCK])  # no lock upgrade race between two
            cur.execute("SELECT count(*) FROM hosts")
            row = cur.fetchone()
            if 2 * (int(row[0]) if row else 0) <= len(hosts):
                restore = _suspend_indexes(cur)
                cur.execute("SELECT id FROM hosts")  # read under the exclusive lock: nobody adds hosts meanwhile
                existing = {r[0] for r in cur}
                old = [h for h in hosts if h.id in existing]
                new = [h for h in hosts if h.id not in existing]
        updated = _merge_staged(cur, old, now) if old else 0
        if new:
            _copy_new(cur, new, now, restore)
        for statements in restore.values():  # what _copy_new did not restore (nothing, unless it changes)
            for statement in statements:
                cur.execute(statement)
    return updated


def _suspend_indexes(cur: Any) -> dict[str, list[str]]:
    """Drop the secondary indexes and the foreign keys of the host tables; return, per table, the statements
    that restore them (its indexes, then its foreign keys).

    PostgreSQL's DDL is transactional, so a failed import (including a foreign key that does not hold when
    it is added back) rolls the indexes back with everything else.  The tables are locked first, in one
    statement, so readers wait for the import instead of scanning a table without its indexes.
    """
    cur.execute(f"LOCK TABLE {', '.join(_HOST_TABLES)} IN ACCESS EXCLUSIVE MODE")
    restore: dict[str, list[str]] = {}
    for table in _HOST_TABLES:
        cur.execute("SELECT quote_ident(c.conname), pg_get_constraintdef(c.oid) FROM pg_constraint c "
                    "WHERE c.contype = 'f' AND c.conrelid = %s::regclass ORDER BY 1", [table])
        fkeys = cur.fetchall()
        cur.execute("SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                    "WHERE i.indrelid = %s::regclass AND NOT i.indisunique AND NOT i.indisprimary "
                    "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
                    "ORDER BY 1", [table])
        indexes = cur.fetchall()
        for name, _definition in fkeys:
            cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        for name, _definition in indexes:
            cur.execute(f"DROP INDEX {name}")
        restore[table] = ([definition for _name, definition in indexes]
                          + [f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}" for name, definition in fkeys])
    cur.execute("SET LOCAL maintenance_work_mem = '256MB'")  # each index build sorts in memory
    return restore


def _copy_new(cur: Any, hosts: Sequence[Host], now: datetime, restore: dict[str, list[str]]) -> None:
    """COPY hosts that do not exist yet, and their children, straight into the tables (binary COPY).

    Each table's indexes and foreign keys (``restore``, taken out of the dict as they run) are built right
    after its rows are in, while the worker thread builds the next table's rows (:func:`_child_rows_meanwhile`):
    the server sorts hosts into their indexes while the client prepares the agents.
    """
    with _child_rows_meanwhile(hosts) as children:
        copy_rows(cur, _table(HostRow), (*_HOST_COLS, "version"), ((*_host_row(h, now), 1) for h in hosts))
        for statement in restore.pop("hosts", []):
            cur.execute(statement)
        for name, ccols, rows in zip(_CHILD_TABLES, _CHILD_COLS, children.result(), strict=True):
            copy_rows(cur, _table(_CHILD_ROWS[name]), ccols, rows)
            for statement in restore.pop(name, []):
                cur.execute(statement)


def _table(row: Any) -> Table:
    table: Table = row.__table__
    return table


def _upsert_hosts_sqlite(conn: Connection, hosts: Sequence[Host], now: datetime) -> int:
    updated = len(existing_host_ids(conn, (h.id for h in hosts)))
    stmt = sqlite_insert(HostRow)
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={**{c: stmt.excluded[c] for c in _HOST_COLS if c != "id"}, "version": HostRow.version + 1},
    )
    for part in chunks(hosts, 5000):
        conn.execute(stmt, [dict(zip(_HOST_COLS, _host_row(h, now), strict=True)) | {"version": 1} for h in part])
    ids = [h.id for h in hosts]
    for part in chunks(ids, _IN_CHUNK):
        for table in (HostAgentRow, HostLabelRow, HostServiceRow):
            conn.execute(delete(table).where(table.host_id.in_(part)))
    return updated


def _hosts_from_rows(conn: Connection, rows: Sequence[Any]) -> list[Host]:
    ids = [r.id for r in rows]
    agents: dict[str, list[InstalledAgent]] = defaultdict(list)
    labels: dict[str, dict[str, str]] = defaultdict(dict)
    services: dict[str, list[ServiceId]] = defaultdict(list)
    for part in chunks(ids, _IN_CHUNK):
        for a in conn.execute(select(HostAgentRow).where(HostAgentRow.host_id.in_(part))
                              .order_by(HostAgentRow.host_id, HostAgentRow.idx)):
            agents[a.host_id].append(InstalledAgent(vendor=a.vendor, product=a.product, version=a.version,
                                                    kernel_mode=bool(a.kernel_mode), boot_start=bool(a.boot_start)))
        for lab in conn.execute(select(HostLabelRow).where(HostLabelRow.host_id.in_(part))
                                .order_by(HostLabelRow.host_id, HostLabelRow.key)):
            labels[lab.host_id][lab.key] = lab.value
        for s in conn.execute(select(HostServiceRow).where(HostServiceRow.host_id.in_(part))
                              .order_by(HostServiceRow.host_id, HostServiceRow.service_id)):
            services[s.host_id].append(ServiceId(s.service_id))
    return [
        Host(id=HostId(r.id), hostname=r.hostname, tenant=TenantId(r.tenant), os_family=OsFamily(r.os_family),
             os_name=r.os_name, os_version=r.os_version, os_build=r.os_build, arch=r.arch,
             hardware_vendor=r.hardware_vendor, hardware_model=r.hardware_model, platform=Platform(r.platform),
             cloud_provider=r.cloud_provider, cloud_region=r.cloud_region, cloud_zone=r.cloud_zone, site=r.site,
             country=r.country, subdivision=r.subdivision, timezone=r.timezone, tier=r.tier,
             labels=labels.get(r.id, {}), services=tuple(services.get(r.id, ())),
             agents=tuple(agents.get(r.id, ())), encryption=DiskEncryption(r.encryption),
             recovery_key_escrowed=bool(r.recovery_key_escrowed), recovery_key_verified=bool(r.recovery_key_verified),
             oob_management=bool(r.oob_management), local_admin=bool(r.local_admin), usb_boot=bool(r.usb_boot),
             last_seen=utc(r.last_seen))
        for r in rows
    ]


def list_hosts(conn: Connection, where: Node | None = None, *, limit: int = 100, after: str = "") -> list[Host]:
    """Hosts matching ``where``, ordered by id, starting after id ``after`` (keyset pagination)."""
    stmt = select(HostRow).where(to_sql(where))
    if after:
        stmt = stmt.where(HostRow.id > after)
    rows = conn.execute(stmt.order_by(HostRow.id).limit(limit)).all()
    return _hosts_from_rows(conn, rows)


def all_hosts(conn: Connection, *, page: int = 5000) -> list[Host]:
    """Every host, read in keyset pages."""
    hosts: list[Host] = []
    after = ""
    while True:
        batch = list_hosts(conn, None, limit=page, after=after)
        hosts.extend(batch)
        if len(batch) < page:
            return hosts
        after = batch[-1].id


def count_hosts(conn: Connection, where: Node | None = None) -> int:
    """How many hosts match ``where``."""
    return int(conn.scalar(select(func.count()).select_from(HostRow).where(to_sql(where))) or 0)


def get_host(conn: Connection, host_id: str) -> Host | None:
    """One host by id."""
    rows = conn.execute(select(HostRow).where(HostRow.id == host_id)).all()
    hosts = _hosts_from_rows(conn, rows)
    return hosts[0] if hosts else None


# --- services ----------------------------------------------------------------

def existing_service_ids(conn: Connection, ids: Iterable[str]) -> set[str]:
    """The subset of ``ids`` that are services already."""
    found: set[str] = set()
    for part in chunks(sorted(set(ids)), _IN_CHUNK):
        found.update(conn.scalars(select(ServiceRow.id).where(ServiceRow.id.in_(part))))
    return found


def upsert_services(conn: Connection, services: Sequence[Service], now: datetime) -> tuple[int, int]:
    """Insert or replace services and their redundancy groups; return (inserted, updated)."""
    if not services:
        return 0, 0
    services = sorted(services, key=lambda s: s.id)
    before = existing_service_ids(conn, (s.id for s in services))
    stmt = _insert(conn)(ServiceRow)
    # one statement executed for many rows (compiled once), not a VALUES list compiled per chunk
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={**{c: stmt.excluded[c] for c in ("name", "tenant", "tier", "rto_minutes", "mtd_minutes",
                                               "regulatory_function", "depends_on", "updated_at")},
              "version": ServiceRow.version + 1},
    )
    for part in chunks(services, 500):
        conn.execute(stmt, [
            {"id": s.id, "name": s.name, "tenant": s.tenant, "tier": s.tier, "rto_minutes": s.rto_minutes,
             "mtd_minutes": s.mtd_minutes, "regulatory_function": s.regulatory_function,
             "depends_on": list(s.depends_on), "updated_at": now, "version": 1} for s in part])
        conn.execute(delete(RedundancyGroupRow).where(RedundancyGroupRow.service_id.in_([s.id for s in part])))
        groups = [{"service_id": s.id, "idx": i, "name": g.name, "min_healthy": g.min_healthy,
                   "selector": g.selector, "hosts": list(g.hosts)}
                  for s in part for i, g in enumerate(s.redundancy_groups)]
        if groups:
            conn.execute(insert(RedundancyGroupRow), groups)
    return len(services) - len(before), len(before)


def list_services(conn: Connection, tenant: str | None = None) -> list[Service]:
    """Every service (of one tenant), by id."""
    stmt = select(ServiceRow).order_by(ServiceRow.id)
    if tenant:
        stmt = stmt.where(ServiceRow.tenant == tenant)
    rows = conn.execute(stmt).all()
    groups: dict[str, list[RedundancyGroup]] = defaultdict(list)
    for part in chunks([r.id for r in rows], _IN_CHUNK):
        for g in conn.execute(select(RedundancyGroupRow).where(RedundancyGroupRow.service_id.in_(part))
                              .order_by(RedundancyGroupRow.service_id, RedundancyGroupRow.idx)):
            groups[g.service_id].append(RedundancyGroup(name=g.name, min_healthy=g.min_healthy,
                                                        hosts=tuple(HostId(h) for h in g.hosts or ()),
                                                        selector=g.selector))
    return [Service(id=ServiceId(r.id), name=r.name, tenant=TenantId(r.tenant), tier=r.tier,
                    rto_minutes=r.rto_minutes, mtd_minutes=r.mtd_minutes,
                    redundancy_groups=tuple(groups.get(r.id, ())),
                    depends_on=tuple(ServiceId(d) for d in r.depends_on or ()),
                    regulatory_function=r.regulatory_function) for r in rows]


def get_service(conn: Connection, service_id: str) -> Service | None:
    """One service by id."""
    found = _one_service(conn, service_id)
    return found[0] if found else None


def _one_service(conn: Connection, sid: str) -> list[Service]:
    row = conn.execute(select(ServiceRow).where(ServiceRow.id == sid)).first()
    if row is None:
        return []
    groups = [RedundancyGroup(name=g.name, min_healthy=g.min_healthy, hosts=tuple(HostId(h) for h in g.hosts or ()),
                              selector=g.selector)
              for g in conn.execute(select(RedundancyGroupRow).where(RedundancyGroupRow.service_id == sid)
                                    .order_by(RedundancyGroupRow.idx))]
    return [Service(id=ServiceId(row.id), name=row.name, tenant=TenantId(row.tenant), tier=row.tier,
                    rto_minutes=row.rto_minutes, mtd_minutes=row.mtd_minutes, redundancy_groups=tuple(groups),
                    depends_on=tuple(ServiceId(d) for d in row.depends_on or ()),
                    regulatory_function=row.regulatory_function)]


def table_counts(conn: Connection) -> dict[str, int]:
    """Row counts of the inventory tables (used by tests and the status page)."""
    out = {}
    for name in ("tenants", "hosts", "host_agents", "host_labels", "host_services", "services", "redundancy_groups"):
        out[name] = int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())  # noqa: S608
    return out
