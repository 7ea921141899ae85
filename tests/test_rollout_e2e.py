"""A rollout end to end against a real server process, with the server killed (SIGKILL) mid-progression.

The test drives everything through the documented CLI and HTTP API: import
hosts, issue host credentials, create a release, apply a plan, start the
rollout; a thread plays the agents, posting heartbeats with real HTTP.  Mid
wave 0 the server gets SIGKILL; it is restarted on the same database and the
rollout must continue from exactly where it was: no double promotion, no lost
decision, every host exposed once, the audit chain intact.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ringfence.adapters.db.engine import Database
from tests.servers import Server

PLAN = """
name: e2e-fast
windows:
  - {days: mon-sun, start: "00:00", end: "24:00"}
freeze: {public_holidays: false}
max_data_age_minutes: 1
silence_grace_minutes: 1
min_per_stratum: 1
gate: {min_treated_hosts: 2, min_control_hosts: 2, max_streams: 16, baseline_rate: 1000.0, tolerance: 5.0}
waves:
  - {name: canary, fraction: 0.5, min_bake_minutes: 0.05, min_observed_hosts: 2, max_rate_per_minute: 40}
  - {name: rest, fraction: 1.0, min_bake_minutes: 0.05, min_observed_hosts: 2}
"""
HOSTS = 40


class Agents:
    """Posts a heartbeat for every host about once a second until stopped; ignores a dead server."""

    def __init__(self, url: str, credentials: dict[str, str], operator_token: str) -> None:
        self.url = url
        self.credentials = credentials
        self.operator = {"Authorization": f"Bearer {operator_token}"}
        self.running = dict.fromkeys(credentials, "290")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while not self._stop.is_set():
                for host, token in self.credentials.items():
                    body = {"host_id": host, "at": datetime.now(UTC).isoformat(),
                            "versions": {"falcon-content": self.running[host]}, "committed": ["falcon-content"]}
                    try:
                        client.post("/v1/health", json=body, headers={"Authorization": f"Bearer {token}"})
                        # Converge to the desired version, as the agent will (a healthy install).
                        desired = client.get(f"/v1/hosts/{host}/desired", headers=self.operator)
                        if desired.status_code == 200:
                            want = desired.json()["products"].get("falcon-content", {}).get("version")
                            if want:
                                self.running[host] = want
                    except httpx.TransportError:
                        break
                self._stop.wait(1.0)

    def __enter__(self) -> Agents:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[Server]:
    srv = Server(tmp_path, db_url, RINGFENCE_RECONCILE_INTERVAL_SECONDS="0.25")
    yield srv
    srv.stop()


def _status(server: Server, rid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(server.cli("rollout", "status", rid, "--json").stdout)
    return data


def _wait(server: Server, rid: str, until: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = _status(server, rid)
        if until(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.3)


@pytest.mark.slow
def test_rollout_survives_sigkill_mid_progression(server: Server, db: Database, tmp_path: Path) -> None:
    """Kill -9 in wave 0, restart, and the rollout completes with every decision once and in order."""
    hosts = [{"id": f"e2e-{i:03d}", "hostname": f"ws-{i:03d}", "tenant": "acme", "os_family": "windows",
              "os_build": ("22631", "26100")[i % 2], "hardware_model": "Latitude 7440", "timezone": "Europe/Berlin",
              "country": "DE"} for i in range(HOSTS)]
    (tmp_path / "hosts.json").write_text(json.dumps({"hosts": hosts}))
    server.cli("inventory", "import", str(tmp_path / "hosts.json"))
    # One credential through the CLI verb, the rest through the same API route (a CLI process per host is slow).
    credentials = {hosts[0]["id"]: server.cli("hosts", "credential", hosts[0]["id"]).stdout.strip()}
    with httpx.Client(base_url=server.url, timeout=10,
                      headers={"Authorization": f"Bearer {server.env['RINGFENCE_TOKEN']}"}) as api:
        for h in hosts[1:]:
            answer = api.post(f"/v1/hosts/{h['id']}/credentials")
            assert answer.status_code == 201, answer.text
            credentials[h["id"]] = answer.json()["credential"]
    assert all(c.startswith("rfh_") for c in credentials.values())
    artifact = tmp_path / "C-00000291.sys"
    artifact.write_bytes(b"channel file 291")
    release = json.loads(server.cli("release", "create", "--product", "falcon-content", "--version", "291",
                                    "--kind", "content", "--platform", "windows", "--file", str(artifact),
                                    "--json").stdout)
    assert release["id"] == "falcon-content@291" and len(release["artifacts"][0]["sha256"]) == 64
    (tmp_path / "plan.yaml").write_text(PLAN)
    server.cli("plan", "apply", "-f", str(tmp_path / "plan.yaml"))
    check = json.loads(server.cli("plan", "check", "e2e-fast", "--release", "falcon-content@291", "--json").stdout)
    assert check["ok"] and sum(check["wave_sizes"]) == HOSTS

    with Agents(server.url, credentials, server.env["RINGFENCE_TOKEN"]):
        time.sleep(1.5)  # every host has reported once: they count as online
        started = json.loads(server.cli("rollout", "start", "--release", "falcon-content@291", "--plan", "e2e-fast",
                                        "--reason", "e2e", "--json").stdout)
        rid = started["id"]
        mid = _wait(server, rid, lambda s: 3 <= s["exposed"] < s["waves"][0]["hosts"], timeout=60)
        assert mid["wave"] == 0 and mid["state"] == "progressing", mid
        server.kill()
        with db.engine.connect() as conn:
            before = conn.exec_driver_sql("SELECT count(*) FROM rollout_hosts WHERE exposed_at IS NOT NULL "
                                          f"AND rollout_id = '{rid}'").scalar_one()
            seq_before = conn.exec_driver_sql("SELECT max(seq) FROM rollout_decisions "
                                              f"WHERE rollout_id = '{rid}'").scalar_one()
        assert before >= 3
        server.start()
        after = _status(server, rid)
        assert after["exposed"] >= before  # nothing committed was lost
        final = _wait(server, rid, lambda s: s["state"] in ("completed", "halted", "rolling_back", "rolled_back"),
                      timeout=120)

    assert final["state"] == "completed", final["message"]
    assert final["exposed"] == HOSTS
    log = json.loads(server.cli("rollout", "explain", rid, "--json").stdout)["decisions"]
    seqs = [d["seq"] for d in log]
    assert seqs == list(range(1, len(seqs) + 1)) and seqs[-1] > seq_before
    assert [d["at"] for d in log] == sorted(d["at"] for d in log)
    promotions = [d for d in log if d["message"].startswith("promoted")]
    assert len(promotions) == 1 and promotions[0]["wave"] == 1
    assert sum(1 for d in log if d["state"] == "completed") == 1
    explain = server.cli("rollout", "explain", rid).stdout
    assert "promoted: wave 0 (canary) passed" in explain
    assert "intact" in server.cli("audit", "verify").stdout
