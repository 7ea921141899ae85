"""Rollout routes through httpx: releases, plans, policies, rollouts, health, desired state, roles, problems."""

from __future__ import annotations

from typing import Any

from ringfence.adapters.db.engine import Database
from tests.api_support import Api, _problem
from tests.conftest import FakeClock

PLAN = b"""
name: api-plan
windows: [{days: mon-sun, start: "00:00", end: "24:00"}]
waves:
  - {name: canary, fraction: 0.1, max_rate_per_minute: 5}
  - {name: rest, fraction: 1.0, needs_approval: true}
"""


def _setup(api: Api) -> str:
    hosts = [{"id": f"a{i:03d}", "hostname": f"a{i}", "tenant": "acme", "os_family": "windows",
              "os_build": "22631"} for i in range(20)]
    hosts += [{"id": f"b{i:03d}", "hostname": f"b{i}", "tenant": "beta", "os_family": "windows",
               "os_build": "22631"} for i in range(10)]
    assert api.call("POST", "/v1/inventory", role="operator", json={"hosts": hosts}).status_code == 200
    files = [("files", ("C-291.sys", b"content 291", "application/octet-stream"))]
    data = {"product": "falcon-content", "version": "291", "kind": "content", "platforms": ["windows"]}
    created = api.call("POST", "/v1/releases", role="operator", files=files, data=data)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_release_plan_policy_rollout_flow(api: Api, db: Database) -> None:
    """Create a release, apply a plan, pause a tenant, start a rollout, read status, pause and resume it."""
    rid = _setup(api)
    release = api.call("GET", f"/v1/releases/{rid}", role="viewer").json()
    assert release["artifacts"][0]["size"] == len(b"content 291")
    dup = _problem(api.call("POST", "/v1/releases", role="operator", data={
        "product": "falcon-content", "version": "291", "kind": "content", "platforms": ["windows"]},
        files=[("files", ("x", b"y", "application/octet-stream"))]), 409)
    assert "immutable" in dup["detail"]
    applied = api.call("PUT", "/v1/plans", role="operator", content=PLAN, headers={"content-type": "application/yaml"})
    assert applied.status_code == 200 and applied.json()["version"] == 1
    assert {p["name"] for p in api.call("GET", "/v1/plans", role="viewer").json()["plans"]} >= {"default", "api-plan"}
    check = api.call("GET", "/v1/plans/api-plan/check", role="viewer", params={"release": rid}).json()
    assert sum(check["wave_sizes"]) == 30 and check["ok"]
    assert api.call("PUT", "/v1/policies", role="operator", json={"tenant": "beta", "ring": "pause"}).status_code == 200
    started = api.call("POST", "/v1/rollouts", role="operator", json={"release": rid, "plan": "api-plan"})
    assert started.status_code == 201, started.text
    ro = started.json()
    assert ro["state"] == "progressing" and ro["hosts"] == 30
    assert ro["policies_holding"][0]["tenant"] == "beta"
    _problem(api.call("POST", f"/v1/rollouts/{ro['id']}/pause", role="viewer"), 403)
    paused = api.call("POST", f"/v1/rollouts/{ro['id']}/pause", role="operator", json={"reason": "lunch"}).json()
    assert paused["state"] == "paused"
    _problem(api.call("POST", f"/v1/rollouts/{ro['id']}/pause", role="operator"), 409)
    _problem(api.call("POST", f"/v1/rollouts/{ro['id']}/explode", role="operator"), 404)
    resumed = api.call("POST", f"/v1/rollouts/{ro['id']}/resume", role="operator").json()
    assert resumed["state"] == "progressing"
    log = api.call("GET", f"/v1/rollouts/{ro['id']}/decisions", role="viewer").json()["decisions"]
    assert [d["state"] for d in log] == ["pending", "progressing", "paused", "progressing"]
    assert "lunch" in log[2]["message"]
    listed = api.call("GET", "/v1/rollouts", role="viewer", params={"active": True}).json()["rollouts"]
    assert [r["id"] for r in listed] == [ro["id"]]
    audit = api.call("GET", "/v1/audit", role="viewer", params={"action": "rollout.pause"}).json()["entries"]
    assert audit[0]["reason"] == "lunch" and audit[0]["actor"] == "operator-1"


