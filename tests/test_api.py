"""The HTTP API through httpx (Starlette's TestClient), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import inventory as store
from tests.api_support import Api, _problem

FIX = Path(__file__).parent / "fixtures" / "inventory"


def test_health_ready_metrics_docs(api: Api, db: Database) -> None:
    """Liveness, readiness (database at head), Prometheus metrics and OpenAPI docs answer."""
    assert api.client.get("/healthz").json()["status"] == "ok"
    ready = api.client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["schema"] == db.head_revision()
    api.call("GET", "/v1/hosts")
    metrics = api.client.get("/metrics").text
    assert 'ringfence_http_requests_total{method="GET",route="/v1/hosts",status="200"}' in metrics
    assert api.client.get("/docs").status_code == 200
    assert "/v1/inventory" in api.client.get("/openapi.json").json()["paths"]


def test_authentication_and_roles(api: Api) -> None:
    """No token → 401; unknown token → 401; too weak a role → 403; all as problem documents."""
    body = _problem(api.call("GET", "/v1/hosts", role=""), 401)
    assert "Bearer" in body["detail"]
    _problem(api.client.get("/v1/hosts", headers={"Authorization": "Bearer rf_nope"}), 401)
    _problem(api.call("POST", "/v1/inventory", role="viewer", content=b"[]",
                      headers={"content-type": "application/json"}), 403)
    _problem(api.call("GET", "/v1/tokens", role="operator"), 403)
    _problem(api.call("GET", "/v1/audit/verify", role="approver"), 403)
    assert api.call("GET", "/v1/whoami", role="viewer").json() == {"name": "viewer-1", "role": "viewer",
                                                                    "source": "127.0.0.9"}


def test_tokens_are_shown_once_stored_hashed_and_revocable(api: Api, db: Database) -> None:
    """A created token works, is never listed, and stops working once revoked."""
    created = api.call("POST", "/v1/tokens", json={"name": "ci-bot", "role": "operator", "reason": "pipeline"})
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("rf_")
    listed = api.call("GET", "/v1/tokens").json()["tokens"]
    assert all("token" not in t for t in listed)
    with db.engine.connect() as conn:
        stored = [r[0] for r in conn.exec_driver_sql("SELECT token_hash FROM api_tokens")]
    assert token not in stored and all(len(h) == 64 for h in stored)
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/v1/whoami", headers=headers).json()["role"] == "operator"
    revoked = api.call("POST", f"/v1/tokens/{created.json()['id']}/revoke", json={"reason": "rotated"})
    assert revoked.json()["active"] is False
    body = _problem(api.client.get("/v1/whoami", headers=headers), 401)
    assert "revoked" in body["detail"]
    _problem(api.call("POST", "/v1/tokens", json={"name": "x", "role": "root"}), 422)
    _problem(api.call("POST", "/v1/tokens/999/revoke", json={}), 404)


def test_import_list_show_and_audit(api: Api) -> None:
    """Multipart import of CSV + YAML, then listing with a selector, paging, one host, services, audit."""
    files = [("files", ("hosts.csv", (FIX / "hosts.csv").read_bytes(), "text/csv")),
             ("files", ("services.yaml", (FIX / "services.yaml").read_bytes(), "application/yaml"))]
    result = api.call("POST", "/v1/inventory", role="operator", files=files, data={"reason": "initial load"})
    assert result.status_code == 200, result.text
    assert result.json()["hosts_inserted"] == 4 and result.json()["services_inserted"] == 2
    page = api.call("GET", "/v1/hosts", role="viewer",
                    params={"where": "os_family=windows and agent.vendor=CrowdStrike"}).json()
    assert page["total"] == 2 and {h["hostname"] for h in page["hosts"]} == {"ams1-ws-000001", "fra2-sql-004"}
    first = api.call("GET", "/v1/hosts", role="viewer", params={"limit": 3}).json()
    assert len(first["hosts"]) == 3 and first["next_after"]
    rest = api.call("GET", "/v1/hosts", role="viewer", params={"limit": 3, "after": first["next_after"]}).json()
    assert len(rest["hosts"]) == 1 and rest["next_after"] is None
    host = api.call("GET", "/v1/hosts/4C4C4544-0031-3510-8052-B4C04F4E3732", role="viewer").json()
    assert host["agents"][0]["boot_start"] is True and host["labels"]["role"] == "workstation"
    services = api.call("GET", "/v1/services", role="viewer").json()["services"]
    assert {s["id"] for s in services} == {"payments", "identity"}
    assert api.call("GET", "/v1/services/payments", role="viewer").json()["depends_on"] == ["identity"]
    assert {t["id"] for t in api.call("GET", "/v1/tenants", role="viewer").json()["tenants"]} == {"acme", "globex"}
    entry = api.call("GET", "/v1/audit", role="viewer", params={"action": "inventory.import"}).json()["entries"][0]
    assert entry["actor"] == "operator-1" and entry["reason"] == "initial load" and entry["source"] == "127.0.0.9"
    assert api.call("GET", "/v1/audit/verify").json()["ok"] is True
    _problem(api.call("GET", "/v1/hosts/nope", role="viewer"), 404)


def test_bad_import_is_422_and_changes_nothing(api: Api, db: Database) -> None:
    """A malformed CSV gets a problem naming row and field, and the database is unchanged."""
    good = [("files", ("hosts.csv", (FIX / "hosts.csv").read_bytes(), "text/csv")),
            ("files", ("services.yaml", (FIX / "services.yaml").read_bytes(), "application/yaml"))]
    assert api.call("POST", "/v1/inventory", role="operator", files=good).status_code == 200
    with db.transaction() as conn:
        before = store.table_counts(conn)
    mixed = [("files", ("more.csv", b"id,hostname,tenant,os_family\nnew-1,n1,acme,linux\n", "text/csv")),
             ("files", ("bad_hosts.csv", (FIX / "bad_hosts.csv").read_bytes(), "text/csv"))]
    body = _problem(api.call("POST", "/v1/inventory", role="operator", files=mixed), 422)
    assert {"field": "tier", "location": "bad_hosts.csv row 4"}.items() <= next(
        e for e in body["errors"] if e["field"] == "tier").items()
    with db.transaction() as conn:
        assert store.table_counts(conn) == before
    audit = api.call("GET", "/v1/audit", role="viewer", params={"action": "inventory.import"}).json()["entries"]
    assert len(audit) == 1


def test_json_body_and_unknown_service_reference(api: Api) -> None:
    """A JSON body imports; a host naming a service nobody defined is rejected with the host and field."""
    doc = {"hosts": [{"id": "h1", "hostname": "a", "tenant": "t", "os_family": "linux", "services": ["ghost"]}]}
    body = _problem(api.call("POST", "/v1/inventory", role="operator", json=doc), 422)
    assert body["errors"][0]["field"] == "services" and body["errors"][0]["location"] == "host h1"
    doc["hosts"][0]["services"] = []
    assert api.call("POST", "/v1/inventory", role="operator", json=doc).json()["hosts_inserted"] == 1
    again = api.call("POST", "/v1/inventory", role="operator", json=doc).json()
    assert again["hosts_inserted"] == 0 and again["hosts_updated"] == 1


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "field"), [
    ("GET", "/v1/hosts", {"params": {"where": "colour=red"}}, 422, "selector"),
    ("GET", "/v1/hosts", {"params": {"limit": "lots"}}, 422, "limit"),
    ("GET", "/v1/hosts", {"params": {"limit": 0}}, 422, "limit"),
    ("POST", "/v1/inventory", {"content": b"hello", "headers": {"content-type": "text/plain"}}, 422, "content-type"),
    ("POST", "/v1/inventory", {"content": b"{", "headers": {"content-type": "application/json"}}, 422, "json"),
    ("POST", "/v1/inventory", {"json": {"hosts": []}}, 422, "files"),
    ("POST", "/v1/tokens", {"json": {"role": "viewer"}}, 422, "name"),
    ("POST", "/v1/tokens", {"content": b"not json", "headers": {"content-type": "application/json"}}, 422, ""),
    ("GET", "/v1/audit", {"params": {"limit": 100000}}, 422, "limit"),
])
def test_bad_requests_are_problems_never_500(api: Api, method: str, path: str, kwargs: dict[str, Any], status: int,
                                             field: str) -> None:
    """Table of bad requests: each is a 4xx problem naming the field."""
    body = _problem(api.call(method, path, **kwargs), status)
    if field:
        assert field in {e["field"] for e in body.get("errors", [])}, body


def test_unknown_route_and_method_are_problems(api: Api) -> None:
    """404 and 405 from routing are problem documents too."""
    _problem(api.client.get("/v1/nothing"), 404)
    _problem(api.client.delete("/healthz"), 405)
