"""Agent polling benchmark: static signed metadata served by ringfence vs nginx, and health ingestion.

What one simulated agent does per poll, over one keep-alive connection: GET ``timestamp.json``, the
snapshot, top-level targets and its cohort's role it names (versioned, immutable files), then the
``cohorts.json`` and ``desired.json`` target files — the files ngclient fetches when metadata changed.
Many pollers run concurrently (asyncio) against

1. ``ringfence serve`` (uvicorn, one process) serving ``/tuf/`` from its data directory, and
2. nginx (one worker, Debian package; installed with apt-get when missing) serving the tree that
   ``ringfence channel export`` wrote, on a temporary loopback port, as a non-daemon child,

each for a fixed time; then pollers ``POST /v1/health`` with host credentials for a fixed time
(PostgreSQL when ``--postgres`` is given).  Everything is bounded in count and time and uses
127.0.0.1 only.

The default client is a minimal keep-alive HTTP/1.1 client on asyncio streams, because httpx in one
Python process saturates well below nginx's rate (``--client httpx`` shows that).  Run::

    .venv/bin/python bench/agent_poll.py --hosts 2000 --pollers 64 --seconds 10 \\
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.channel.repository import ChannelRepository
from ringfence.adapters.db.engine import Database, normalise_url
from ringfence.domain.access import Role
from ringfence.domain.channel import COHORTS_TARGET, manifest_path
from ringfence.domain.model import Host, HostId, Inventory, OsFamily, TenantId
from ringfence.services import inventory, rollouts
from ringfence.services.channel import ChannelPublisher, channel_dir, export, init_keys
from ringfence.services.context import Actor, system_clock
from ringfence.services.health import issue_credential

console = Console(stderr=True)
OPERATOR = Actor(name="bench", role=Role.ADMIN, source="local")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# --- a minimal keep-alive HTTP/1.1 client ------------------------------------------------------------

class RawConnection:
    """One keep-alive connection; ``request`` returns (status, body length)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"", headers: str = "") -> tuple[int, int]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body else ""
        self.writer.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}{headers}\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status, length

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class HttpxConnection:
    """The same interface over httpx (one AsyncClient per poller)."""

    def __init__(self, port: int) -> None:
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)

    async def request(self, method: str, path: str, body: bytes = b"", headers: str = "") -> tuple[int, int]:
        hdrs = dict(h.split(": ", 1) for h in headers.strip().split("\r\n") if h)
        if body:
            hdrs["Content-Type"] = "application/json"
        r = await self.client.request(method, path, content=body or None, headers=hdrs)
        return r.status_code, len(r.content)

    async def close(self) -> None:
        await self.client.aclose()


@dataclass
class Result:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def run_pollers(port: int, polls: list[list[str]], pollers: int, seconds: float, client: str) -> Result:
    """``pollers`` agents, each fetching the files of one poll after another, for ``seconds``."""
    result = Result()
    deadline = time.monotonic() + seconds

    async def one(i: int) -> None:
        conn = RawConnection(port) if client == "raw" else HttpxConnection(port)
        n = i
        try:
            while time.monotonic() < deadline:
                for path in polls[n % len(polls)]:
                    status, _ = await conn.request("GET", path)
                    result.requests += 1
                    if status != 200:
                        result.errors += 1
                n += pollers
        finally:
            await conn.close()

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(pollers)))
    result.seconds = time.monotonic() - start
    return result


async def run_reporters(port: int, creds: list[tuple[str, str]], pollers: int, seconds: float) -> Result:
    """``pollers`` connections posting heartbeats for hosts in turn, for ``seconds``."""
    result = Result()
    deadline = time.monotonic() + seconds

    async def one(i: int) -> None:
        conn = RawConnection(port)
        n = i
        try:
            while time.monotonic() < deadline:
                host, cred = creds[n % len(creds)]
                body = json.dumps({"host_id": host, "at": datetime.now(UTC).isoformat(),
                                   "versions": {"falcon-content": "291"}, "committed": ["falcon-content"]}).encode()
                status, _ = await conn.request("POST", "/v1/health", body, f"Authorization: Bearer {cred}\r\n")
                result.requests += 1
                if status != 202:
                    result.errors += 1
                n += pollers
        finally:
            await conn.close()

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(pollers)))
    result.seconds = time.monotonic() - start
    return result


