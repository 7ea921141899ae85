"""The Microsoft Graph key source against a real HTTP server on 127.0.0.1 that speaks Graph's documented shapes
(``informationProtection/bitlocker/recoveryKeys``), through the real services and database (SQLite and
PostgreSQL): by the escrow record's key id, by the host's Entra device id, refusals never reach Graph, and every
reveal and refusal is audited."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.adapters.graph_keys import GraphKeySource
from ringfence.domain.model import DiskEncryption, Host, HostId, Inventory, OsFamily, TenantId
from ringfence.errors import PermissionDeniedError, UnavailableError
from ringfence.services import assessment, inventory
from ringfence.services import recovery as svc
from tests.conftest import FakeClock
from tests.rollout_harness import OPERATOR
from tests.test_recovery_campaigns import OTHER, RUNBOOKS, TECH

TOKEN = "graph-test-token"
KEY_A = "111111-222222-333333-444444-555555-666666-777777-888888"
KEY_B = "999999-888888-777777-666666-555555-444444-333333-222222"
KEYS = {  # Graph's bitlockerRecoveryKey objects
    "b465e4e8-e4e8-b465-e8e4-65b4e8e465b4": {"deviceId": "dev-a", "volumeType": "1", "key": KEY_A,
                                             "createdDateTime": "2024-07-01T10:00:00Z"},
    "6a7f1b2c-0000-4000-8000-000000000001": {"deviceId": "dev-b", "volumeType": "1", "key": "000000-" * 7 + "000001",
                                             "createdDateTime": "2023-01-01T10:00:00Z"},
    "6a7f1b2c-0000-4000-8000-000000000002": {"deviceId": "dev-b", "volumeType": "1", "key": KEY_B,
                                             "createdDateTime": "2024-06-01T10:00:00Z"},
    "6a7f1b2c-0000-4000-8000-000000000003": {"deviceId": "dev-b", "volumeType": "2", "key": "000000-" * 7 + "000002",
                                             "createdDateTime": "2024-07-10T10:00:00Z"},
}


class Graph:
    """A loopback HTTP server with Graph's list and get routes for BitLocker recovery keys."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                seen.append((url.path, query, {k.lower(): v for k, v in self.headers.items()}))
                if self.headers.get("authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"error": {"code": "InvalidAuthenticationToken", "message": "no"}})
                base = "/v1.0/informationProtection/bitlocker/recoveryKeys"
                if url.path == base:
                    device = query.get("$filter", [""])[0].removeprefix("deviceId eq '").removesuffix("'")
                    value = [{"id": k, **{f: v[f] for f in ("deviceId", "volumeType", "createdDateTime")}}
                             for k, v in KEYS.items() if v["deviceId"] == device]
                    return self._send(200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#"
                                            "informationProtection/bitlocker/recoveryKeys", "value": value})
                kid = url.path.removeprefix(base + "/")
                if kid not in KEYS:
                    return self._send(404, {"error": {"code": "NotFound", "message": "no such key"}})
                obj = {"id": kid, **{f: KEYS[kid][f] for f in ("deviceId", "volumeType", "createdDateTime")}}
                if query.get("$select") == ["key"]:
                    obj["key"] = KEYS[kid]["key"]
                return self._send(200, obj)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1.0"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def graph() -> Iterator[Graph]:
    g = Graph()
    yield g
    g.close()


def _hosts() -> list[Host]:
    return [Host(id=HostId(h), hostname=h.upper(), tenant=TenantId("acme"), os_family=OsFamily.WINDOWS, site="fra-1",
                 encryption=DiskEncryption.BITLOCKER, recovery_key_escrowed=True, recovery_key_verified=True,
                 labels={"entra_device_id": dev} if dev else {})
            for h, dev in (("pc-a", ""), ("pc-b", "dev-b"), ("pc-c", "dev-none"))]


