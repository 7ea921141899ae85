"""Abuse limits: failed credential checks throttled per source and per credential id; health events only for
rollouts that target the host, with believable times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.tables import HostEventRow
from tests.api_support import Api, _problem
from tests.conftest import FakeClock
from tests.test_api_rollouts import PLAN, _setup


def _report(api: Api, credential: str, host: str = "a001", **body: Any) -> Any:
    at = body.pop("at", datetime(2026, 11, 24, 9, 0, tzinfo=UTC).isoformat())
    return api.client.post("/v1/health", json={"host_id": host, "at": at, **body},
                           headers={"Authorization": f"Bearer {credential}"})


def test_bad_credentials_from_one_source_get_429_with_retry_after(api: Api, clock: FakeClock) -> None:
    """100 different bad host credentials in a burst (the attack sent 300): 401 for the first 50, then 429."""
    statuses = [_report(api, f"rfh_{i:08d}guess").status_code for i in range(100)]
    assert statuses[:50] == [401] * 50 and set(statuses[50:]) == {429}
    refused = _report(api, "rfh_another")
    body = _problem(refused, 429)
    assert "failed credential checks from this address" in body["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # the source is refused before its credential is looked up: operator calls from it wait too
    assert api.call("GET", "/v1/hosts", role="viewer").status_code == 429
    clock.advance(seconds=61)
    assert _report(api, "rfh_guess").status_code == 401
    assert api.call("GET", "/v1/hosts", role="viewer").status_code == 200


def test_one_credential_id_is_throttled_after_ten_failures(api: Api, clock: FakeClock) -> None:
    statuses = [_report(api, "rfh_stolen-or-revoked").status_code for _ in range(12)]
    assert statuses == [401] * 10 + [429] * 2
    assert "this credential" in _problem(_report(api, "rfh_stolen-or-revoked"), 429)["detail"]
    assert _report(api, "rfh_other-credential").status_code == 401  # other ids from the same source: not yet
    clock.advance(minutes=1, seconds=1)
    assert _report(api, "rfh_stolen-or-revoked").status_code == 401


def _enrol(client: TestClient, token: str, host: str, credential: str = "") -> Any:
    facts = {"id": host, "hostname": host, "os_family": "windows", "os_build": "22631"}
    return client.post("/v1/enrol", json={"host": facts, **({"credential": credential} if credential else {})},
                       headers={"Authorization": f"Bearer {token}"})


def test_a_fleet_behind_one_address_sharing_a_spent_token_is_told_why_and_not_locked_out(api: Api) -> None:
    """Issue 14: a shared multi-use enrolment token that ran out used to count each further try as a failed
    credential check against the token and the address, so one agent's retries locked every agent behind the
    same NAT out for a minute.  The secret is right, so the answer is 403 naming the fix, and it is not counted."""
    made = api.call("POST", "/v1/enrolment-tokens", role="operator", json={"tenant": "acme", "uses": 3})
    shared = made.json()["token"]
    fleet = {f"ws-{i:03d}": "rfh_" + chr(ord("A") + i) * 43 for i in range(3)}
    for host, credential in fleet.items():  # three agents of the fleet enrol; the token is used up
        assert _enrol(api.client, shared, host, credential).status_code == 201
    # the fourth agent retries far beyond both limits (10 per credential id, 50 per address)
    late = [_enrol(api.client, shared, "ws-late") for _ in range(60)]
    assert {r.status_code for r in late} == {403}, [r.status_code for r in late][:15]
    detail = _problem(late[-1], 403)["detail"]
    assert "used up (3 use(s))" in detail and "ringfence enrol token create" in detail, detail
    # the agents whose enrolment succeeded go on from the same address: a retry after a lost answer, reports,
    # and a new agent with a token of its own
    assert _enrol(api.client, shared, "ws-000", fleet["ws-000"]).status_code == 201
    for host, credential in fleet.items():
        assert _report(api, credential, host=host).status_code == 202
    fresh = api.call("POST", "/v1/enrolment-tokens", role="operator", json={"tenant": "acme"}).json()["token"]
    assert _enrol(api.client, fresh, "ws-late").status_code == 201
    assert api.call("GET", "/v1/hosts", role="viewer").status_code == 200


def test_wrong_secrets_with_a_known_token_prefix_lock_out_only_their_sender(api: Api) -> None:
    """A token's first 12 characters are shown in listings: wrong secrets sent with them from one address are
    throttled for that address, and the agents elsewhere that hold the real token still enrol with it."""
    shared = api.call("POST", "/v1/enrolment-tokens", role="operator",
                      json={"tenant": "acme", "uses": 5}).json()["token"]
    forged = shared[:12] + "x" * (len(shared) - 12)
    attacker = TestClient(api.client.app, client=("127.0.0.66", 4000))
    statuses = [_enrol(attacker, forged, "ws-evil").status_code for _ in range(12)]
    assert statuses == [401] * 10 + [429] * 2
    assert "this credential" in _problem(_enrol(attacker, forged, "ws-evil"), 429)["detail"]
    assert _enrol(api.client, shared, "ws-100").status_code == 201  # another address, the same token id
    assert _enrol(api.client, forged, "ws-101").status_code == 401  # and its own wrong secrets are its own count


def test_successful_requests_do_not_count(api: Api) -> None:
    for _ in range(80):
        assert api.call("GET", "/v1/hosts", role="viewer").status_code == 200


def _events(db: Database) -> set[tuple[str, str, str]]:
    with db.transaction() as conn:
        return {(r.host_id, r.rollout_id, r.kind) for r in conn.execute(select(HostEventRow))}


def test_events_only_for_rollouts_that_target_the_host_and_at_believable_times(api: Api, db: Database,
                                                                               clock: FakeClock) -> None:
    rid = _setup(api)  # windows hosts a000-a019 and b000-b009; a windows release
    linux = {"id": "l001", "hostname": "l1", "tenant": "acme", "os_family": "linux"}
    assert api.call("POST", "/v1/inventory", role="operator", json={"hosts": [linux]}).status_code == 200
    assert api.call("PUT", "/v1/plans", role="operator", content=PLAN,
                    headers={"content-type": "application/yaml"}).status_code == 200
    started = api.call("POST", "/v1/rollouts", role="operator", json={"release": rid, "plan": "api-plan"})
    assert started.status_code == 201, started.text
    ro = started.json()["id"]
    clock.advance(minutes=10)
    now = clock()
    cred = api.call("POST", "/v1/hosts/a001/credentials", role="operator").json()["credential"]

    at = now.isoformat()
    made_up = _report(api, cred, at=at, events=[{"kind": "crashed", "rollout": "ro_made_up", "at": now.isoformat()}])
    issue = _problem(made_up, 422)["errors"][0]
    assert issue["field"] == "events[0].rollout" and "does not target host 'a001'" in issue["message"]
    in_1970 = _report(api, cred, at=at, events=[{"kind": "crashed", "rollout": ro,
                                          "at": datetime(1970, 1, 1, tzinfo=UTC).isoformat()}])
    assert _problem(in_1970, 422)["errors"][0]["field"] == "events[0].at"
    future = _report(api, cred, at=at, events=[{"kind": "crashed", "rollout": ro,
                                         "at": (now + timedelta(hours=1)).isoformat()}])
    assert _problem(future, 422)["errors"][0]["field"] == "events[0].at"
    old_report = api.client.post("/v1/health", json={"host_id": "a001", "at": (now - timedelta(days=2)).isoformat()},
                                 headers={"Authorization": f"Bearer {cred}"})
    assert _problem(old_report, 422)["errors"][0]["field"] == "at"
    assert _events(db) == set()  # nothing of the refused reports was recorded

    queued = (now - timedelta(minutes=8)).isoformat()  # an event queued while the server was unreachable
    ok = _report(api, cred, at=at, events=[{"kind": "crashed", "rollout": ro, "at": queued}])
    assert ok.status_code == 202, ok.text
    assert _events(db) == {("a001", ro, "crashed")}
    other = api.call("POST", "/v1/hosts/l001/credentials", role="operator").json()["credential"]
    untargeted = _report(api, other, host="l001", at=at, events=[{"kind": "crashed", "rollout": ro, "at": queued}])
    assert "does not target host 'l001'" in _problem(untargeted, 422)["errors"][0]["message"]
