"""Release gates at rollout start: the 2024 content-contract case (21 fields vs 20), signatures, SBOM, severity policy,
allow-list expiry and the four-eyes override — all through the API on a real database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]

from ringfence.services.supply_chain import artifact_payload
from tests.api_support import Api, _problem
from tests.conftest import FakeClock
from tests.supply_support import LOG4J, OSV, cdx, release

EXAMPLE_POLICY = Path(__file__).parent.parent / "examples" / "release-gates" / "default.yaml"
AGENT = "falcon-sensor"


def _schema(fields: int) -> bytes:
    """A template type's input: exactly ``fields`` named fields, nothing else (what the sensor supplies)."""
    return json.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                       "required": ["template", "field_1"],
                       "properties": {"template": {"type": "string"},
                                      **{f"field_{i}": {"type": "string"} for i in range(1, fields + 1)}},
                       "additionalProperties": False}).encode()


def _instance(fields: int) -> dict[str, str]:
    return {"template": "named-pipe", **{f"field_{i}": f"v{i}" for i in range(1, fields + 1)}}


def _hosts(api: Api, clock: FakeClock) -> None:
    """Six Windows hosts: four report sensor 7.11 running, two have 7.10 installed per the inventory."""
    hosts = [{"id": f"w{i}", "hostname": f"w{i}", "tenant": "acme", "os_family": "windows",
              "agents": [{"vendor": "CrowdStrike", "product": AGENT, "version": "7.10", "kernel_mode": True}]
              if i >= 4 else []} for i in range(6)]
    assert api.call("POST", "/v1/inventory", role="operator", json={"hosts": hosts}).status_code == 200
    for i in range(4):
        cred = api.call("POST", f"/v1/hosts/w{i}/credentials", role="operator").json()["credential"]
        assert api.client.post("/v1/health", json={"host_id": f"w{i}", "at": clock().isoformat(),
                                                   "versions": {AGENT: "7.11"}},
                               headers={"Authorization": f"Bearer {cred}"}).status_code == 202
    api.client.app.state.ringfence.ingest.flush()  # type: ignore[attr-defined]


def _rollout(api: Api, release_id: str) -> tuple[int, dict[str, Any]]:
    """Create a rollout and start it; (status code of the start, rollout status afterwards)."""
    created = api.call("POST", "/v1/rollouts", role="operator", json={"release": release_id, "start": False})
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    started = api.call("POST", f"/v1/rollouts/{rid}/start", role="operator")
    return started.status_code, {**api.call("GET", f"/v1/rollouts/{rid}", role="viewer").json(), "_start": started.json()}


def _gate(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in status["gates"] if g["gate"] == name)


def test_content_with_21_fields_for_an_agent_that_supplies_20_is_blocked_before_wave_0(api: Api, clock: FakeClock) -> None:
    """The 19 July 2024 case: one instance uses field 21; every agent version in the fleet accepts 20."""
    _hosts(api, clock)
    for version in ("7.10", "7.11"):
        made = release(api, AGENT, version, kind="agent", content_schema=_schema(20))
        assert made.status_code == 201, made.text
        assert made.json()["contract"] == {"for_agent": None, "content_schema": True}
    assert release(api, AGENT, "7.12", kind="agent", content_schema=_schema(21)).status_code == 201  # not in the fleet
    lines = "\n".join(json.dumps(_instance(20)) for _ in range(3)) + "\n" + json.dumps(_instance(21)) + "\n"
    bad = release(api, "channel-file", "291", kind="content", for_agent=AGENT,
                  files=[("C-00000291.jsonl", lines.encode())])
    assert bad.status_code == 201, bad.text

    code, status = _rollout(api, "channel-file@291")
    assert code == 409
    detail = status["_start"]["detail"]
    assert "content (failed)" in detail and "field_21" in detail and "C-00000291.jsonl line 4" in detail
    assert "7.10" in detail and "7.11" in detail and "gate-override" in detail
    assert status["state"] == "pending" and status["exposed"] == 0  # stopped before wave 0
    content = _gate(status, "content")
    assert content["verdict"] == "failed" and content["enforced"] is True
    assert content["details"]["versions"] == {"7.10": 2, "7.11": 4}
    assert "Additional properties are not allowed ('field_21' was unexpected)" in content["message"]
    assert _gate(status, "signature")["enforced"] is False  # no policy applied: only the contract blocks
    assert any("blocked by release gates before wave 0" in d["message"] for d in status["decisions"])
    audit = api.call("GET", "/v1/audit", role="viewer", params={"action": "rollout.gates"}).json()["entries"]
    assert audit[0]["details"]["blocked"] is True and audit[0]["details"]["gates"]["content"] == "failed"

    # The same content with 20 fields passes the contract and the rollout starts.
    good = "\n".join(json.dumps(_instance(20)) for _ in range(4)).encode()
    assert release(api, "channel-file", "292", kind="content", for_agent=AGENT,
                   files=[("C-00000292.json", b"[" + good.replace(b"\n", b",") + b"]")]).status_code == 201
    code, status = _rollout(api, "channel-file@292")
    assert code == 200 and status["state"] == "progressing"
    assert _gate(status, "content")["verdict"] == "passed"

    # Override of the blocked rollout: approver role, not the creator, with a reason; audited; then it starts.
    blocked = next(r["id"] for r in api.call("GET", "/v1/rollouts", role="viewer").json()["rollouts"]
                   if r["release"] == "channel-file@291")
    _problem(api.call("POST", f"/v1/rollouts/{blocked}/gate-override", role="operator", json={"reason": "x"}), 403)
    _problem(api.call("POST", f"/v1/rollouts/{blocked}/gate-override", role="approver", json={"reason": ""}), 422)
    ok = api.call("POST", f"/v1/rollouts/{blocked}/gate-override", role="approver",
                  json={"reason": "field 21 is unused by this sensor build (INC-7)"})
    assert ok.status_code == 200 and ok.json()["gates"] == ["content"]
    started = api.call("POST", f"/v1/rollouts/{blocked}/start", role="operator")
    assert started.status_code == 200 and started.json()["state"] == "progressing"
    assert _gate(started.json(), "content")["overridden_by"] == "approver-1"
    entry = api.call("GET", "/v1/audit", role="viewer", params={"action": "rollout.gate-override"}).json()["entries"][0]
    assert entry["actor"] == "approver-1" and entry["reason"].startswith("field 21")


