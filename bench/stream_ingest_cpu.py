"""CPU cost of the streamed ingest's batch write: reports per CPU-second of ``StreamIngest.handle``.

The consumer side of NATS ingestion without NATS: batches of reports (with versions, as agents send them)
go through ``StreamIngest.handle`` (claim the ids, the same checks and buffer as HTTP, the flush) into a
fresh PostgreSQL schema, in one process. Process CPU seconds are the load-independent figure on a shared
machine (the database server's own CPU is not in them); wall seconds are printed beside them.

Run (bounded: at most ``--batches`` × ``--batch`` reports)::

    .venv/bin/python bench/stream_ingest_cpu.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        --hosts 20000 --batch 1000 --batches 25
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_poll import drop_schema, pg_schema

from ringfence.adapters.db.engine import Database
from ringfence.domain.access import Role
from ringfence.domain.model import Host, HostId, Inventory, OsFamily, TenantId
from ringfence.services.context import Actor, system_clock
from ringfence.services.health import HealthReport
from ringfence.services.ingest_stream import StreamIngest
from ringfence.services.inventory import import_inventory


@dataclass(frozen=True, slots=True)
class Message:
    msg_id: str
    host: str
    report: HealthReport


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", required=True)
    parser.add_argument("--hosts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=25)
    args = parser.parse_args()
    if not (0 < args.hosts <= 1_000_000 and 0 < args.batch <= 10_000 and 0 < args.batches <= 200):
        parser.error("bounds: hosts ≤ 1,000,000, batch ≤ 10,000, batches ≤ 200")
    url, schema = pg_schema(args.postgres)
    try:
        db = Database(url)
        db.upgrade()
        fleet = tuple(Host(id=HostId(f"hb-{i:07d}"), hostname=f"hb{i}", tenant=TenantId("acme"),
                           os_family=OsFamily.LINUX) for i in range(args.hosts))
        import_inventory(db, Inventory(hosts=fleet), actor=Actor(name="bench", role=Role.ADMIN, source="local"),
                         clock=system_clock)
        ingest = StreamIngest(db, system_clock, max_per_minute=10**6)
        now = datetime.now(UTC)

        def batch(k: int) -> list[Message]:
            hosts = [f"hb-{(k * args.batch + i) % args.hosts:07d}" for i in range(args.batch)]
            return [Message(secrets.token_hex(8), h, HealthReport(host_id=h, at=now - timedelta(seconds=k),
                                                                   versions={"falcon-content": "291"}))
                    for h in hosts]
        warm, timed = [batch(k) for k in range(3)], [batch(k) for k in range(3, 3 + args.batches)]
        for b in warm:
            ingest.handle(b)
        wall, cpu = time.perf_counter(), time.process_time()
        for b in timed:
            ingest.handle(b)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        n = args.batch * args.batches
        print(f"{n:,} reports in batches of {args.batch:,} over {args.hosts:,} hosts: {cpu:.2f} CPU s "
              f"({n / cpu:,.0f} reports per CPU-second), {wall:.2f} wall s ({n / wall:,.0f}/s); "
              f"written {ingest.counts.written:,}; load {os.getloadavg()}")
        db.dispose()
    finally:
        drop_schema(args.postgres, schema)


if __name__ == "__main__":
    main()
