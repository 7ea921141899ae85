"""Several servers on one PostgreSQL elect one reconciler; kill -9 the leader and another takes over.

Three ``ringfence serve --role all`` processes compete for the reconciler's advisory lock
(:mod:`ringfence.adapters.db.leader`); a fourth with ``--role api`` takes the CLI and the agents'
heartbeats and never leads.  A rollout runs while the test kills the leader with SIGKILL again and
again (restarting it, as a supervisor would, as a standby).  Each time a new leader must hold the
lock within 15 s of the kill; at the end the rollout has completed with every decision once and in
order (one promotion, contiguous sequence numbers) and the audit chain is intact.

SQLite serves one process only, so these tests need PostgreSQL (CI sets RINGFENCE_TEST_DATABASE_URL).
``make test`` runs a lean version (:func:`test_two_servers_leader_killed_the_other_finishes_the_rollout`: two
servers started side by side, the setup written straight into the database, one kill); the ``extended`` ones
run the four-server setup through the CLI and kill once and 20 times.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database, normalise_url
from ringfence.adapters.db.leader import RECONCILER_LOCK
from ringfence.domain.access import Role
from ringfence.domain.model import Host, HostId, Inventory, OsFamily, TenantId
from ringfence.services import rollouts
from ringfence.services.audit import use_audit_key, verify
from ringfence.services.context import Actor, system_clock
from ringfence.services.health import issue_credential
from ringfence.services.inventory import import_inventory
from ringfence.services.tokens import create_token
from tests.conftest import PG_ENV, _reset_pg
from tests.servers import Server
from tests.test_rollout_e2e import Agents

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.environ.get(PG_ENV), reason="several servers need PostgreSQL; SQLite is one "
                                                                     "process (set RINGFENCE_TEST_DATABASE_URL)")]

PLAN = """
name: failover
windows:
  - {days: mon-sun, start: "00:00", end: "24:00"}
freeze: {public_holidays: false}
max_data_age_minutes: 1
silence_grace_minutes: 1
min_per_stratum: 1
gate: {min_treated_hosts: 2, min_control_hosts: 2, max_streams: 16, baseline_rate: 1000.0, tolerance: 5.0}
waves:
  - {name: canary, fraction: 0.5, min_bake_minutes: 0.05, min_observed_hosts: 2, max_rate_per_minute: %d}
  - {name: rest, fraction: 1.0, min_bake_minutes: 0.05, min_observed_hosts: 2}
"""
HOSTS = 40
TAKEOVER_LIMIT = 15.0


class Standby(Server):
    """A server on a database that already has its admin token (so its first start creates none)."""

    def start(self) -> None:
        self.starts = max(self.starts, 1)
        super().start()


def _leader_pid(db: Database) -> int | None:
    """The OS pid of the server holding this schema's reconciler lock (from its session's application_name)."""
    with db.engine.connect() as conn:
        name = conn.execute(text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :k AND l.objsubid = 2 "
            "AND l.objid::bigint = (hashtext(current_schema())::bigint & 4294967295)"), {"k": RECONCILER_LOCK},
        ).scalar_one_or_none()
    return int(name.rsplit("-", 1)[1]) if name else None


def _wait_http(api: Server, rid: str, timeout: float = 180) -> dict[str, Any]:
    """Poll the rollout over HTTP until it ends (a CLI process per poll is slow)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=api.url, timeout=10,
                      headers={"Authorization": f"Bearer {api.env['RINGFENCE_TOKEN']}"}) as client:
        while True:
            status: dict[str, Any] = client.get(f"/v1/rollouts/{rid}").json()
            if status["state"] in ("completed", "halted", "rolling_back", "rolled_back") or time.monotonic() > deadline:
                return status
            time.sleep(0.3)


