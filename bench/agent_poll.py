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
import re
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


@dataclass
class Result:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


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


def ensure_tool(name: str, package: str) -> str:
    """The path of a Debian tool (nginx, wrk), installed with apt-get when missing."""
    found = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None)
    if found:
        return found
    console.print(f"{name} not found: installing Debian's {package} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env, capture_output=True)
    return shutil.which(name) or f"/usr/sbin/{name}"


def nginx_conf(workdir: Path, root: Path, port: int, workers: int) -> Path:
    conf = workdir / f"nginx-{workers}.conf"
    conf.write_text(f"""
worker_processes {workers};
daemon off;
pid {workdir}/nginx-{workers}.pid;
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


FACTORY = "ringfence.adapters.api.asgi:app_from_env"
SERVE = "ringfence serve (uvicorn[standard]), 1 worker"
SERVE2 = "ringfence serve --workers 2 (granian)"


def server_commands(port: int, postgres: bool) -> dict[str, list[str]]:
    """The ASGI servers compared, each serving the same app (``app_from_env``) on ``port``; then ``ringfence serve``."""
    py = sys.executable
    uvicorn = [py, "-m", "uvicorn", "--factory", FACTORY, "--host", "127.0.0.1", "--port", str(port),
               "--no-access-log", "--log-level", "warning"]
    granian = [py, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1", "--port", str(port),
               "--no-ws", "--log-level", "warning", "--loop", "uvloop"]
    return {
        "uvicorn h11/asyncio, 1 worker": [*uvicorn, "--http", "h11", "--loop", "asyncio"],
        "uvicorn httptools/uvloop, 1 worker": [*uvicorn, "--http", "httptools", "--loop", "uvloop"],
        "uvicorn httptools/uvloop, 2 workers": [*uvicorn, "--http", "httptools", "--loop", "uvloop", "--workers", "2"],
        "granian, 1 worker": [*granian, "--workers", "1", FACTORY],
        "granian, 2 workers": [*granian, "--workers", "2", FACTORY],
        SERVE: [py, "-m", "ringfence.cli", "serve", "--port", str(port)],
        **({SERVE2: [py, "-m", "ringfence.cli", "serve", "--port", str(port), "--workers", "2"]} if postgres else {}),
    }


WRK_SCRIPT = """
paths = {%s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end
"""


def run_wrk(wrk: str, script: Path, port: int, connections: int, seconds: float) -> Result:
    """One wrk run (2 threads, ``connections`` keep-alive connections); errors count non-2xx and socket errors."""
    out = subprocess.run([wrk, "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script),
                          f"http://127.0.0.1:{port}"], check=True, capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    assert m is not None, out
    requests, secs = int(m.group(1)), float(m.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(3)]
    errors = 0
    if (bad := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) is not None:
        errors += int(bad.group(1))
    if (sock := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)) is not None:
        errors += sum(int(g) for g in sock.groups())
    return Result(requests=requests, errors=errors, seconds=secs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--bins", type=int, default=64)
    parser.add_argument("--pollers", type=int, default=64, help="concurrent keep-alive connections (≤ 1000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement (≤ 120)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over every server (≤ 10)")
    parser.add_argument("--postgres", default="", help="PostgreSQL URL for the server (health ingestion)")
    parser.add_argument("--only", action="append", default=[], help="measure only servers whose name contains this")
    args = parser.parse_args()
    pollers = max(1, min(args.pollers, 1000))
    seconds = max(1.0, min(args.seconds, 120.0))
    rounds = max(1, min(args.rounds, 10))
    wrk = ensure_tool("wrk", "wrk")
    nginx_bin = ensure_tool("nginx", "nginx-light")
    workdir = Path(tempfile.mkdtemp(prefix="rf-agent-poll-"))
    workdir.chmod(0o755)  # nginx workers run as an unprivileged user and must read the exported tree
    data_dir = workdir / "var"
    schema = ""
    url = f"sqlite:///{workdir / 'rf.db'}"
    if args.postgres:
        url, schema = pg_schema(args.postgres)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with console.status(f"preparing {args.hosts:,} hosts, a release, keys and the channel…"):
            creds = prepare(url, data_dir, args.hosts, args.bins)
        polls = poll_paths(data_dir)
        script = workdir / "poll.lua"
        script.write_text(WRK_SCRIPT % ", ".join(json.dumps(p) for poll in polls for p in poll))
        exported = workdir / "www"
        export(data_dir, exported)
        env = {**os.environ, "RINGFENCE_DATABASE_URL": url, "RINGFENCE_DATA_DIR": str(data_dir),
               "RINGFENCE_HOST": "127.0.0.1", "RINGFENCE_LOG_LEVEL": "warning",
               "RINGFENCE_RECONCILE_INTERVAL_SECONDS": "0", "RINGFENCE_HEALTH_MAX_PER_MINUTE": "1000000"}
        targets: dict[str, int] = {}
        for workers in (1, 2):
            port = free_port()
            proc = subprocess.Popen([nginx_bin, "-c", str(nginx_conf(workdir, exported, port, workers)), "-p",
                                     str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(proc)
            wait_http(f"http://127.0.0.1:{port}/tuf/metadata/timestamp.json", proc)
            targets[f"nginx, {workers} worker{'s' if workers > 1 else ''}"] = port
        ports = {name: free_port() for name in server_commands(0, bool(schema))}
        for name, port in ports.items():
            if args.only and not any(o in name for o in args.only):
                continue
            proc = subprocess.Popen(server_commands(port, bool(schema))[name], cwd=workdir,
                                    env={**env, "RINGFENCE_PORT": str(port)}, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            procs.append(proc)
            wait_http(f"http://127.0.0.1:{port}/readyz", proc)
            targets[name] = port
        nginx_port = targets["nginx, 1 worker"]
        for name, port in targets.items():  # every server answers the same bytes as nginx
            for p in polls[0]:
                a = httpx.get(f"http://127.0.0.1:{port}{p}")
                b = httpx.get(f"http://127.0.0.1:{nginx_port}{p}")
                if not (a.status_code == b.status_code == 200 and a.content == b.content):
                    raise RuntimeError(f"{name} {p}: {a.status_code} {a.content[:80]!r} vs nginx {b.status_code} "
                                       f"{b.content[:80]!r}")
        runs: dict[str, list[Result]] = {name: [] for name in targets}
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("measuring", total=len(targets) * (rounds + 1) + 1)
            for port in targets.values():  # warm-up (caches, connections, lazy imports)
                run_wrk(wrk, script, port, pollers, 1.0)
                progress.advance(task)
            # Rounds go over every server in turn so that other load on the machine hits all alike.
            for _ in range(rounds):
                for name, port in targets.items():
                    runs[name].append(run_wrk(wrk, script, port, pollers, seconds))
                    progress.advance(task)
            results = {name: Result(requests=sum(r.requests for r in rs), errors=sum(r.errors for r in rs),
                                    seconds=sum(r.seconds for r in rs)) for name, rs in runs.items()}
            serve_port = targets.get(SERVE2) or targets.get(SERVE)
            health = asyncio.run(run_reporters(serve_port, creds, pollers, seconds)) if serve_port else None
            progress.advance(task)
    finally:
        for proc in procs:
            stop(proc)
        if schema:
            drop_schema(args.postgres, schema)
        shutil.rmtree(workdir, ignore_errors=True)
    table = Table(title=f"GET /tuf/ polling: wrk, {pollers} connections, {rounds} × {seconds:.0f} s per server, "
                        f"{args.hosts:,} hosts, {args.bins} cohorts")
    for c in ("server", "requests", "errors", "requests/s", "÷ nginx 1 worker", "÷ nginx 2 workers"):
        table.add_column(c)
    base1, base2 = results["nginx, 1 worker"].rate, results["nginx, 2 workers"].rate
    for name, r in results.items():
        table.add_row(name, f"{r.requests:,}", f"{r.errors:,}", f"{r.rate:,.0f}", f"{r.rate / base1:.0%}",
                      f"{r.rate / base2:.0%}")
    Console().print(table)
    if health is not None:
        Console().print(f"POST /v1/health ({'PostgreSQL' if schema else 'SQLite'}, ringfence serve): "
                        f"{health.requests:,} reports, {health.errors:,} errors, {health.rate:,.0f} reports/s")
    Console().print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                    f"load average {os.getloadavg()[0]:.1f}")
    summary: dict[str, Any] = {k: {"requests": v.requests, "errors": v.errors, "rate": round(v.rate)}
                               for k, v in results.items()}
    if health is not None:
        summary["health"] = {"requests": health.requests, "errors": health.errors, "rate": round(health.rate)}
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