# --- setup ------------------------------------------------------------------------------------------

def poll_paths(data_dir: Path) -> list[list[str]]:
    """For every cohort, the URL paths one agent fetches in a poll (metadata and its two target files)."""
    repo = ChannelRepository(channel_dir(data_dir))
    versions = repo.versions()
    targets = repo.load("targets", versions).signed
    bins_info = targets.targets[COHORTS_TARGET]
    bins_file = f"/tuf/targets/{bins_info.hashes['sha256']}.{COHORTS_TARGET}"
    out = []
    for role in repo.cohort_roles():
        md = repo.read(f"{versions[role]}.{role}.json").signed
        info = md.targets[manifest_path(role)]
        out.append(["/tuf/metadata/timestamp.json", f"/tuf/metadata/{versions['snapshot']}.snapshot.json",
                    f"/tuf/metadata/{versions['targets']}.targets.json", bins_file,
                    f"/tuf/metadata/{versions[role]}.{role}.json",
                    f"/tuf/targets/{role}/{info.hashes['sha256']}.desired.json"])
    return out


def prepare(url: str, data_dir: Path, hosts: int, bins: int) -> list[tuple[str, str]]:
    """Migrate, import hosts, release + pin, keys, publish; return (host, credential) pairs."""
    db = Database(url)
    db.upgrade()
    fleet = [Host(id=HostId(f"bench-{i:06d}"), hostname=f"bench-{i}", tenant=TenantId("acme"),
                  os_family=OsFamily.WINDOWS, os_build="22631") for i in range(hosts)]
    inventory.import_inventory(db, Inventory(hosts=tuple(fleet)), actor=OPERATOR, clock=system_clock)
    artifacts = ArtifactStore(data_dir / "artifacts")
    rollouts.create_release(db, artifacts, product="falcon-content", version="291", kind="content",
                            platforms=["windows"], files=[("C-00000291.sys", os.urandom(40_000))], actor=OPERATOR,
                            clock=system_clock)
    rollouts.set_policy(db, tenant="acme", product="falcon-content", pin="exact:291", actor=OPERATOR,
                        clock=system_clock)
    init_keys(data_dir, bins=bins, clock=system_clock)
    ChannelPublisher(db, artifacts, data_dir, system_clock).publish()
    creds = [(h.id, issue_credential(db, h.id, actor=OPERATOR, clock=system_clock)) for h in fleet[:min(hosts, 1000)]]
    db.dispose()
    return creds


def pg_schema(base: str) -> tuple[str, str]:
    base = normalise_url(base)
    schema = f"rf_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", schema


