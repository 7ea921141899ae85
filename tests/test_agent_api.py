"""The agent's side of the API against the real app and database: enrolment, facts, queued events, revocation."""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ringfence.adapters.db.engine import Database
from ringfence.agent.config import AgentConfig
from ringfence.agent.core import Agent
from ringfence.agent.main import app as agent_app
from ringfence.agent.reporter import EnrolmentRefused
from tests.api_support import Api
from tests.conftest import FakeClock

FACTS = {"hostname": "ws-7", "os_family": "windows", "os_build": "22631", "hardware_model": "Latitude 7440",
         "timezone": "Europe/Berlin", "country": "DE", "site": "fra-1", "tier": 1}


def _token(api: Api, uses: int = 1) -> str:
    r = api.call("POST", "/v1/enrolment-tokens", role="operator", json={"tenant": "acme", "uses": uses})
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


def _agent(api: Api, clock: FakeClock, tmp_path: Path, host: str, token: str = "", **extra: Any) -> Agent:
    root = tmp_path / "root.json"
    root.write_text("{}")
    config = AgentConfig.model_validate({
        "server": "http://testserver", "state_dir": tmp_path / host, "trusted_root": root, "host_id": host,
        "enrolment_token": token, "facts": FACTS, **extra})
    agent = Agent(config, clock=clock, transport=api.client._transport)
    agent.start()
    return agent


def _rollout(api: Api) -> str:
    """A rollout of a windows release under the default plan (it targets every windows host)."""
    files = [("files", ("C-291.sys", b"content 291", "application/octet-stream"))]
    data = {"product": "falcon-content", "version": "291", "kind": "content", "platforms": ["windows"]}
    created = api.call("POST", "/v1/releases", role="operator", files=files, data=data)
    assert created.status_code == 201, created.text
    started = api.call("POST", "/v1/rollouts", role="operator", json={"release": created.json()["id"]})
    assert started.status_code == 201, started.text
    return str(started.json()["id"])


def _events(db: Database, host: str) -> set[tuple[str, str]]:
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT kind, rollout_id FROM host_events WHERE host_id = '{host}'").all()
    return {(r[0], r[1]) for r in rows}


def test_enrol_keeps_a_private_credential_and_the_host_appears_with_its_facts(
        api: Api, clock: FakeClock, tmp_path: Path) -> None:
    """One token, one host: the credential is stored 0600, the facts land in the inventory under the token's tenant."""
    token = _token(api)
    agent = _agent(api, clock, tmp_path, "ws-0007", token)
    assert agent.enrol()
    credential = agent.dir.root / "credential"
    assert stat.S_IMODE(os.stat(credential).st_mode) == 0o600 and credential.read_text().startswith("rfh_")
    host = api.call("GET", "/v1/hosts/ws-0007", role="viewer").json()
    assert (host["tenant"], host["hostname"], host["site"], host["tier"]) == ("acme", "ws-7", "fra-1", 1)
    assert agent.enrol()  # already enrolled: the token is not needed again
    agent.send_facts()
    assert agent.report()
    agent.close()
    other = _agent(api, clock, tmp_path, "ws-0008", token)  # the one-time token is used up
    with pytest.raises(EnrolmentRefused, match="403"):
        other.enrol()
    other.close()
    assert api.call("GET", "/v1/hosts/ws-0008", role="viewer").status_code == 404