def test_keys_come_from_graph_only_for_the_assigned_technician(db: Database, clock: FakeClock, graph: Graph) -> None:
    inventory.import_inventory(db, Inventory(hosts=tuple(_hosts())), actor=OPERATOR, clock=clock)
    assessment.import_escrow(db, [("escrow.csv", b"host_id,key_id,location,verified\n"
                                                 b"pc-a,{b465e4e8-e4e8-b465-e8e4-65b4e8e465b4},entra-id,true\n")],
                             actor=OPERATOR, clock=clock)
    cid = svc.create_campaign(db, actor=OPERATOR, clock=clock, name="graph", runbooks=RUNBOOKS,
                              hosts=["pc-a", "pc-b", "pc-c"])["id"]
    svc.assign(db, cid, ["pc-a", "pc-b", "pc-c"], "tina", actor=OPERATOR, clock=clock)
    vault = svc.KeyVault(Fernet.generate_key().decode())  # nothing imported: every key comes from Graph
    source = GraphKeySource(graph.url, TOKEN)
    try:
        with pytest.raises(PermissionDeniedError, match="not in a work order assigned to you"):
            svc.reveal_key(db, cid, "pc-a", vault, actor=OTHER, clock=clock, source=source)
        assert graph.requests == []  # a refusal never asks Graph
        # By the escrow record's key id (the BitLocker protector id is Graph's object id).
        got = svc.reveal_key(db, cid, "pc-a", vault, actor=TECH, clock=clock, source=source)
        assert got == {"host_id": "pc-a", "key_id": "b465e4e8-e4e8-b465-e8e4-65b4e8e465b4", "recovery_key": KEY_A}
        path, query, headers = graph.requests[-1]
        assert path.endswith("/recoveryKeys/b465e4e8-e4e8-b465-e8e4-65b4e8e465b4") and query == {"$select": ["key"]}
        assert headers["authorization"] == f"Bearer {TOKEN}" and headers["user-agent"].startswith("ringfence/")
        assert headers["ocp-client-name"] == "ringfence recovery"
        # By the Entra device id: the newest operating-system-volume key of the device.
        got = svc.reveal_key(db, cid, "pc-b", vault, actor=TECH, clock=clock, source=source)
        assert got["recovery_key"] == KEY_B and got["key_id"] == "6a7f1b2c-0000-4000-8000-000000000002"
        assert graph.requests[-2][1] == {"$filter": ["deviceId eq 'dev-b'"]}
        # Entra ID holds nothing for the device: refused, audited, no key.
        with pytest.raises(PermissionDeniedError, match="graph holds no recovery key"):
            svc.reveal_key(db, cid, "pc-c", vault, actor=TECH, clock=clock, source=source)
    finally:
        source.close()
    with db.transaction() as conn:
        shown = audit_store.list_entries(conn, limit=100, action="recovery.key.reveal")
        refused = audit_store.list_entries(conn, limit=100, action="recovery.key.refused")
    assert sorted(e.target.rsplit("/", 1)[1] for e in shown) == ["pc-a", "pc-b"]
    assert sorted(e.target.rsplit("/", 1)[1] for e in refused) == ["pc-a", "pc-c"]
    assert all(e.details.get("key_source") == "graph" for e in shown)
    assert all(KEY_A not in json.dumps(e.details) and KEY_B not in json.dumps(e.details) for e in (*shown, *refused))


def test_graph_misconfigured_or_refusing_says_what_to_fix(graph: Graph) -> None:
    with pytest.raises(UnavailableError, match="RINGFENCE_GRAPH_TOKEN"):
        GraphKeySource(graph.url, "")
    with pytest.raises(UnavailableError, match="RINGFENCE_GRAPH_URL"):
        GraphKeySource("graph.microsoft.com", TOKEN)
    wrong = GraphKeySource(graph.url, "not-the-token")
    try:
        with pytest.raises(UnavailableError, match=r"BitlockerKey\.Read\.All"):
            wrong.fetch(host_id="pc-a", key_id="b465e4e8-e4e8-b465-e8e4-65b4e8e465b4", device_id="")
    finally:
        wrong.close()
