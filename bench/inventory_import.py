"""Benchmark: import a generated fleet into SQLite and PostgreSQL, print rows/s.

Usage (from the repository root, after `make install`)::

    .venv/bin/python bench/inventory_import.py [--hosts 1000000] [--seed 1] \
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--skip-sqlite]

Stages timed separately, in one run so the figures compare:

* generate — ``ringfence.sim.fleetgen.generate_fleet`` (hosts/s);
* parse    — reading the fleet back from the JSON Lines file ``fleet generate`` writes (hosts/s);
* import   — ``services.inventory.import_inventory``: validation, tenant/host/agent/label/service
  upserts and the audit entry, in one transaction (hosts/s, and child rows/s).

PostgreSQL runs in a fresh schema that is dropped afterwards.  Target
(DESIGN §9): ≥ 50,000 hosts/s into PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

from ringfence.adapters.db.engine import Database, normalise_url
from ringfence.adapters.db.stores import inventory as store
from ringfence.adapters.inventory.files import read_paths, write_inventory
from ringfence.domain.access import Role
from ringfence.domain.model import Inventory
from ringfence.runtime import collector_paused
from ringfence.services.context import Actor, system_clock
from ringfence.services.inventory import import_inventory
from ringfence.sim.fleetgen import generate_fleet

console = Console(stderr=True)


def _import(db: Database, inv: Inventory) -> tuple[float, dict[str, int]]:
    actor = Actor(name="bench", role=Role.ADMIN, source="bench")
    start = time.perf_counter()
    import_inventory(db, inv, actor=actor, clock=system_clock, sources=("bench",))
    elapsed = time.perf_counter() - start
    with db.transaction() as conn:
        counts = store.table_counts(conn)
    return elapsed, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", default=os.environ.get("RINGFENCE_TEST_DATABASE_URL",
                                                             "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()

    rows: list[tuple[str, str, float, str]] = []
    with console.status(f"generating {args.hosts:,} hosts"), collector_paused():
        start = time.perf_counter()
        inv = generate_fleet(args.hosts, args.seed)
        gen_s = time.perf_counter() - start
    rows.append(("generate", "memory", gen_s, f"{args.hosts / gen_s:,.0f} hosts/s"))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fleet.jsonl"
        with console.status("writing JSON Lines"):
            write_inventory(inv, path)
        with console.status("parsing JSON Lines"):
            start = time.perf_counter()
            parsed = read_paths([path])
            parse_s = time.perf_counter() - start
        assert len(parsed.hosts) == args.hosts
        rows.append(("parse", f"{path.stat().st_size / 1e6:,.0f} MB jsonl", parse_s, f"{args.hosts / parse_s:,.0f} hosts/s"))
        del parsed

    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite:///{tmp}/bench.db")
            db.upgrade()
            with console.status("importing into SQLite"):
                secs, counts = _import(db, inv)
            child = counts["host_agents"] + counts["host_labels"] + counts["host_services"]
            rate = f"{args.hosts / secs:,.0f} hosts/s ({(args.hosts + child) / secs:,.0f} rows/s)"
            rows.append(("import", "SQLite", secs, rate))
            db.dispose()

    if not args.skip_postgres:
        base = normalise_url(args.postgres)
        schema = f"rf_bench_{secrets.token_hex(3)}"
        admin = create_engine(base)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        try:
            db = Database(f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}")
            db.upgrade()
            with console.status("importing into PostgreSQL"):
                secs, counts = _import(db, inv)
            child = counts["host_agents"] + counts["host_labels"] + counts["host_services"]
            rows.append(("import", "PostgreSQL", secs,
                         f"{args.hosts / secs:,.0f} hosts/s ({(args.hosts + child) / secs:,.0f} rows/s)"))
            with console.status("re-importing into PostgreSQL (every host updated)"):
                secs, _ = _import(db, inv)
            rows.append(("re-import", "PostgreSQL", secs, f"{args.hosts / secs:,.0f} hosts/s"))
            db.dispose()
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()

    table = Table(title=f"inventory import, {args.hosts:,} hosts, seed {args.seed}")
    for col in ("stage", "target", "seconds", "rate"):
        table.add_column(col)
    for stage, target, secs, rate in rows:
        table.add_row(stage, target, f"{secs:.1f}", rate)
    Console().print(table)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:,.0f} MB; python {sys.version.split()[0]}; {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