def test_four_eyes_an_approver_cannot_override_gates_of_their_own_rollout(api: Api, clock: FakeClock) -> None:
    """The creator of a rollout may not override its gates, even as an approver."""
    _hosts(api, clock)
    assert release(api, AGENT, "7.11", kind="agent", content_schema=_schema(20)).status_code == 201
    assert release(api, "channel-file", "1", kind="content", for_agent=AGENT,
                   files=[("c.json", json.dumps(_instance(21)).encode())]).status_code == 201
    created = api.call("POST", "/v1/rollouts", role="approver", json={"release": "channel-file@1"})
    body = _problem(created, 409)
    assert "field_21" in body["detail"] and "7.11" in body["detail"]
    rid = api.call("GET", "/v1/rollouts", role="viewer").json()["rollouts"][0]["id"]
    own = _problem(api.call("POST", f"/v1/rollouts/{rid}/gate-override", role="approver", json={"reason": "mine"}), 409)
    assert "four eyes" in own["detail"]
    assert api.call("POST", f"/v1/rollouts/{rid}/gate-override", role="admin", json={"reason": "ok"}).status_code == 200


def test_signature_sbom_and_severity_gates_under_the_example_policy(api: Api, clock: FakeClock) -> None:
    """Unsigned or vulnerable releases are blocked; signing, allow-listing and expiry behave as documented."""
    _hosts(api, clock)
    applied = api.call("PUT", "/v1/gate-policy", role="operator", content=EXAMPLE_POLICY.read_bytes(),
                       headers={"content-type": "application/yaml"})
    assert applied.status_code == 200, applied.text
    assert applied.json()["policy"]["enforce"] == ["signature", "sbom", "vulnerabilities", "content"]
    files = [("files", ("log4shell.json", (OSV / "github-advisories" / "GHSA-jfh8-c2jp-5v3q.json").read_bytes(), "x"))]
    assert api.call("POST", "/v1/vulns/import", role="operator", files=files).status_code == 200
    assert release(api, "app", "1", sbom=cdx(LOG4J.format("2.14.1"))).status_code == 201
    assert release(api, "app", "0").status_code == 201  # no SBOM

    code, status = _rollout(api, "app@1")
    assert code == 409
    assert {g["gate"]: g["verdict"] for g in status["gates"]} == {
        "signature": "failed", "sbom": "passed", "vulnerabilities": "failed", "content": "skipped"}
    assert "GHSA-jfh8-c2jp-5v3q in log4j-core 2.14.1 (critical), fixed in 2.15.0" in _gate(status, "vulnerabilities")["message"]
    code, status = _rollout(api, "app@0")
    assert code == 409 and _gate(status, "sbom")["verdict"] == "failed"
    assert _gate(status, "vulnerabilities")["verdict"] == "inconclusive"

    # Sign: the key pair is made here, the public half trusted by an admin, the signatures uploaded.
    signer = CryptoSigner.generate_ed25519()
    pub = json.dumps(signer.public_key.to_dict())
    _problem(api.call("POST", "/v1/signers", role="operator", json={"name": "rel-eng", "public_key": pub}), 403)
    added = api.call("POST", "/v1/signers", role="admin", json={"name": "rel-eng", "public_key": pub})
    assert added.status_code == 201 and added.json()["keyid"] == signer.public_key.keyid
    _problem(api.call("POST", "/v1/signers", role="admin", json={"name": "again", "public_key": pub}), 409)
    artifacts = api.call("GET", "/v1/releases/app@1", role="viewer").json()["artifacts"]
    sigs = [{"sha256": a["sha256"], "keyid": signer.public_key.keyid,
             "sig": signer.sign(artifact_payload(a["sha256"])).signature} for a in artifacts]
    forged = [{**sigs[0], "sig": signer.sign(b"something else").signature}]
    body = _problem(api.call("POST", "/v1/releases/app@1/signatures", role="operator", json={"signatures": forged}), 422)
    assert body["errors"][0]["field"] == "signatures[0].sig" and "does not verify" in body["errors"][0]["message"]
    stranger = CryptoSigner.generate_ed25519()
    unknown = [{**sigs[0], "keyid": stranger.public_key.keyid,
                "sig": stranger.sign(artifact_payload(sigs[0]["sha256"])).signature}]
    _problem(api.call("POST", "/v1/releases/app@1/signatures", role="operator", json={"signatures": unknown}), 422)
    assert api.call("POST", "/v1/releases/app@1/signatures", role="operator",
                    json={"signatures": sigs}).json() == {"release": "app@1", "stored": 1, "signers": ["rel-eng"]}

    # Allow-list Log4Shell by its CVE alias: an expired entry no longer waives and says so; a live one does.
    expired = "enforce: [signature, sbom, vulnerabilities]\nallow:\n  - {id: CVE-2021-44228, reason: lab only, " \
              "expires: 2026-11-01}\n"
    assert api.call("PUT", "/v1/gate-policy", role="operator", content=expired.encode(),
                    headers={"content-type": "application/yaml"}).status_code == 200
    code, status = _rollout(api, "app@1")
    assert code == 409 and _gate(status, "signature")["verdict"] == "passed"
    assert "allow-list entry expired on 2026-11-01, no longer waives" in _gate(status, "vulnerabilities")["message"]
    live = expired.replace("2026-11-01", "2026-12-31")
    assert api.call("PUT", "/v1/gate-policy", role="operator", content=live.encode(),
                    headers={"content-type": "application/yaml"}).status_code == 200
    code, status = _rollout(api, "app@1")
    assert code == 200 and status["state"] == "progressing"
    assert "allowed until 2026-12-31 (lab only)" in _gate(status, "vulnerabilities")["details"]["allowed"][0]

    bad = _problem(api.call("PUT", "/v1/gate-policy", role="operator",
                            content=b"severity_threshold: severe\nallow: [{id: X, expires: someday}]\n",
                            headers={"content-type": "application/yaml"}), 422)
    assert {e["field"] for e in bad["errors"]} == {"severity_threshold", "allow[0].reason", "allow[0].expires"}
    assert api.call("GET", "/v1/gate-policy", role="viewer").json()["version"] == 3


