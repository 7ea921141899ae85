"""Health ingestion benchmark: HTTP reports per second on one server, and NATS JetStream ingestion.

Two parts, in one run, on loopback only, every loop bounded in count and time:

1. **HTTP** — ``ringfence serve`` (one process; and ``--workers 2`` on PostgreSQL) with ``--pollers``
   keep-alive connections posting ``POST /v1/health`` for ``--seconds`` each, authenticated three ways
   in turn: the host credential (``rfh_``, a database lookup per report), a host token (``rft_``,
   checked with the key alone) and, with ``--nats``, a host token on a ``--role api`` server that
   stores each report in the JetStream stream before its 202.
2. **NATS** — ``--reports`` reports for ``--hosts`` hosts are published to a fresh stream (the publish
   rate is measured), then ``--consumers`` ``ringfence serve --role ingest`` processes write them into
   the database; the script polls the database until every report is written or ``--max-seconds``
   passes, and checks that the sum of per-host report counts and the claimed message ids both equal
   the reports published (0 lost, 0 counted twice).

Run::

    .venv/bin/python bench/health_ingest.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        --nats nats://127.0.0.1:4222 --seconds 10 --reports 1200000 --consumers 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from agent_poll import drop_schema, free_port, pg_schema, run_reporters, stop, wait_http

from ringfence.adapters.db.engine import Database
from ringfence.adapters.nats.stream import CONSUMER, HealthStream, admin, encode
from ringfence.domain.access import Role
from ringfence.domain.model import Host, HostId, Inventory, OsFamily, TenantId
from ringfence.services.context import Actor, system_clock
from ringfence.services.health import HealthReport, issue_credential
from ringfence.services.inventory import import_inventory

console = Console(stderr=True)
OPERATOR = Actor(name="bench", role=Role.ADMIN, source="local")
KEY = secrets.token_hex(32)


def prepare(url: str, hosts: int, credentials: int) -> list[tuple[str, str]]:
    db = Database(url)
    db.upgrade()
    fleet = [Host(id=HostId(f"hb-{i:07d}"), hostname=f"hb-{i}", tenant=TenantId("acme"), os_family=OsFamily.LINUX)
             for i in range(hosts)]
    import_inventory(db, Inventory(hosts=tuple(fleet)), actor=OPERATOR, clock=system_clock)
    creds = [(h.id, issue_credential(db, h.id, actor=OPERATOR, clock=system_clock)) for h in fleet[:credentials]]
    db.dispose()
    return creds


def serve(url: str, data_dir: Path, port: int, *extra: str, **env: str) -> subprocess.Popen[bytes]:
    environ = {**os.environ, "RINGFENCE_DATABASE_URL": url, "RINGFENCE_DATA_DIR": str(data_dir),
               "RINGFENCE_HOST_TOKEN_KEY": KEY, "RINGFENCE_AUDIT_KEY": KEY, "RINGFENCE_RECONCILE_INTERVAL_SECONDS": "0",
               "RINGFENCE_HEALTH_MAX_PER_MINUTE": "1000000", "RINGFENCE_LOG_LEVEL": "warning", **env}
    proc = subprocess.Popen([sys.executable, "-m", "ringfence.cli", "serve", "--port", str(port), *extra],
                            env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/readyz", proc)
    return proc


def tokens_for(port: int, creds: list[tuple[str, str]]) -> list[tuple[str, str]]:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
        return [(h, c.post("/v1/agent/token", headers={"Authorization": f"Bearer {cred}"}).json()["token"])
                for h, cred in creds]


def http_part(url: str, workdir: Path, creds: list[tuple[str, str]], args: argparse.Namespace,
              postgres: bool) -> list[tuple[str, float, int, int]]:
    rows: list[tuple[str, float, int, int]] = []
    shapes: list[tuple[str, tuple[str, ...], dict[str, str]]] = [("serve (1 process)", (), {})]
    if postgres:
        shapes.append(("serve --workers 2", ("--workers", "2"), {}))
    if args.nats:
        shapes.append(("serve --role api, NATS stream", (), {
            "RINGFENCE_ROLE": "api", "RINGFENCE_INGEST_NATS_URL": args.nats,
            "RINGFENCE_INGEST_NATS_STREAM": f"RF_BENCH_HTTP_{secrets.token_hex(3).upper()}"}))
    for name, extra, env in shapes:
        port = free_port()
        proc = serve(url, workdir / "var", port, *extra, **env)
        try:
            toks = tokens_for(port, creds)
            for _round in range(args.rounds):
                for how, pairs in (("credential rfh_", creds), ("host token rft_", toks)):
                    if env and how.startswith("credential"):
                        continue  # the stream shape is measured with tokens only
                    with console.status(f"{name}: {how}"):
                        r = asyncio.run(run_reporters(port, pairs, args.pollers, args.seconds))
                    rows.append((f"{name}, {how}", r.rate, r.requests, r.errors))
        finally:
            stop(proc)
            if env.get("RINGFENCE_INGEST_NATS_STREAM"):
                admin(args.nats, lambda js, s=env["RINGFENCE_INGEST_NATS_STREAM"]: js.delete_stream(s))
    return rows


def nats_part(url: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    stream = f"RF_BENCH_{secrets.token_hex(3).upper()}"
    now = datetime.now(UTC)
    with console.status(f"encoding {args.reports:,} reports"):
        per_host = -(-args.reports // args.hosts)
        messages = [encode(f"hb-{i % args.hosts:07d}", HealthReport(
            host_id=f"hb-{i % args.hosts:07d}", at=now - timedelta(milliseconds=(i // args.hosts) * 997 % 600_000),
            versions={} if args.no_versions else {"falcon-content": "291"})) for i in range(args.reports)]
    publisher = HealthStream(args.nats, stream=stream, timeout=30)
    try:
        with console.status(f"publishing {args.reports:,} reports to {stream}"):
            start = time.perf_counter()
            published = publisher.publish_many(messages, window=1000)
            publish_s = time.perf_counter() - start
    finally:
        publisher.close()
    del messages
    db = Database(url)
    with db.transaction() as conn:  # the HTTP part's reports are in the same tables: count from here
        before = int(conn.execute(text("SELECT coalesce(sum(reports), 0) FROM host_health")).scalar_one())
    procs = []
    env = {"RINGFENCE_ROLE": "ingest", "RINGFENCE_INGEST_NATS_URL": args.nats, "RINGFENCE_INGEST_NATS_STREAM": stream}
    written = claimed = 0
    try:
        start = time.perf_counter()
        for i in range(args.consumers):
            (workdir / f"c{i}").mkdir(exist_ok=True)
            procs.append(serve(url, workdir / f"c{i}", free_port(), **env))
        started_s = time.perf_counter() - start
        timeline: list[tuple[float, int]] = []
        deadline = time.monotonic() + args.max_seconds
        with console.status("consumers writing") as status:
            while time.monotonic() < deadline:
                with db.transaction() as conn:
                    written = int(conn.execute(text("SELECT count(*) FROM ingested_reports")).scalar_one())
                timeline.append((time.perf_counter() - start, written))
                status.update(f"consumers writing: {written:,} of {published:,}")
                if written >= published:
                    break
                time.sleep(1)
        time.sleep(3)  # a late redelivery would show up here
        with db.transaction() as conn:
            written = int(conn.execute(text("SELECT coalesce(sum(reports), 0) FROM host_health")).scalar_one()) - before
            claimed = int(conn.execute(text("SELECT count(*) FROM ingested_reports")).scalar_one())
        for p in procs:
            stop(p)
        procs = []
        waiting = admin(args.nats, lambda js: js.consumer_info(stream, CONSUMER))  # not written yet: still stored
        in_stream = int(waiting.num_pending or 0) + int(waiting.num_ack_pending or 0)
    finally:
        for p in procs:
            stop(p)
        db.dispose()
        admin(args.nats, lambda js: js.delete_stream(stream))
    first = next((t for t, n in timeline if n > 0), timeline[-1][0])
    last = next((t for t, n in timeline if n >= published), timeline[-1][0])
    steady = [(t, n) for t, n in timeline if first <= t <= last]
    rate = (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0]) if len(steady) > 1 else 0.0
    return {"stream": stream, "published": published, "publish_rate": published / publish_s,
            "per_host": per_host, "versions": not args.no_versions, "consumers": args.consumers, "consumer_start_s": started_s,
            "written": written, "claimed": claimed, "in_stream_at_stop": in_stream,
            "lost": published - claimed - in_stream, "double": max(written - claimed, 0),
            "write_seconds": last - first, "write_rate": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default="", help="PostgreSQL URL (SQLite in a temporary file without it)")
    parser.add_argument("--nats", default="", help="NATS URL with JetStream (skips the NATS part without it)")
    parser.add_argument("--hosts", type=int, default=100_000)
    parser.add_argument("--credentials", type=int, default=1000, help="hosts the HTTP reporters cycle through")
    parser.add_argument("--pollers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reports", type=int, default=1_200_000)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--no-versions", action="store_true",
                        help="streamed reports without versions (agents send them with every report)")
    args = parser.parse_args()
    if not (0 < args.seconds <= 120 and 0 < args.rounds <= 5 and 0 < args.reports <= 5_000_000
            and 0 < args.consumers <= 8 and 0 < args.max_seconds <= 1800 and 0 < args.pollers <= 512):
        parser.error("bounds: seconds ≤ 120, rounds ≤ 5, reports ≤ 5,000,000, consumers ≤ 8, max-seconds ≤ 1800, "
                     "pollers ≤ 512")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        schema = ""
        if args.postgres:
            url, schema = pg_schema(args.postgres)
        else:
            url = f"sqlite:///{workdir}/bench.db"
        try:
            with console.status(f"importing {args.hosts:,} hosts"):
                creds = prepare(url, args.hosts, min(args.credentials, args.hosts))
            rows = [] if args.skip_http else http_part(url, workdir, creds, args, bool(args.postgres))
            result = nats_part(url, workdir, args) if args.nats else None
        finally:
            if schema:
                drop_schema(args.postgres, schema)
    table = Table(title=f"POST /v1/health, {args.pollers} connections, {args.seconds:.0f} s each, "
                        f"{'PostgreSQL' if args.postgres else 'SQLite'}")
    for col in ("server, authentication", "reports/s", "reports", "errors"):
        table.add_column(col)
    for name, rate, n, errors in rows:
        table.add_row(name, f"{rate:,.0f}", f"{n:,}", f"{errors:,}")
    Console().print(table)
    if result is not None:
        Console().print(result)
    print(f"python {sys.version.split()[0]}; {os.cpu_count()} cores; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
