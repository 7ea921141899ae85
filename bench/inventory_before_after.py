"""Inventory import into PostgreSQL (and SQLite), this tree against an older commit, alternating, in one run.

Usage (from the repository root)::

    .venv/bin/python bench/inventory_before_after.py --before 48c4d60 --hosts 100000 --rounds 2 \\
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test [--sqlite]

The older commit's ``src/`` is exported with ``git archive`` into a temporary directory; each import
(then a re-import of the same fleet) runs in its own process with that ``src`` first on ``PYTHONPATH``,
into a fresh schema that is dropped afterwards (``--sqlite``: also into a fresh SQLite file).  Rounds
alternate before/after so that other load on the machine hits both alike; each row shows the 1-minute
load average when its import ended.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, secrets, sys, time
from sqlalchemy import create_engine, text
from ringfence.adapters.db.engine import Database, normalise_url
from ringfence.domain.access import Role
from ringfence.services.context import Actor, system_clock
from ringfence.services.inventory import import_inventory
from ringfence.sim.fleetgen import generate_fleet
import os, tempfile
hosts, url = int(sys.argv[1]), sys.argv[2]
inv = generate_fleet(hosts, 1)
out = {}
def run(db):
    db.upgrade()
    actor = Actor(name="bench", role=Role.ADMIN, source="bench")
    for stage in ("import", "re-import"):
        start = time.perf_counter()
        import_inventory(db, inv, actor=actor, clock=system_clock)
        out[stage] = time.perf_counter() - start
        out[f"{stage} load"] = os.getloadavg()[0]
    db.dispose()
if url == "sqlite":
    with tempfile.TemporaryDirectory() as tmp:
        run(Database(f"sqlite:///{tmp}/bench.db"))
else:
    url = normalise_url(url)
    schema = f"rf_bench_{secrets.token_hex(3)}"
    admin = create_engine(url)
    with admin.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        run(Database(f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"))
    finally:
        with admin.begin() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
print(json.dumps(out))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument("--hosts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (≤ 5)")
    parser.add_argument("--postgres", default=os.environ.get("RINGFENCE_TEST_DATABASE_URL",
                                                             "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--sqlite", action="store_true", help="also import into a fresh SQLite file")
    args = parser.parse_args()
    console = Console(stderr=True)
    table = Table(title=f"inventory import, {args.hosts:,} hosts, before {args.before} vs this tree")
    for col in ("database", "code", "import s", "hosts/s", "load", "re-import s", "hosts/s", "load"):
        table.add_column(col)
    targets = [("PostgreSQL", args.postgres)] + ([("SQLite", "sqlite")] if args.sqlite else [])
    ratios: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as old:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "src"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
        for r in range(1, max(1, min(args.rounds, 5)) + 1):
            for database, url in targets:
                for label, src in ((f"before ({args.before})", Path(old) / "src"), ("after", ROOT / "src")):
                    with console.status(f"round {r}: {database}, {label}"):
                        run = subprocess.run([sys.executable, "-c", CHILD, str(args.hosts), url], check=True,
                                             capture_output=True, text=True, timeout=3600,
                                             env={**os.environ, "PYTHONPATH": str(src)})
                    t = json.loads(run.stdout.strip().splitlines()[-1])
                    for stage in ("import", "re-import"):
                        ratios.setdefault((database, stage), []).append(t[stage])
                    table.add_row(database, f"{label}, round {r}", f"{t['import']:.1f}",
                                  f"{args.hosts / t['import']:,.0f}", f"{t['import load']:.1f}",
                                  f"{t['re-import']:.1f}", f"{args.hosts / t['re-import']:,.0f}",
                                  f"{t['re-import load']:.1f}")
    Console(width=150).print(table)
    for (database, stage), secs in ratios.items():  # before, after, before, after, ...
        before, after = sum(secs[0::2]), sum(secs[1::2])
        print(f"{database} {stage}: after is {before / after:.2f}x the rate of before (seconds summed over rounds)")
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
