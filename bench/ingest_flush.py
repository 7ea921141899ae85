"""What gate v2's presence costs the health ingest's batched flush (issue 13, server side).

Imports ``--hosts`` hosts into a fresh database, then for ``--rounds`` rounds every host sends one report
(a few of them a going-away notice or a crash) through :class:`~ringfence.services.health.HealthIngest` and
the buffer is flushed, as the reconciler does before every tick.  It times, per round:

* ``submit``: the in-memory part of accepting one report (validation, rate limit, folding the arrival);
* ``flush``: the write of the whole buffer as shipped (one read of the buffered hosts' presence, the upsert of
  ``host_health`` with the presence columns, the upsert of ``host_days``);
* ``heartbeats only``: the same rounds written with the first gate's statement alone
  (``record_heartbeats``: the heartbeat columns, no presence read, no per-day record), the baseline.

Usage: ``python bench/ingest_flush.py [--hosts 5000] [--rounds 5] [--postgres URL]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import health as health_store
from ringfence.domain.access import Role
from ringfence.domain.model import Host, HostId, Inventory, OsFamily, TenantId
from ringfence.services import inventory
from ringfence.services.context import Actor
from ringfence.services.health import HealthIngest, HealthReport

START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


class _Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _run(url: str, hosts: int, rounds: int) -> dict[str, list[float]]:
    db = Database(url)
    db.upgrade()
    clock = _Clock()
    ids = [f"b{i:06d}" for i in range(hosts)]
    inventory.import_inventory(db, Inventory(hosts=tuple(
        Host(id=HostId(h), hostname=h, tenant=TenantId("bench"), os_family=OsFamily.WINDOWS, os_build="22631",
             hardware_model="Latitude 7440", timezone="Europe/Berlin", country="DE") for h in ids)),
        actor=Actor(name="bench", role=Role.ADMIN), clock=clock)
    ingest = HealthIngest(db, clock, max_per_minute=1000, max_buffer=hosts + 1)
    out: dict[str, list[float]] = {"submit_us": [], "flush_ms": [], "heartbeats_only_ms": []}
    for r in range(rounds):
        clock.now = START + timedelta(minutes=r)
        t = time.perf_counter()
        for i, h in enumerate(ids):
            away = "sleep" if (i + r) % 50 == 0 else ""
            events = (("crashed", "", clock.now),) if (i + r) % 997 == 0 else ()
            ingest.submit(h, HealthReport(host_id=h, at=clock.now, away=away, events=events))
        out["submit_us"].append((time.perf_counter() - t) / hosts * 1e6)
        t = time.perf_counter()
        ingest.flush()
        out["flush_ms"].append((time.perf_counter() - t) * 1e3)
        beats = dict.fromkeys(ids, (clock.now, 1))
        t = time.perf_counter()
        with db.transaction() as conn:
            health_store.record_heartbeats(conn, beats)
        out["heartbeats_only_ms"].append((time.perf_counter() - t) * 1e3)
    db.engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--postgres", default="", help="a PostgreSQL URL of an empty database to use as well")
    args = ap.parse_args()
    hosts, rounds = min(args.hosts, 50_000), min(args.rounds, 20)  # bounded
    with tempfile.TemporaryDirectory() as tmp:
        urls = [("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}")]
        if args.postgres:
            urls.append(("PostgreSQL", args.postgres))
        print(f"{hosts:,} hosts, {rounds} rounds (median; the first round creates the rows)")
        print("| database | submit, µs/report | flush as shipped, ms | heartbeats only, ms | ratio |")
        print("|---|---|---|---|---|")
        for name, url in urls:
            got = _run(url, hosts, rounds)
            med = {k: statistics.median(v[1:] or v) for k, v in got.items()}
            print(f"| {name} | {med['submit_us']:.1f} | {med['flush_ms']:.0f} | {med['heartbeats_only_ms']:.0f} | "
                  f"{med['flush_ms'] / med['heartbeats_only_ms']:.1f}× |")


if __name__ == "__main__":
    main()
