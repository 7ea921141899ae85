"""The channel end to end over real HTTP on loopback: `ringfence serve` as a subprocess, the CLI, agents
enrolling over the API and a real python-tuf Updater (its default urllib3 fetcher) reading what the
reconciler published; then export, remediation and credential revocation."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ringfence.domain.channel import cohort_of, cohort_role, remediation_path
from tests.servers import Server
from tests.test_channel_support import Agent, make_channel, now_clock

pytestmark = pytest.mark.slow


def _wait_for(agent: Agent, host: str, check: Any, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    manifest: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _role, manifest = agent.poll(host)
        if check(manifest):
            return manifest
        time.sleep(0.3)
    raise AssertionError(f"the manifest did not change in {timeout} s: {manifest}")


def test_enrol_publish_poll_export_remediate_and_revoke_over_http(tmp_path: Path) -> None:
    make_channel(tmp_path / "var", now_clock(), bins=4)
    server = Server(tmp_path, f"sqlite:///{tmp_path / 'rf.db'}", RINGFENCE_RECONCILE_INTERVAL_SECONDS="2")
    try:
        token = json.loads(server.cli("enrol", "token", "create", "--tenant", "acme", "--uses", "3", "--json").stdout)
        hosts = [f"ws-{i}" for i in range(3)]
        creds: dict[str, str] = {}
        for h in hosts:
            r = httpx.post(f"{server.url}/v1/enrol", headers={"Authorization": f"Bearer {token['token']}"},
                           json={"host": {"id": h, "hostname": h, "os_family": "windows", "os_build": "22631"}})
            assert r.status_code == 201, r.text
            creds[h] = r.json()["credential"]
        assert "used up" in httpx.post(f"{server.url}/v1/enrol", json={"host": {"id": "x"}},
                                       headers={"Authorization": f"Bearer {token['token']}"}).text
        listed = json.loads(server.cli("hosts", "list", "--json").stdout)["hosts"]
        assert {h["id"] for h in listed} == set(hosts)
        artifact = tmp_path / "C-00000291.sys"
        artifact.write_bytes(b"channel file 291")
        server.cli("release", "create", "--product", "falcon-content", "--version", "291", "--kind", "content",
                   "--platform", "windows", "--file", str(artifact))
        server.cli("policy", "set", "--tenant", "acme", "--product", "falcon-content", "--pin", "exact:291")
        agent = Agent(tmp_path / "var", tmp_path / "agent", base=server.url)
        host = hosts[0]
        manifest = _wait_for(agent, host, lambda m: host in m["hosts"])
        entry = manifest["hosts"][host]["falcon-content"]
        assert entry["version"] == "291" and entry["reason"] == "pinned by tenant policy (exact:291)"
        updater = agent.updater
        assert updater is not None
        info = updater.get_targetinfo(entry["files"]["windows"][0])
        assert info is not None
        assert Path(updater.download_target(info)).read_bytes() == b"channel file 291"
        ts = httpx.get(f"{server.url}/tuf/metadata/timestamp.json")
        assert ts.headers["cache-control"] == "no-cache"
        status = json.loads(server.cli("channel", "status", "--json").stdout)
        assert status["bins"] == 4 and status["roles"][3]["role"] == "timestamp"
        # export: the same tree, byte for byte, for any static server
        out = tmp_path / "www"
        server.cli("channel", "export", str(out))
        for p in (out / "metadata").iterdir():
            assert httpx.get(f"{server.url}/tuf/metadata/{p.name}").content == p.read_bytes()
        # remediation over the same signed channel, for one host only
        script = tmp_path / "fix.sh"
        script.write_text("#!/bin/sh\necho fixed\n")
        server.cli("remediation", "publish", "--id", "fix-291", "--file", str(script), "--selector", f"id={host}",
                   "--reason", "remove C-00000291*.sys")
        manifest = _wait_for(agent, host, lambda m: bool(m["remediations"]))
        role = cohort_role(cohort_of(host, 4), 4)
        assert manifest["remediations"] == [{"id": "fix-291", "path": remediation_path(role, "fix-291", "fix.sh"),
                                             "hosts": [host]}]
        updater = agent.updater
        assert updater is not None
        rinfo = updater.get_targetinfo(remediation_path(role, "fix-291", "fix.sh"))
        assert rinfo is not None and rinfo.custom == {"remediation": "fix-291", "run_once": True}
        assert Path(updater.download_target(rinfo)).read_text().endswith("echo fixed\n")
        # revocation: refused at once
        report = {"host_id": host, "at": datetime.now(UTC).isoformat()}  # the server takes heartbeats of now
        auth = {"Authorization": f"Bearer {creds[host]}"}
        assert httpx.post(f"{server.url}/v1/health", json=report, headers=auth).status_code == 202
        server.cli("hosts", "revoke-credential", host, "--reason", "laptop stolen")
        assert httpx.post(f"{server.url}/v1/health", json=report, headers=auth).status_code == 401
    finally:
        server.stop()
