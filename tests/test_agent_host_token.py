"""The agent's reporter exchanges its credential for a host token, renews it, and falls back to the credential.

Against the real app and database (SQLite, and PostgreSQL when set): the agent reports with the token
(no database lookup per report on the server), exchanges again before it expires and when a server refuses
it, and keeps working with a server that issues no tokens.  The agent's side imports no server module.
"""

from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from ringfence.adapters.api.app import create_app
from ringfence.adapters.db.engine import Database
from ringfence.agent.reporter import TOKEN_RETRY_SECONDS, Reporter, ServerUnreachable
from ringfence.agent.state import StateDir
from ringfence.config import Settings
from ringfence.domain.model import Host, HostId, Inventory, OsFamily, TenantId
from ringfence.services.context import Actor, system_clock
from ringfence.services.enrolment import revoke_credential
from ringfence.services.health import issue_credential
from ringfence.services.inventory import import_inventory
from tests.conftest import FakeClock

TTL = 60


class Counting(httpx.BaseTransport):
    """The app's transport, counting requests per path and remembering each request's bearer prefix."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.paths: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")[:4]
        self.paths.append((request.url.path, bearer))
        return self.inner.handle_request(request)

    def count(self, path: str, bearer: str = "") -> int:
        return sum(1 for p, b in self.paths if p == path and (not bearer or b == bearer))


class Monotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _app(db: Database, db_url: str, clock: FakeClock, tmp_path: Path, key: str) -> TestClient:
    settings = Settings(database_url=db_url, data_dir=tmp_path, reconcile_interval_seconds=0, host_token_key=key,
                        host_token_ttl_seconds=TTL)
    return TestClient(create_app(settings, db=db, clock=clock))


@pytest.fixture
def enrolled(db: Database, admin: Actor, clock: FakeClock, tmp_path: Path) -> StateDir:
    host = Host(id=HostId("ag-1"), hostname="ag-1", tenant=TenantId("t"), os_family=OsFamily.LINUX)
    import_inventory(db, Inventory(hosts=(host,)), actor=admin, clock=system_clock)
    state = StateDir(tmp_path / "agent")
    state.write_secret("credential", issue_credential(db, "ag-1", actor=admin, clock=clock))
    clock.advance(seconds=1)  # tokens are issued after the credential (issuing one revokes earlier tokens)
    return state


def _report(reporter: Reporter, clock: FakeClock) -> None:
    reporter.report("ag-1", clock(), {"falcon": "7.1"}, [])


def test_the_agent_reports_with_a_host_token_and_renews_it(db: Database, db_url: str, clock: FakeClock,
                                                          tmp_path: Path, enrolled: StateDir) -> None:
    with _app(db, db_url, clock, tmp_path, "k" * 32) as client:
        wire = Counting(client._transport)
        mono = Monotonic()
        reporter = Reporter("http://testserver", enrolled, transport=wire, monotonic=mono)
        for _ in range(5):
            _report(reporter, clock)
        assert wire.count("/v1/agent/token") == 1  # one exchange (one database lookup), then the token alone
        assert wire.count("/v1/health", "rft_") == 5 and wire.count("/v1/health", "rfh_") == 0
        assert reporter.send_facts({"id": "ag-1", "hostname": "ag-1", "os_family": "linux"})
        assert wire.count("/v1/agent/facts", "rft_") == 1
        mono.t += TTL * 0.7  # less than a third of its life left: exchanged again before it expires
        clock.advance(seconds=TTL * 0.7)
        _report(reporter, clock)
        assert wire.count("/v1/agent/token") == 2
        clock.advance(seconds=TTL + 1)  # the server's clock says expired (the agent's monotonic clock did not move)
        _report(reporter, clock)
        assert wire.count("/v1/agent/token") == 3  # refused (401 expired), exchanged again, sent again
        assert wire.paths[-1] == ("/v1/health", "rft_")
        reporter.close()


def test_a_revoked_credential_stops_the_agent_s_token_at_once(db: Database, db_url: str, clock: FakeClock,
                                                               admin: Actor, tmp_path: Path,
                                                               enrolled: StateDir) -> None:
    with _app(db, db_url, clock, tmp_path, "k" * 32) as client:
        wire = Counting(client._transport)
        reporter = Reporter("http://testserver", enrolled, transport=wire, monotonic=Monotonic())
        _report(reporter, clock)
        clock.advance(seconds=1)
        revoke_credential(db, "ag-1", actor=admin, clock=clock)
        clock.advance(seconds=5)  # the server's copy of the revocations is stale: it reads them again
        with pytest.raises(ServerUnreachable, match="refused this host's credential"):
            _report(reporter, clock)
        assert wire.paths[-2:] == [("/v1/agent/token", "rfh_"), ("/v1/health", "rfh_")]
        reporter.close()


def test_a_server_without_host_tokens_gets_the_credential(db: Database, db_url: str, clock: FakeClock,
                                                           tmp_path: Path, enrolled: StateDir) -> None:
    """No token key and no audit key: 503 on the exchange; the agent sends its credential, as older agents do,
    and asks again only after TOKEN_RETRY_SECONDS."""
    with _app(db, db_url, clock, tmp_path, "") as client:
        wire = Counting(client._transport)
        mono = Monotonic()
        reporter = Reporter("http://testserver", enrolled, transport=wire, monotonic=mono)
        for _ in range(3):
            _report(reporter, clock)
        assert wire.count("/v1/agent/token") == 1 and wire.count("/v1/health", "rfh_") == 3
        mono.t += TOKEN_RETRY_SECONDS + 1
        _report(reporter, clock)
        assert wire.count("/v1/agent/token") == 2
        reporter.close()


def test_an_older_server_without_the_token_route_gets_the_credential(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []

    def old_server(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers["authorization"][7:11]))
        if request.url.path == "/v1/agent/token":
            return httpx.Response(404, json={"detail": "Not Found"})
        return httpx.Response(202, json={"accepted": 0})

    state = StateDir(tmp_path / "agent")
    state.write_secret("credential", "rfh_" + "x" * 40)
    reporter = Reporter("http://old", state, transport=httpx.MockTransport(old_server), monotonic=Monotonic())
    reporter.report("h", datetime.now().astimezone(), {}, [])
    reporter.report("h", datetime.now().astimezone(), {}, [])
    assert seen == [("/v1/agent/token", "rfh_"), ("/v1/health", "rfh_"), ("/v1/health", "rfh_")]
    reporter.close()


def test_the_agent_imports_no_server_module() -> None:
    agent_dir = Path(__file__).resolve().parents[1] / "src" / "ringfence" / "agent"
    server_side = ("ringfence.adapters", "ringfence.services", "ringfence.cli", "ringfence.appcontext",
                   "ringfence.config", "ringfence.demo", "ringfence.sim")
    for path in agent_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                assert not name.startswith(server_side), f"{path.name} imports {name}"
