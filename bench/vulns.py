"""Benchmark: offline vulnerability matching — a 10,000-component SBOM against ≥ 200,000 advisories.

Advisories are generated from the shapes of the real OSV records in shared/data/osv (the PyPA database,
the GitHub Log4Shell advisory, the GHSA conversion cases): each generated advisory copies one real
record's ``affected`` entries (ranges, events, explicit ``versions`` lists, severity) onto a synthetic
package name in the same ecosystem, so the index holds real range shapes at scale.

Stages (each timed once):

1. parse: the real PyPA YAML tree read with ``load_path`` (records/s);
2. import: the generated advisories written with the store call the API's import uses
   (``stores.supply_chain.upsert_advisories`` + the generation bump, one transaction) into SQLite and,
   with ``--postgres``, into a fresh PostgreSQL schema (records/s);
3. index load: ``load_advisories`` + ``AdvisoryIndex`` from the database (what the server does once
   per process and after each import);
4. match: 10,000 SBOM components (purls; about a third name a package that has advisories, at versions
   taken from those advisories' events) through ``AdvisoryIndex.match`` (target ≤ 2 s).

Bounded: one pass per stage, sizes from the command line (defaults 200,000 and 10,000).

    .venv/bin/python bench/vulns.py --advisories 200000 --components 10000 \\
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from ringfence.adapters.db.engine import Database, normalise_url
from ringfence.adapters.db.stores import supply_chain as store
from ringfence.adapters.vuln.osv import load_path
from ringfence.domain.vulns import Advisory, AdvisoryIndex, Component, EventKind, MatchResult

DATA = Path(os.environ.get("RINGFENCE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "osv"
PURL_TYPE = {"PyPI": "pypi", "Maven": "maven", "npm": "npm", "RubyGems": "gem"}


def _templates() -> tuple[list[Advisory], float, int]:
    t0 = time.perf_counter()
    pypa = load_path(DATA / "pypa")
    parse_s = time.perf_counter() - t0
    extra = load_path(DATA / "github-advisories") + load_path(DATA / "ghsa-conversion")
    usable = [a for a in [*pypa, *extra] if a.withdrawn is None and a.affected
              and all(p.ecosystem in PURL_TYPE for p in a.affected)]
    return usable, parse_s, len(pypa)


def _name(eco: str, k: int) -> str:
    return f"org.bench.g{k % 97}:artifact-{k}" if eco == "Maven" else f"bench-pkg-{k}"


def _generate(templates: list[Advisory], n: int, packages: int, rng: random.Random) -> list[Advisory]:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        t = templates[i % len(templates)]
        k = rng.randrange(packages)
        affected = tuple(dataclasses.replace(p, name=_name(p.ecosystem, k), purl=None) for p in t.affected)
        out.append(dataclasses.replace(t, id=f"BENCH-{i:07d}", aliases=(f"CVE-2099-{i:07d}",), modified=now,
                                       affected=affected, source="bench"))
    return out


def _sbom(advisories: list[Advisory], n: int, packages: int, rng: random.Random) -> list[Component]:
    comps = []
    for i in range(n):
        if i % 3 == 0:
            adv = advisories[rng.randrange(len(advisories))]
            aff = adv.affected[0]
            versions = [v for r in aff.ranges for k, v in r.events if k != EventKind.LIMIT and v != "0"]
            versions += list(aff.versions)
            version = rng.choice(versions) if versions else "1.0.0"
            eco, name = aff.ecosystem, aff.name
        else:
            eco = rng.choice(list(PURL_TYPE))
            name, version = _name(eco, packages + i), f"{rng.randrange(1, 9)}.{rng.randrange(20)}.{rng.randrange(9)}"
        if eco == "Maven":
            group, artifact = name.split(":", 1)
            purl = f"pkg:maven/{group}/{artifact}@{version}"
        else:
            purl = f"pkg:{PURL_TYPE[eco]}/{name}@{version}"
        comps.append(Component(name=name, version=version, ecosystem=eco, purl=purl))
    return comps


def _pg_database(base: str) -> tuple[Database, str, object] | None:
    base = normalise_url(base)
    schema = f"rf_bench_{secrets.token_hex(3)}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as e:
        print(f"PostgreSQL not reachable ({e.__class__.__name__}); skipped", file=sys.stderr)
        return None
    sep = "&" if "?" in base else "?"
    db = Database(f"{base}{sep}options=-csearch_path%3D{schema}")
    db.upgrade()
    return db, schema, admin


def _import(db: Database, advisories: list[Advisory], batch: int) -> float:
    t0 = time.perf_counter()
    now = datetime.now(UTC)
    with db.transaction() as conn:
        for start in range(0, len(advisories), batch):
            store.upsert_advisories(conn, advisories[start:start + batch], now)
        store.bump_generation(conn, now)
    return time.perf_counter() - t0


class _Clock:
    """Wall and CPU seconds of one stage (CPU is this process only: PostgreSQL's own work is not in it)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--advisories", type=int, default=200_000)
    ap.add_argument("--components", type=int, default=10_000)
    ap.add_argument("--packages", type=int, default=60_000, help="synthetic packages the advisories spread over")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--postgres", default="", help="PostgreSQL URL; a fresh schema is made and dropped")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows: list[tuple[str, str, tuple[float, float], str]] = []

    c = _Clock()
    templates, _, parsed = _templates()
    spent = c.stop()
    rows.append(("parse", f"{parsed:,} PyPA YAML records (+ GHSA records)", spent, f"{parsed / spent[0]:,.0f} records/s"))
    c = _Clock()
    advisories = _generate(templates, args.advisories, args.packages, rng)
    rows.append(("generate", f"{len(advisories):,} advisories from {len(templates):,} real shapes", c.stop(), ""))

    targets: list[tuple[str, Database]] = []
    tmp = tempfile.TemporaryDirectory(prefix="ringfence-bench-")
    sqlite = Database(f"sqlite:///{tmp.name}/bench.db")
    sqlite.upgrade()
    targets.append(("SQLite", sqlite))
    pg = _pg_database(args.postgres) if args.postgres else None
    if pg is not None:
        targets.append(("PostgreSQL", pg[0]))

    components = _sbom(advisories, args.components, args.packages, rng)
    for label, db in targets:
        c = _Clock()
        _import(db, advisories, 5_000)
        spent = c.stop()
        rows.append((f"import {label}", f"{len(advisories):,} records, one transaction", spent,
                     f"{len(advisories) / spent[0]:,.0f} records/s"))
        c = _Clock()
        with db.transaction() as conn:
            loaded = store.load_advisories(conn)
        index = AdvisoryIndex(loaded)
        rows.append((f"index load {label}", f"{len(index):,} advisories", c.stop(), ""))
        c = _Clock()
        matches = index.match(components)
        spent = c.stop()
        affected = sum(1 for m in matches if m.result == MatchResult.AFFECTED)
        rows.append((f"match ({label} index)", f"{len(components):,} components → {affected:,} affected matches, "
                     f"{len(matches) - affected:,} not evaluated", spent, "target ≤ 2 s: "
                     + ("met" if spent[0] <= 2.0 else "NOT met") + " (wall)"))
        c = _Clock()
        index.match(components)
        rows.append((f"match again ({label})", "warm version-key caches", c.stop(), ""))
        db.dispose()
    if pg is not None:
        with pg[2].begin() as conn:  # type: ignore[attr-defined]
            conn.execute(text(f"DROP SCHEMA {pg[1]} CASCADE"))
    tmp.cleanup()

    print(f"{'stage':26} {'what':66} {'wall s':>8} {'cpu s':>8}  rate")
    for stage, what, (wall, cpu), rate in rows:
        print(f"{stage:26} {what:66} {wall:8.2f} {cpu:8.2f}  {rate}")


if __name__ == "__main__":
    main()