def drop_schema(base: str, schema: str) -> None:
    admin = create_engine(normalise_url(base))
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def ensure_nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found:
        return found
    console.print("nginx not found: installing Debian's nginx-light with apt-get")
    subprocess.run(["apt-get", "install", "-y", "nginx-light"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, capture_output=True)
    return "/usr/sbin/nginx"


def nginx_conf(workdir: Path, root: Path, port: int) -> Path:
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path {workdir}/nginx-body;
  proxy_temp_path {workdir}/nginx-proxy;
  fastcgi_temp_path {workdir}/nginx-fastcgi;
  uwsgi_temp_path {workdir}/nginx-uwsgi;
  scgi_temp_path {workdir}/nginx-scgi;
  types {{ application/json json; }}
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{port};
    location = /tuf/metadata/timestamp.json {{ alias {root}/metadata/timestamp.json; add_header Cache-Control no-cache; }}
    location /tuf/ {{ alias {root}/; add_header Cache-Control "public, max-age=31536000, immutable"; }}
  }}
}}
""")
    return conf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--bins", type=int, default=64)
    parser.add_argument("--pollers", type=int, default=64, help="concurrent simulated agents (≤ 1000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each measurement (≤ 120)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per server (≤ 10)")
    parser.add_argument("--postgres", default="", help="PostgreSQL URL for the server (health ingestion)")
    args = parser.parse_args()
    pollers = max(1, min(args.pollers, 1000))
    seconds = max(1.0, min(args.seconds, 120.0))
    workdir = Path(tempfile.mkdtemp(prefix="rf-agent-poll-"))
    workdir.chmod(0o755)  # nginx workers run as an unprivileged user and must read the exported tree
    data_dir = workdir / "var"
    schema = ""
    url = f"sqlite:///{workdir / 'rf.db'}"
    if args.postgres:
        url, schema = pg_schema(args.postgres)
    server = nginx = None
    try:
        with console.status(f"preparing {args.hosts:,} hosts, a release, keys and the channel…"):
            creds = prepare(url, data_dir, args.hosts, args.bins)
        polls = poll_paths(data_dir)
        port = free_port()
        env = {**os.environ, "RINGFENCE_DATABASE_URL": url, "RINGFENCE_DATA_DIR": str(data_dir),
               "RINGFENCE_PORT": str(port), "RINGFENCE_HOST": "127.0.0.1", "RINGFENCE_LOG_LEVEL": "warning",
               "RINGFENCE_RECONCILE_INTERVAL_SECONDS": "0", "RINGFENCE_HEALTH_MAX_PER_MINUTE": "1000000"}
        server = subprocess.Popen([sys.executable, "-m", "ringfence.cli", "serve"], cwd=workdir, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{port}/readyz", server)
        exported = workdir / "www"
        export(data_dir, exported)
        nginx_port = free_port()
        nginx = subprocess.Popen([ensure_nginx(), "-c", str(nginx_conf(workdir, exported, nginx_port)),
                                  "-p", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{nginx_port}/tuf/metadata/timestamp.json", nginx)
        for p in polls[0]:  # both serve the same bytes
            a = httpx.get(f"http://127.0.0.1:{port}{p}")
            b = httpx.get(f"http://127.0.0.1:{nginx_port}{p}")
            if not (a.status_code == b.status_code == 200 and a.content == b.content):
                raise RuntimeError(f"{p}: ringfence {a.status_code} {a.content[:80]!r} vs nginx {b.status_code} "
                                   f"{b.content[:80]!r}")
        results: dict[str, Result] = {}
        rounds = max(1, min(args.rounds, 10))
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("measuring", total=2 * rounds + 2)
            asyncio.run(run_pollers(port, polls, pollers, 2.0, args.client))  # warm-up (caches, connections)
            progress.advance(task)
            # Alternate the two servers so that other load on the machine hits both alike.
            runs: dict[str, list[Result]] = {"ringfence": [], "nginx": []}
            for _ in range(rounds):
                for name, target in (("ringfence", port), ("nginx", nginx_port)):
                    runs[name].append(asyncio.run(run_pollers(target, polls, pollers, seconds, args.client)))
                    progress.advance(task)
            for name, rs in runs.items():
                results[name] = Result(requests=sum(r.requests for r in rs), errors=sum(r.errors for r in rs),
                                       seconds=sum(r.seconds for r in rs))
            results["health"] = asyncio.run(run_reporters(port, creds, pollers, seconds))
            progress.advance(task)
    finally:
        stop(server)
        stop(nginx)
        if schema:
            drop_schema(args.postgres, schema)
        shutil.rmtree(workdir, ignore_errors=True)
    table = Table(title=f"agent polling: {pollers} pollers, {rounds} × {seconds:.0f} s per server, client {args.client}, "
                        f"{args.hosts:,} hosts, {args.bins} cohorts")
    for c in ("what", "requests", "errors", "requests/s"):
        table.add_column(c)
    for name in ("ringfence", "nginx", "health"):
        r = results[name]
        label = {"ringfence": "GET /tuf/ (ringfence serve)", "nginx": "GET /tuf/ (nginx, exported tree)",
                 "health": f"POST /v1/health ({'PostgreSQL' if schema else 'SQLite'})"}[name]
        table.add_row(label, f"{r.requests:,}", f"{r.errors:,}", f"{r.rate:,.0f}")
    Console().print(table)
    ratio = results["ringfence"].rate / results["nginx"].rate if results["nginx"].rate else 0.0
    Console().print(f"ringfence / nginx = {ratio:.0%} (target ≥ 50%); machine: {platform.machine()}, "
                    f"{os.cpu_count()} cores, Python {platform.python_version()}")
    summary: dict[str, Any] = {k: {"requests": v.requests, "errors": v.errors, "rate": round(v.rate)}
                               for k, v in results.items()}
    summary["ratio"] = round(ratio, 3)
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