def _run(tmp_path: Path, db_url: str, kills: int, rate_per_minute: int) -> None:
    for d in ("api", "all-0", "all-1", "all-2"):
        (tmp_path / d).mkdir()
    shared = {"RINGFENCE_DATA_DIR": str(tmp_path / "var"), "RINGFENCE_RECONCILE_INTERVAL_SECONDS": "0.25"}
    api = Server(tmp_path / "api", db_url, RINGFENCE_ROLE="api", **shared)
    token = api.env["RINGFENCE_TOKEN"]
    servers: list[Standby] = []
    starting = [threading.Thread(target=lambda i=i: servers.append(  # type: ignore[misc]
        Standby(tmp_path / f"all-{i}", db_url, RINGFENCE_ROLE="all", **shared))) for i in range(3)]
    for t in starting:  # the three start while the api server takes the setup
        t.start()
    db = Database(db_url)
    try:
        hosts = [{"id": f"fo-{i:03d}", "hostname": f"ws-{i:03d}", "tenant": "acme", "os_family": "windows",
                  "os_build": ("22631", "26100")[i % 2], "timezone": "Europe/Berlin", "country": "DE"}
                 for i in range(HOSTS)]
        (tmp_path / "hosts.json").write_text(json.dumps({"hosts": hosts}))
        api.cli("inventory", "import", str(tmp_path / "hosts.json"))
        with httpx.Client(base_url=api.url, timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
            credentials = {h["id"]: client.post(f"/v1/hosts/{h['id']}/credentials").json()["credential"]
                           for h in hosts}
        (tmp_path / "C-00000291.sys").write_bytes(b"channel file 291")
        api.cli("release", "create", "--product", "falcon-content", "--version", "291", "--kind", "content",
                "--platform", "windows", "--file", str(tmp_path / "C-00000291.sys"))
        (tmp_path / "plan.yaml").write_text(PLAN % rate_per_minute)
        api.cli("plan", "apply", "-f", str(tmp_path / "plan.yaml"))
        for t in starting:
            t.join()
        assert len(servers) == 3
        takeovers: list[float] = []
        with Agents(api.url, credentials, token), httpx.Client(
                base_url=api.url, timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
            time.sleep(1.5)  # every host has reported once
            started = client.post("/v1/rollouts", json={"release": "falcon-content@291", "plan": "failover",
                                                        "start": True, "reason": "failover test"})
            assert started.status_code == 201, started.text
            rid = started.json()["id"]

            def leader_since(since: float) -> int:
                """The pid of the live server that holds the lock (a killed one's session may linger a moment)."""
                while (pid := _leader_pid(db)) not in {s.proc.pid for s in servers
                                                       if s.proc is not None and s.proc.poll() is None}:
                    assert time.monotonic() - since <= TAKEOVER_LIMIT, f"no leader {takeovers=}"
                    time.sleep(0.05)
                assert pid is not None
                return pid

            pid = leader_since(time.monotonic())
            for k in range(kills):
                victim = next(s for s in servers if s.proc is not None and s.proc.pid == pid and s.proc.poll() is None)
                time.sleep(1.0)  # let the leader tick (and perhaps promote) before it dies
                victim.kill()
                killed_at = time.monotonic()
                pid = leader_since(killed_at)
                takeovers.append(time.monotonic() - killed_at)
                if k + 1 < kills:
                    victim.start()  # back as a standby, as a supervisor would restart it
            final = _wait_http(api, rid)
            assert final["state"] == "completed", final["message"]
            assert final["exposed"] == HOSTS
            assert len(takeovers) == kills and max(takeovers) <= TAKEOVER_LIMIT, takeovers
            print(f"takeover after each kill, s: {[round(t, 2) for t in takeovers]}")
            log = client.get(f"/v1/rollouts/{rid}/decisions").json()["decisions"]
        seqs = [d["seq"] for d in log]
        assert seqs == list(range(1, len(seqs) + 1))
        assert [d["at"] for d in log] == sorted(d["at"] for d in log)
        assert len([d for d in log if d["message"].startswith("promoted")]) == 1
        assert sum(1 for d in log if d["state"] == "completed") == 1
        assert "intact" in api.cli("audit", "verify").stdout
        with db.engine.connect() as conn:  # every host exposed exactly once
            exposed = conn.execute(text("SELECT count(*), count(DISTINCT host_id) FROM rollout_hosts "
                                        "WHERE rollout_id = :r AND exposed_at IS NOT NULL"), {"r": rid}).one()
        assert tuple(exposed) == (HOSTS, HOSTS)
    finally:
        db.dispose()
        for s in (*servers, api):
            s.stop()


@pytest.fixture
def pg_db_url(pg_url: str) -> str:
    """The session's PostgreSQL schema, emptied."""
    db = Database(pg_url)
    _reset_pg(db)
    db.dispose()
    return pg_url


@pytest.mark.extended  # four server processes, ~1-2 min: in `make test-slow`
def test_leader_killed_another_takes_over(tmp_path: Path, pg_db_url: str) -> None:
    """A SIGKILL of the leader mid-rollout: a new leader within 15 s, every decision once."""
    _run(tmp_path, pg_db_url, kills=1, rate_per_minute=120)


@pytest.mark.extended
def test_leader_killed_twenty_times(tmp_path: Path, pg_db_url: str) -> None:
    """20 SIGKILLs of the leader over a slower rollout: 0 double promotions, takeover ≤ 15 s every time."""
    _run(tmp_path, pg_db_url, kills=20, rate_per_minute=15)


def test_workers_elect_one_leader_and_die_with_their_parent(tmp_path: Path, pg_db_url: str) -> None:
    """``serve --workers 2``: one worker leads; kill -9 of ``ringfence serve`` ends both workers and frees the lock."""
    (tmp_path / "w").mkdir()
    server = Server(tmp_path / "w", pg_db_url, RINGFENCE_WORKERS="2", RINGFENCE_DATA_DIR=str(tmp_path / "var"))
    db = Database(pg_db_url)
    try:
        assert server.proc is not None
        children = {int(p) for p in Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()}
        assert len(children) == 2
        deadline = time.monotonic() + TAKEOVER_LIMIT
        while (leader := _leader_pid(db)) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert leader in children
        server.kill()
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{c}").exists() and "zombie" not in _state(c) for c in children) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [c for c in children if Path(f"/proc/{c}").exists() and "zombie" not in _state(c)]
        deadline = time.monotonic() + 10
        while _leader_pid(db) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _leader_pid(db) is None
    finally:
        db.dispose()
        server.stop()


AUDIT_KEY = "f" * 64
HOST_TOKEN_KEY = "k" * 32
PAIR_HOSTS = 10


@dataclass
class Pair:
    """Two ``serve --role all`` servers on a schema of their own, with a fleet, a release and a plan."""

    db: Database
    servers: list[Standby]
    token: str
    credentials: dict[str, str]
    spare: tuple[str, str]  # a host no rollout targets (linux), and its credential

    def leader(self) -> Standby:
        live = {s.proc.pid: s for s in self.servers if s.proc is not None and s.proc.poll() is None}
        deadline = time.monotonic() + TAKEOVER_LIMIT
        while (pid := _leader_pid(self.db)) not in live:
            assert time.monotonic() < deadline, "no server took the reconciler lock within 15 s"
            time.sleep(0.05)
        assert pid is not None
        return live[pid]


def _setup_in_db(db: Database, data_dir: Path) -> tuple[str, dict[str, str], tuple[str, str]]:
    """The fleet, credentials, release and plan written through the services (no CLI process per step);
    return an operator token, each host's credential and a spare host with its credential."""
    admin = Actor(name="failover-test", role=Role.ADMIN, source="local")
    use_audit_key(db, AUDIT_KEY.encode(), clock=system_clock)  # the key the servers use: one keyed chain
    fleet = tuple(Host(id=HostId(f"fo-{i:03d}"), hostname=f"ws-{i:03d}", tenant=TenantId("acme"),
                       os_family=OsFamily.WINDOWS, os_build=("22631", "26100")[i % 2], timezone="Europe/Berlin",
                       country="DE") for i in range(PAIR_HOSTS))
    spare = Host(id=HostId("spare-1"), hostname="spare-1", tenant=TenantId("acme"), os_family=OsFamily.LINUX)
    import_inventory(db, Inventory(hosts=(*fleet, spare)), actor=admin, clock=system_clock)
    credentials = {h.id: issue_credential(db, h.id, actor=admin, clock=system_clock) for h in fleet}
    spare_cred = issue_credential(db, spare.id, actor=admin, clock=system_clock)
    rollouts.create_release(db, ArtifactStore(data_dir / "artifacts"), product="falcon-content", version="291",
                            kind="content", platforms=["windows"], files=[("C-00000291.sys", b"channel file 291")],
                            actor=admin, clock=system_clock)
    rollouts.apply_plan(db, PLAN % 120, actor=admin, clock=system_clock)
    token, _ = create_token(db, name="admin", role="admin", actor=admin, clock=system_clock)
    return token, credentials, (spare.id, spare_cred)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Two servers started side by side (an admin token exists, so neither creates one), shared by the
    ``make test`` checks of this module; on a schema of their own, so other tests' resets do not touch them."""
    base = normalise_url(os.environ[PG_ENV])
    schema = f"rf_pair_{os.getpid()}_{secrets.token_hex(3)}"
    owner = create_engine(base)
    with owner.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    tmp = tmp_path_factory.mktemp("pair")
    db = Database(url)
    servers: list[Standby] = []
    try:
        db.upgrade()
        token, credentials, spare = _setup_in_db(db, tmp / "var")
        env = {"RINGFENCE_DATA_DIR": str(tmp / "var"), "RINGFENCE_RECONCILE_INTERVAL_SECONDS": "0.25",
               "RINGFENCE_AUDIT_KEY": AUDIT_KEY, "RINGFENCE_HOST_TOKEN_KEY": HOST_TOKEN_KEY, "RINGFENCE_ROLE": "all"}
        for d in ("s-0", "s-1"):
            (tmp / d).mkdir()
        starting = [threading.Thread(target=lambda d=d: servers.append(  # type: ignore[misc]
            Standby(tmp / d, url, **env))) for d in ("s-0", "s-1")]
        for t in starting:
            t.start()
        for t in starting:
            t.join()
        assert len(servers) == 2, "a server did not start (see its log under the test's temporary directory)"
        for s in servers:
            s.env["RINGFENCE_TOKEN"] = token
        yield Pair(db, servers, token, credentials, spare)
    finally:
        for s in servers:
            s.stop()
        db.dispose()
        with owner.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        owner.dispose()


def test_a_revocation_reaches_both_servers_within_5_s(pair: Pair) -> None:
    """A host token issued by one server is accepted by both without the database; the credential revoked
    through one server, both refuse the token within 5 s (the long version: tests/test_host_tokens.py)."""
    host, cred = pair.spare
    a, b = pair.servers
    operator = {"Authorization": f"Bearer {pair.token}"}
    with httpx.Client(base_url=a.url, timeout=10) as ca, httpx.Client(base_url=b.url, timeout=10) as cb:
        issued = ca.post("/v1/agent/token", headers={"Authorization": f"Bearer {cred}"})
        assert issued.status_code == 200, issued.text
        token = issued.json()["token"]

        def beat(c: httpx.Client) -> int:
            return c.post("/v1/health", json={"host_id": host, "at": datetime.now(UTC).isoformat()},
                          headers={"Authorization": f"Bearer {token}"}).status_code

        assert (beat(ca), beat(cb)) == (202, 202)
        assert cb.post(f"/v1/hosts/{host}/credentials/revoke", headers=operator).status_code == 200
        revoked_at = time.monotonic()
        took: dict[str, float] = {}
        while len(took) < 2 and time.monotonic() - revoked_at < 10:
            for name, c in (("a", ca), ("b", cb)):
                if name not in took and beat(c) == 401:
                    took[name] = time.monotonic() - revoked_at
            time.sleep(0.05)
    print(f"seconds until each server refused the revoked host's token: {took}")
    assert len(took) == 2 and max(took.values()) < 5, f"seconds until each server refused the token: {took}"


def test_two_servers_leader_killed_the_other_finishes_the_rollout(pair: Pair) -> None:
    """The ``make test`` failover check: a rollout, SIGKILL of the leader mid-rollout: the other server holds
    the lock within 15 s and finishes the rollout with one promotion and every decision once (restarting the
    killed server as a standby, and 20 kills, are the ``extended`` tests' part)."""
    leader = pair.leader()
    standby = next(s for s in pair.servers if s is not leader)
    assert standby.proc is not None
    with Agents(standby.url, pair.credentials, pair.token), httpx.Client(
            base_url=standby.url, timeout=10, headers={"Authorization": f"Bearer {pair.token}"}) as client:
        time.sleep(1.5)  # every host has reported once
        started = client.post("/v1/rollouts", json={"release": "falcon-content@291", "plan": "failover",
                                                    "start": True, "reason": "failover test"})
        assert started.status_code == 201, started.text
        rid = started.json()["id"]
        time.sleep(1.0)  # let the leader tick (and perhaps expose the canary) before it dies
        leader.kill()
        killed_at = time.monotonic()
        while _leader_pid(pair.db) != standby.proc.pid:
            assert time.monotonic() - killed_at <= TAKEOVER_LIMIT, "the standby did not take over within 15 s"
            time.sleep(0.05)
        took = time.monotonic() - killed_at
        final = _wait_http(standby, rid, timeout=120)
        assert final["state"] == "completed", final["message"]
        assert final["exposed"] == PAIR_HOSTS
        log = client.get(f"/v1/rollouts/{rid}/decisions").json()["decisions"]
    print(f"takeover after the kill: {took:.2f} s")
    seqs = [d["seq"] for d in log]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [d["at"] for d in log] == sorted(d["at"] for d in log)
    assert len([d for d in log if d["message"].startswith("promoted")]) == 1
    assert sum(1 for d in log if d["state"] == "completed") == 1
    with pair.db.engine.connect() as conn:  # every host exposed exactly once
        exposed = conn.execute(text("SELECT count(*), count(DISTINCT host_id) FROM rollout_hosts "
                                    "WHERE rollout_id = :r AND exposed_at IS NOT NULL"), {"r": rid}).one()
    assert tuple(exposed) == (PAIR_HOSTS, PAIR_HOSTS)
    assert verify(pair.db).ok


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].splitlines()[0].lower()
    except (OSError, IndexError):
        return "zombie"
