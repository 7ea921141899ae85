"""Agent enrolment over the API: one-time tokens, host credentials, facts, revocation effective at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ringfence.adapters.api.app import create_app
from ringfence.adapters.db.engine import Database
from ringfence.config import Settings
from tests.api_support import Api, _problem
from tests.conftest import FakeClock

HOST = {"id": "4c4c4544-0042-3510-8052-b4c04f4e3332", "hostname": "ws-001", "os_family": "windows",
        "os_name": "Windows 11 Enterprise", "os_build": "22631", "arch": "x86_64", "timezone": "Europe/Berlin",
        "country": "DE", "agents": [{"vendor": "CrowdStrike", "product": "falcon-sensor", "version": "7.16",
                                     "kernel_mode": True, "boot_start": True}]}


def _token(api: Api, **body: Any) -> dict[str, Any]:
    r = api.call("POST", "/v1/enrolment-tokens", role="operator", json={"tenant": "acme", **body})
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


def _enrol(api: Api, token: str, host: dict[str, Any] | None = None) -> Any:
    return api.client.post("/v1/enrol", json={"host": host or HOST}, headers={"Authorization": f"Bearer {token}"})


def _report(client: TestClient, credential: str, host_id: str = HOST["id"]) -> Any:
    return client.post("/v1/health", json={"host_id": host_id, "at": "2026-11-24T09:00:00Z",
                                           "versions": {"falcon-sensor": "7.16"}},
                       headers={"Authorization": f"Bearer {credential}"})


def test_enrolment_token_is_single_use_and_makes_a_host_with_its_facts(api: Api) -> None:
    created = _token(api, reason="laptop refresh")
    assert created["token"].startswith("rfe_") and created["uses_left"] == 1 and created["tenant"] == "acme"
    r = _enrol(api, created["token"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["host_id"] == HOST["id"] and body["credential"].startswith("rfh_") and body["server_time"]
    host = api.call("GET", f"/v1/hosts/{HOST['id']}", role="viewer").json()
    assert host["tenant"] == "acme" and host["os_build"] == "22631" and host["agents"][0]["kernel_mode"] is True
    assert _report(api.client, body["credential"]).status_code == 202
    again = _enrol(api, created["token"], {**HOST, "id": "another-host"})
    assert "used up" in _problem(again, 403)["detail"]
    assert api.call("GET", "/v1/hosts/another-host", role="viewer").status_code == 404
    listed = api.call("GET", "/v1/enrolment-tokens", role="operator").json()["tokens"]
    assert listed[0]["uses_left"] == 0 and "token" not in listed[0] and "token_hash" not in listed[0]
    audit = api.call("GET", "/v1/audit", role="admin", params={"action": "host.enrol"}).json()["entries"]
    assert audit and audit[0]["target"] == f"host/{HOST['id']}"
    assert created["token"] not in str(api.call("GET", "/v1/audit", role="admin").json())


def test_expired_revoked_and_unknown_tokens_are_refused(api: Api, clock: FakeClock) -> None:
    short = _token(api, expires="30m")
    clock.advance(minutes=31)
    assert "expired" in _problem(_enrol(api, short["token"]), 403)["detail"]
    revoked = _token(api, uses=5)
    assert api.call("POST", f"/v1/enrolment-tokens/{revoked['id']}/revoke", role="operator").status_code == 200
    assert "revoked" in _problem(_enrol(api, revoked["token"]), 403)["detail"]
    assert "unknown" in _problem(_enrol(api, "rfe_" + "x" * 43), 401)["detail"]
    assert _problem(_enrol(api, "rf_operator-token"), 401)["detail"].startswith("enrolment needs")
    assert _problem(api.client.post("/v1/enrol", json={"host": HOST}), 401)


def test_bad_facts_are_rejected_without_using_the_token(api: Api) -> None:
    created = _token(api)
    bad = _problem(_enrol(api, created["token"], {"id": "x", "os_family": "amiga", "colour": "red"}), 422)
    fields = {e["field"] for e in bad["errors"]}
    assert {"os_family", "hostname", "colour"} <= fields
    assert _enrol(api, created["token"]).status_code == 201  # the token was not used up by the bad attempt


def test_token_creation_checks_its_fields_and_roles(api: Api) -> None:
    assert api.call("POST", "/v1/enrolment-tokens", role="viewer", json={"tenant": "acme"}).status_code == 403
    bad = _problem(api.call("POST", "/v1/enrolment-tokens", role="operator",
                            json={"tenant": "acme", "expires": "forever"}), 422)
    assert bad["errors"][0]["field"] == "expires"
    bad = _problem(api.call("POST", "/v1/enrolment-tokens", role="operator",
                            json={"tenant": "bad tenant!", "uses": 0}), 422)
    assert {e["field"] for e in bad["errors"]} >= {"uses"}


def test_re_enrolment_replaces_the_old_credential_and_facts_keep_operator_fields(api: Api) -> None:
    first = _enrol(api, _token(api)["token"]).json()["credential"]
    second = _enrol(api, first).json()["credential"]  # re-enrolled with its current credential
    assert _report(api.client, first).status_code == 401
    assert _report(api.client, second).status_code == 202
    r = api.client.post("/v1/agent/facts", json={"host": {**HOST, "os_build": "26100", "tier": 0}},
                        headers={"Authorization": f"Bearer {second}"})
    assert r.status_code == 200, r.text
    host = api.call("GET", f"/v1/hosts/{HOST['id']}", role="viewer").json()
    assert host["os_build"] == "26100" and host["tier"] == 3 and host["tenant"] == "acme"  # tier is the operator's
    other = api.client.post("/v1/agent/facts", json={"host": {**HOST, "id": "someone-else"}},
                            headers={"Authorization": f"Bearer {second}"})
    assert _problem(other, 403)


@pytest.fixture
def second_server(db: Database, db_url: str, clock: FakeClock, tmp_path: Path) -> Iterator[TestClient]:
    """Another server process on the same database (its own app, ingest and caches)."""
    other = Database(db_url)
    app = create_app(Settings(database_url=db_url, data_dir=tmp_path / "b", reconcile_interval_seconds=0),
                     db=other, clock=clock)
    with TestClient(app) as client:
        yield client
    other.dispose()


def test_revoked_credential_is_refused_at_once_by_every_server(api: Api, second_server: TestClient) -> None:
    credential = _enrol(api, _token(api)["token"]).json()["credential"]
    assert _report(api.client, credential).status_code == 202
    assert _report(second_server, credential).status_code == 202  # server B has seen (and could cache) it
    r = api.call("POST", f"/v1/hosts/{HOST['id']}/credentials/revoke", role="operator", json={"reason": "stolen"})
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert "revoked" in _problem(_report(second_server, credential), 401)["detail"]
    assert _problem(_report(api.client, credential), 401)
    facts = second_server.post("/v1/agent/facts", json={"host": HOST}, headers={"Authorization": f"Bearer {credential}"})
    assert _problem(facts, 401)
    assert _problem(api.call("POST", f"/v1/hosts/{HOST['id']}/credentials/revoke", role="operator"), 404)
    assert api.call("POST", f"/v1/hosts/{HOST['id']}/credentials/revoke", role="viewer").status_code == 403


def test_an_enrolled_host_cannot_be_taken_over_with_a_tenant_enrolment_token(api: Api) -> None:
    shared = _token(api, uses=50)["token"]
    real = _enrol(api, shared).json()["credential"]
    attack = _problem(_enrol(api, shared, {**HOST, "hostname": "evil", "os_build": "1"}), 409)
    assert "current credential" in attack["detail"] and "reenrol-token" in attack["detail"]
    assert _report(api.client, real).status_code == 202  # the real host keeps its credential
    host = api.call("GET", f"/v1/hosts/{HOST['id']}", role="viewer").json()
    assert host["hostname"] == "ws-001" and host["os_build"] == "22631"  # and its facts
    listed = api.call("GET", "/v1/enrolment-tokens", role="operator").json()["tokens"]
    assert listed[0]["uses_left"] == 49  # the refused attempt did not use the token
    # someone else's credential cannot re-enrol this host either
    other = _enrol(api, shared, {**HOST, "id": "another-host"}).json()["credential"]
    assert _problem(_enrol(api, other, HOST), 403)
    assert _report(api.client, real).status_code == 202


def test_an_operator_issued_re_enrolment_token_re_enrols_only_its_host(api: Api) -> None:
    real = _enrol(api, _token(api)["token"]).json()["credential"]
    assert api.call("POST", f"/v1/hosts/{HOST['id']}/reenrolment-token", role="viewer").status_code == 403
    assert _problem(api.call("POST", "/v1/hosts/nobody/reenrolment-token", role="operator"), 404)
    r = api.call("POST", f"/v1/hosts/{HOST['id']}/reenrolment-token", role="operator",
                 json={"expires": "1h", "reason": "disk reimaged"})
    assert r.status_code == 201, r.text
    bound = r.json()
    assert bound["host_id"] == HOST["id"] and bound["uses"] == 1 and bound["tenant"] == "acme"
    assert _problem(_enrol(api, bound["token"], {**HOST, "id": "another-host"}), 403)
    fresh = _enrol(api, bound["token"], {**HOST, "os_build": "26100"})
    assert fresh.status_code == 201, fresh.text
    assert _report(api.client, real).status_code == 401
    assert _report(api.client, fresh.json()["credential"]).status_code == 202
    assert "used up" in _problem(_enrol(api, bound["token"]), 403)["detail"]


def test_a_host_whose_credential_was_revoked_enrols_again_with_a_tenant_token(api: Api) -> None:
    shared = _token(api, uses=2)["token"]
    assert _enrol(api, shared).status_code == 201
    assert api.call("POST", f"/v1/hosts/{HOST['id']}/credentials/revoke", role="operator").status_code == 200
    again = _enrol(api, shared)
    assert again.status_code == 201, again.text
    assert _report(api.client, again.json()["credential"]).status_code == 202


def _enrol_proposing(api: Api, token: str, credential: str) -> Any:
    return api.client.post("/v1/enrol", json={"host": HOST, "credential": credential},
                           headers={"Authorization": f"Bearer {token}"})


def test_an_agent_whose_enrolment_answer_was_lost_asks_again_and_gets_the_same_enrolment(api: Api) -> None:
    """The agent makes its credential before the first try; the retry after a lost 201 is recognised by it:
    the same enrolment, the single-use token not used again, no 409; anyone else with the token still gets 409."""
    token = _token(api, uses=1)["token"]
    mine = "rfh_" + "A" * 43
    first = _enrol_proposing(api, token, mine)
    assert first.status_code == 201, first.text
    assert first.json()["credential"] == mine
    again = _enrol_proposing(api, token, mine)  # the token is used up: only the same credential gets through
    assert again.status_code == 201, again.text
    assert again.json()["credential"] == mine and again.json()["host_id"] == HOST["id"]
    assert _report(api.client, mine).status_code == 202
    other = _token(api, uses=5)["token"]
    assert _enrol_proposing(api, other, "rfh_" + "B" * 43).status_code == 409  # still no takeover
    assert _enrol(api, other).status_code == 409
    assert _problem(_enrol_proposing(api, token, "rfh_" + "C" * 43), 403)  # a spent token for anyone else
    assert _report(api.client, mine).status_code == 202
    tokens = api.call("GET", "/v1/enrolment-tokens", role="operator").json()["tokens"]
    assert [t["uses_left"] for t in tokens if token.startswith(t["prefix"])] == [0]


@pytest.mark.parametrize("credential", ["rfh_short", "rf_" + "A" * 50, "rfh_" + "A" * 42 + "!"])
def test_a_proposed_credential_that_is_not_strong_is_422_and_leaves_the_token_unused(api: Api, credential: str) -> None:
    token = _token(api, uses=1)["token"]
    body = _problem(_enrol_proposing(api, token, credential), 422)
    assert body["errors"][0]["field"].endswith("credential"), body
    assert _enrol(api, token).status_code == 201
