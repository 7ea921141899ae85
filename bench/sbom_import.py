"""Benchmark: validate and store CycloneDX SBOMs of 10,000 and 100,000 components (issue 14, defect 9).

Each size is one generated CycloneDX 1.5 JSON document: every component has a purl (PyPI, npm, Maven,
Go in turn), a version, a SHA-256 hash, a license id from the SPDX list and a ``dependencies`` entry,
so the schema checks that were slow (``uniqueItems`` over the components, the license ``enum``, IRI
formats) all run. Stages, each timed once in the same process:

1. parse — ``parse_sbom`` (JSON, nesting cap, purls);
2. validate — ``validate_sbom`` (the CycloneDX 1.5 JSON schema);
3. store — ``attach_sbom`` into SQLite and, with ``--postgres``, a fresh PostgreSQL schema (one
   transaction: components and the audit entry).

Targets: 10,000 components parsed, validated and stored ≤ 5 s; 100,000 ≤ 60 s. Bounded: one pass per
size and database.

    .venv/bin/python bench/sbom_import.py --sizes 10000 100000 \\
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database, normalise_url
from ringfence.adapters.sbom.parse import parse_sbom
from ringfence.adapters.sbom.validate import validate_sbom
from ringfence.domain.access import Role
from ringfence.services import rollouts
from ringfence.services.context import Actor
from ringfence.services.supply_chain import PreparedSbom, attach_sbom

_PURLS = ("pkg:pypi/bench-{k}@1.{v}.0", "pkg:npm/%40bench/pkg-{k}@2.{v}.1",
          "pkg:maven/org.bench/artifact-{k}@3.{v}.2", "pkg:golang/github.com/bench/mod-{k}@v0.{v}.3")
_LICENSES = ("MIT", "Apache-2.0", "BSD-3-Clause", "GPL-2.0-only", "ISC")


def make_sbom(n: int) -> bytes:
    """A valid CycloneDX 1.5 JSON SBOM of ``n`` distinct components."""
    comps = []
    for k in range(n):
        purl = _PURLS[k % 4].format(k=k, v=k % 50)
        comps.append({"type": "library", "bom-ref": purl, "name": f"pkg-{k}", "version": purl.rsplit("@", 1)[1],
                      "purl": purl, "hashes": [{"alg": "SHA-256", "content": f"{k:064x}"}],
                      "licenses": [{"license": {"id": _LICENSES[k % 5]}}],
                      "externalReferences": [{"type": "website", "url": f"https://example.org/pkg-{k}"}]})
    doc = {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
           "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
           "metadata": {"component": {"type": "application", "name": "bench", "bom-ref": "bench"}},
           "components": comps, "dependencies": [{"ref": c["bom-ref"], "dependsOn": []} for c in comps]}
    return json.dumps(doc).encode()


def _store(db: Database, artifacts: ArtifactStore, prepared: PreparedSbom, version: str) -> float:
    actor = Actor(name="bench", role=Role.ADMIN, source="bench")
    clock = lambda: datetime.now(UTC)  # noqa: E731 - a clock is a callable
    release = rollouts.create_release(db, artifacts, product="bench", version=version, kind="app",
                                      platforms=["linux"], files=[("bench.bin", b"x")], actor=actor, clock=clock)
    start = time.perf_counter()
    attach_sbom(db, release.id, prepared, actor=actor, clock=clock)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--postgres", default="", help="PostgreSQL URL; a fresh schema is created and dropped")
    args = parser.parse_args()
    console = Console()
    table = Table(title="SBOM validate + store")
    for col in ("components", "MB", "parse s", "validate s", "store SQLite s", "total SQLite s", "store PG s",
                "total PG s", "target s"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = Database(f"sqlite:///{tmp}/bench.db")
        sqlite.upgrade()
        artifacts = ArtifactStore(Path(tmp) / "artifacts")
        pg: Database | None = None
        schema = f"rf_bench_{secrets.token_hex(3)}"
        if args.postgres:
            base = normalise_url(args.postgres)
            with create_engine(base).begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            pg = Database(f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}")
            pg.upgrade()
        try:
            for n in args.sizes:
                data = make_sbom(n)
                with console.status(f"{n:,} components: parse"):
                    t0 = time.perf_counter()
                    sbom = parse_sbom(f"bench-{n}.cdx.json", data)
                    t1 = time.perf_counter()
                with console.status(f"{n:,} components: validate"):
                    warnings = validate_sbom(sbom, data)
                    t2 = time.perf_counter()
                assert len(sbom.components) == n, len(sbom.components)
                assert not warnings, warnings
                prepared = PreparedSbom(sbom=sbom, sha256="0" * 64, warnings=())
                with console.status(f"{n:,} components: store (SQLite)"):
                    store_sqlite = _store(sqlite, artifacts, prepared, f"{n}")
                store_pg = None
                if pg is not None:
                    with console.status(f"{n:,} components: store (PostgreSQL)"):
                        store_pg = _store(pg, artifacts, prepared, f"{n}")
                base_s = t2 - t0
                target = 5.0 if n <= 10_000 else 60.0
                table.add_row(f"{n:,}", f"{len(data) / 1e6:.1f}", f"{t1 - t0:.2f}", f"{t2 - t1:.2f}",
                              f"{store_sqlite:.2f}", f"{base_s + store_sqlite:.2f}",
                              "—" if store_pg is None else f"{store_pg:.2f}",
                              "—" if store_pg is None else f"{base_s + store_pg:.2f}", f"{target:.0f}")
        finally:
            sqlite.dispose()
            if pg is not None:
                pg.dispose()
                with create_engine(normalise_url(args.postgres)).begin() as conn:
                    conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