def test_matches_that_cannot_be_evaluated_make_the_gate_inconclusive(api: Api, clock: FakeClock) -> None:
    """A GIT-only range cannot judge a version: the severity gate fails closed unless the policy says ignore."""
    _hosts(api, clock)
    record = {"id": "GIT-ONLY-1", "modified": "2024-01-01T00:00:00Z", "affected": [
        {"package": {"ecosystem": "PyPI", "name": "gitpkg"},
         "ranges": [{"type": "GIT", "repo": "https://example.invalid/gitpkg", "events": [{"introduced": "0"},
                                                                                          {"fixed": "a1b2c3"}]}]}]}
    assert api.call("POST", "/v1/vulns/import", role="operator",
                    files=[("files", ("git.json", json.dumps(record).encode(), "application/json"))]).status_code == 200
    assert release(api, "tool", "1", sbom=cdx("pkg:pypi/GitPkg@1.0")).status_code == 201
    found = api.call("GET", "/v1/releases/tool@1/findings", role="viewer").json()
    assert found["findings"] == [] and found["not_evaluated"][0]["advisory"] == "GIT-ONLY-1"
    policy = "enforce: [vulnerabilities]\nnot_evaluated: {}\n"
    assert api.call("PUT", "/v1/gate-policy", role="operator", content=policy.format("block").encode(),
                    headers={"content-type": "application/yaml"}).status_code == 200
    code, status = _rollout(api, "tool@1")
    assert code == 409 and _gate(status, "vulnerabilities")["verdict"] == "inconclusive"
    assert "could not be evaluated" in _gate(status, "vulnerabilities")["message"]
    assert api.call("PUT", "/v1/gate-policy", role="operator", content=policy.format("ignore").encode(),
                    headers={"content-type": "application/yaml"}).status_code == 200
    code, status = _rollout(api, "tool@1")
    assert code == 200 and _gate(status, "vulnerabilities")["verdict"] == "passed"