def test_events_wait_on_disk_while_the_server_is_unreachable(
        api: Api, db: Database, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Queued events survive a dead server and a restart, and leave the queue only once the server took them."""
    agent = _agent(api, clock, tmp_path, "ws-0009", _token(api))
    assert agent.enrol()
    ro_x = _rollout(api)  # the server takes events only for rollouts that target the host
    agent._event("crashed", ro_x)
    agent._event("auto_reverted", ro_x)
    agent.close()
    offline = Agent(AgentConfig.model_validate({**agent.config.model_dump(), "server": "http://127.0.0.1:9"}),
                    clock=clock)
    offline.start()
    with caplog.at_level(logging.WARNING, logger="ringfence.agent"):
        assert not offline.report()
    offline.close()
    assert "2 events stay queued on disk" in caplog.text
    assert len(offline.dir.queued()) == 2 and _events(db, "ws-0009") == set()
    again = _agent(api, clock, tmp_path, "ws-0009")
    assert again.report()
    again.close()
    assert again.dir.queued() == []
    assert _events(db, "ws-0009") == {("crashed", ro_x), ("auto_reverted", ro_x)}


def test_a_revoked_credential_keeps_events_queued(api: Api, clock: FakeClock, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """After revocation the server refuses the host at once; the agent says so and loses nothing."""
    agent = _agent(api, clock, tmp_path, "ws-0010", _token(api))
    assert agent.enrol()
    assert api.call("POST", "/v1/hosts/ws-0010/credentials/revoke", role="operator").status_code == 200
    agent._event("crashed", "ro_y")
    with caplog.at_level(logging.WARNING, logger="ringfence.agent"):
        assert not agent.report()
    agent.close()
    assert "refused this host's credential" in caplog.text and len(agent.dir.queued()) == 1


def test_status_and_config_errors_on_the_command_line(tmp_path: Path) -> None:
    """`ringfence-agent status --json` reads the state dir; a bad config exits 2 naming the field."""
    (tmp_path / "root.json").write_text("{}")
    good = tmp_path / "agent.toml"
    good.write_text('server = "http://127.0.0.1:9"\nstate_dir = "state"\ntrusted_root = "root.json"\nhost_id = "h1"\n')
    runner = CliRunner()
    result = runner.invoke(agent_app, ["status", "--config", str(good), "--json"])
    assert result.exit_code == 0, result.output
    assert '"host_id": "h1"' in result.output and '"enrolled": false' in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text('server = "http://127.0.0.1:9"\nstate_dir = "state"\n')
    proc = subprocess.run([sys.executable, "-m", "ringfence.agent.main", "status", "--config", str(bad)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "trusted_root" in proc.stderr, proc.stderr


def test_sigterm_stops_a_waiting_agent_promptly(tmp_path: Path) -> None:
    """An agent backing off from an unreachable server exits cleanly within seconds of SIGTERM."""
    (tmp_path / "root.json").write_text("{}")
    config = tmp_path / "agent.toml"
    config.write_text('server = "http://127.0.0.1:9"\nstate_dir = "state"\ntrusted_root = "root.json"\n'
                      'host_id = "h1"\nenrolment_token = "rfe_never_used"\npoll_interval_seconds = 60\n'
                      'log_file = "agent.log"\n')
    proc = subprocess.Popen([sys.executable, "-m", "ringfence.agent.main", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "agent.log"
    deadline = time.monotonic() + 30
    while "cannot enrol yet" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "cannot enrol yet" in log.read_text()
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 3


class _LoseFirstEnrolAnswer(httpx.BaseTransport):
    """The server handles the first POST /v1/enrol and commits; its answer never reaches the agent."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path == "/v1/enrol" and not self.lost:
            self.lost += 1
            response.read()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


def test_an_enrolment_whose_answer_was_lost_is_asked_again_and_succeeds(
        api: Api, clock: FakeClock, tmp_path: Path) -> None:
    """A timeout after the server committed: the agent asks again with the credential it made and kept before
    the first try, and the server recognises it (no 409, the single-use token not needed twice)."""
    token = _token(api, uses=1)
    root = tmp_path / "root.json"
    root.write_text("{}")
    lossy = _LoseFirstEnrolAnswer(api.client._transport)
    config = AgentConfig.model_validate({"server": "http://testserver", "state_dir": tmp_path / "ws-0010",
                                         "trusted_root": root, "host_id": "ws-0010", "enrolment_token": token,
                                         "facts": FACTS})
    agent = Agent(config, clock=clock, transport=lossy)
    agent.start()
    assert not agent.enrol()  # the lost answer: unreachable, try again later
    assert lossy.lost == 1 and api.call("GET", "/v1/hosts/ws-0010", role="viewer").status_code == 200
    kept = (agent.dir.root / "credential.proposed").read_text()
    assert agent.enrol()
    assert (agent.dir.root / "credential").read_text() == kept
    assert not (agent.dir.root / "credential.proposed").exists()
    assert agent.report()
    agent.close()