def test_bad_plans_and_policies_name_the_field(api: Api) -> None:
    """A plan or policy with bad values is a 422 problem naming each field; nothing is stored."""
    bad = b"name: x\nwaves:\n  - {name: a, fraction: 1.5, max_rate_per_minute: -1}\nwindows: [{days: funday}]\n"
    body = _problem(api.call("PUT", "/v1/plans", role="operator", content=bad,
                             headers={"content-type": "application/yaml"}), 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"waves[0].fraction", "waves[0].max_rate_per_minute"} <= fields
    assert any(f.startswith("windows[0]") for f in fields)
    _problem(api.call("GET", "/v1/plans/x", role="viewer"), 404)
    unquoted = b"name: y\nwindows: [{days: mon-fri, start: 09:00, end: 16:00}]\nwaves: [{name: a, fraction: 1.0}]\n"
    _problem(api.call("PUT", "/v1/plans", role="operator", content=unquoted,
                      headers={"content-type": "application/yaml"}), 422)
    body = _problem(api.call("PUT", "/v1/policies", role="operator",
                             json={"tenant": "acme", "ring": "sometimes"}), 422)
    assert body["errors"][0]["field"] == "ring"
    _problem(api.call("PUT", "/v1/policies", role="operator", json={"tenant": "acme", "pin": "n-7"}), 422)


def test_health_route_desired_state_and_kill_switch(api: Api, clock: FakeClock) -> None:
    """Agents report with host credentials, only for themselves; desired state follows the kill switch."""
    rid = _setup(api)
    cred = api.call("POST", "/v1/hosts/a001/credentials", role="operator").json()["credential"]
    now = clock().isoformat()
    ok = api.client.post("/v1/health", json={"host_id": "a001", "at": now, "versions": {"falcon-content": "290"},
                                             "committed": ["falcon-content"]},
                         headers={"Authorization": f"Bearer {cred}"})
    assert ok.status_code == 202, ok.text
    _problem(api.client.post("/v1/health", json={"host_id": "a002", "at": now},
                             headers={"Authorization": f"Bearer {cred}"}), 403)
    _problem(api.call("POST", "/v1/health", role="admin", json={"host_id": "a001", "at": now}), 401)
    _problem(api.client.post("/v1/health", json={"host_id": "a001", "at": now}), 401)
    _problem(api.client.post("/v1/health", json={"host_id": "a001", "at": "yesterday"},
                             headers={"Authorization": f"Bearer {cred}"}), 422)
    own = api.client.get("/v1/agent/desired", headers={"Authorization": f"Bearer {cred}"}).json()
    assert own["host"] == "a001" and "falcon-content" in own["products"]
    _problem(api.call("GET", "/v1/agent/desired", role="admin"), 401)  # operator tokens are not host credentials
    desired: dict[str, Any] = api.call("GET", "/v1/hosts/a001/desired", role="viewer").json()
    assert desired["products"]["falcon-content"]["rollback"] is False
    ks = api.call("POST", "/v1/killswitch/falcon-content", role="operator", json={"reason": "drill"}).json()
    assert ks["engaged"] is True
    desired = api.call("GET", "/v1/hosts/a001/desired", role="viewer").json()
    assert "kill switch" in desired["products"]["falcon-content"]["reason"]
    assert rid
    _problem(api.call("POST", "/v1/killswitch/nothing", role="operator"), 404)
    _problem(api.call("POST", "/v1/killswitch/falcon-content", role="viewer"), 403)


def test_hostile_inputs_are_4xx_never_500(api: Api, clock: FakeClock) -> None:
    """Inputs found in review that used to reach the database or the parser unchecked."""
    _setup(api)
    cred = api.call("POST", "/v1/hosts/a001/credentials", role="operator").json()["credential"]
    auth = {"Authorization": f"Bearer {cred}"}
    naive = clock().replace(tzinfo=None).isoformat()
    _problem(api.client.post("/v1/health", json={"host_id": "a001", "at": naive}, headers=auth), 422)
    now = clock().isoformat()
    long_version = {"host_id": "a001", "at": now, "versions": {"falcon-content": "9" * 101}}
    _problem(api.client.post("/v1/health", json=long_version, headers=auth), 422)
    long_rollout = {"host_id": "a001", "at": now, "events": [{"kind": "crashed", "rollout": "r" * 65, "at": now}]}
    _problem(api.client.post("/v1/health", json=long_rollout, headers=auth), 422)
    _problem(api.call("PUT", "/v1/policies", role="operator",
                      content=b'{"tenant": "acme", "delay_hours": NaN}', headers={"content-type": "application/json"}),
             422)
    deep = "(" * 3000 + "tier=1" + ")" * 3000
    _problem(api.call("PUT", "/v1/policies", role="operator", json={"tenant": "acme", "host_group": deep[:400]}), 422)
    _problem(api.call("GET", "/v1/hosts", role="viewer", params={"where": "(" * 60 + "tier=1" + ")" * 60}), 422)
    _problem(api.call("PUT", "/v1/policies", role="operator", json={"tenant": "t" * 300}), 422)
