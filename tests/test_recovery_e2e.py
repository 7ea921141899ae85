"""A recovery campaign end to end over real HTTP (SQLite and PostgreSQL).

A rollout of a release that breaks every host halts (the real engine, gate and services); a campaign is created
from it through the API of a uvicorn server on 127.0.0.1, planned, a Redfish step is executed against the real
sushy-tools emulator and an ansible-runner step against localhost (both through ``ringfence recovery run``), a
key is revealed to the assigned technician and refused to another, and the hosts are verified only by their own
heartbeats posted to ``/v1/health``; bad runbook YAML gets a 422 naming the field and changes nothing.
"""

from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from ringfence.adapters.api.app import create_app
from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import recovery as recovery_store
from ringfence.cli.main import app as cli_app
from ringfence.config import Settings
from ringfence.domain.access import Role
from ringfence.domain.model import DiskEncryption, Host, HostId, OsFamily, TenantId
from ringfence.services.context import Actor
from ringfence.services.health import issue_credential
from ringfence.services.tokens import create_token, ensure_admin_token
from tests.conftest import FakeClock
from tests.rollout_harness import ALWAYS_OPEN, Fleet, start
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "recovery"
KEY = "111111-222222-333333-444444-555555-666666-777777-888888"
BOOT = Actor(name="admin", role=Role.ADMIN)


def _hosts(n: int) -> list[Host]:
    # Servers with a BMC and a verified escrowed key: the example runbooks send them down the Redfish path.
    return [Host(id=HostId(f"srv{i:03d}"), hostname=f"SRV{i:03d}", tenant=TenantId("acme"), os_family=OsFamily.WINDOWS,
                 os_build="20348", hardware_model="PowerEdge R650", timezone="Europe/Berlin", country="DE",
                 site="fra-1", tier=1, labels={"role": "server"}, encryption=DiskEncryption.BITLOCKER,
                 recovery_key_escrowed=True, recovery_key_verified=True, oob_management=True) for i in range(n)]


@pytest.fixture
def redfish(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """sushy-tools' emulator (fake driver) on 127.0.0.1, and a rescue image it can fetch."""
    images = tmp_path / "images"
    images.mkdir()
    (images / "rescue.iso").write_bytes(b"\0" * 4096)
    files = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(images)))
    threading.Thread(target=files.serve_forever, daemon=True).start()
    port = free_port()
    emulator = Path(sys.executable).parent / "sushy-emulator"
    proc = subprocess.Popen([str(emulator), "--fake", "-i", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/redfish/v1/Systems", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        system = httpx.get(f"{url}/redfish/v1/Systems").json()["Members"][0]["@odata.id"].rsplit("/", 1)[1]
        yield url, system, f"http://127.0.0.1:{files.server_address[1]}/rescue.iso"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        files.shutdown()
        files.server_close()


class _Serve:
    """The real app under uvicorn on 127.0.0.1 in a thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Serve:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.mark.extended
def test_campaign_end_to_end(db: Database, db_url: str, clock: FakeClock, tmp_path: Path,
                             redfish: tuple[str, str, str]) -> None:
    bmc, system, image = redfish
    # 1. A release that breaks every host; the real gate halts the rollout.
    fleet = Fleet(db, clock, _hosts(30), ArtifactStore(tmp_path / "artifacts"))
    rid = start(fleet, fleet.release("291"), ALWAYS_OPEN.replace("max_rate_per_minute: 2", "max_rate_per_minute: 1"))
    fleet.broken = lambda _h: True
    state = fleet.run(rid, minutes=60, until=lambda s: s in ("halted", "rolling_back", "rolled_back"))
    exposed = sorted(fleet.exposed(rid))
    assert exposed and state != "completed"
    fleet.down = set(exposed)  # they boot-loop: silent from now on
    clock.advance(minutes=30)
    fleet.heartbeat(rid)

    admin_token = ensure_admin_token(db, clock=clock)
    assert admin_token is not None
    tina, _ = create_token(db, name="tina", role="technician", actor=BOOT, clock=clock)
    tom, _ = create_token(db, name="tom", role="technician", actor=BOOT, clock=clock)
    creds = {h: issue_credential(db, h, actor=BOOT, clock=clock) for h in exposed}
    settings = Settings(database_url=db_url, data_dir=tmp_path / "var", reconcile_interval_seconds=0,
                        recovery_key=Fernet.generate_key().decode())
    runbooks = (ROOT / "examples" / "recovery" / "default.yaml").read_text()
    runbooks = runbooks.replace("remove-channel-file.yml", "fix-marker.yml").replace(
        "http://127.0.0.1:8080/rescue.iso", image)
    (tmp_path / "runbooks.yaml").write_text(runbooks)

    with _Serve(create_app(settings, db=db, clock=clock)) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        def call(method: str, path: str, token: str, **kw: Any) -> httpx.Response:
            return http.request(method, path, headers={"Authorization": f"Bearer {token}", **kw.pop("headers", {})},
                                **kw)

        # Bad runbook YAML: 422 naming the field; nothing created.
        bad = call("POST", "/v1/recovery/campaigns", admin_token,
                   json={"name": "bad", "runbooks": runbooks.replace("path: redfish", "path: redfsh"), "from_rollout": rid})
        assert bad.status_code == 422 and any(e["field"].endswith(".path") for e in bad.json()["errors"])
        assert call("GET", "/v1/recovery/campaigns", admin_token).json()["campaigns"] == []

        # 2. The campaign from the halted rollout, planned.
        made = call("POST", "/v1/recovery/campaigns", admin_token,
                    json={"name": "channel 291", "runbooks": runbooks, "from_rollout": rid})
        assert made.status_code == 201, made.text
        cid = made.json()["id"]
        assert made.json()["hosts"] == len(exposed) and made.json()["paths"] == {"redfish": len(exposed)}
        plan = call("GET", f"/v1/recovery/campaigns/{cid}/plan", admin_token).json()
        assert plan["to_do"] == len(exposed) and plan["eta_hours"] > 0 and plan["waves"]
        keys = "Hostname,KeyID,RecoveryKey\n" + "".join(f"SRV{h[3:]},{{k-{h}}},{KEY}\n" for h in exposed)
        assert call("POST", "/v1/recovery/keys", admin_token, content=keys.encode(),
                    headers={"Content-Type": "text/csv"}).json() == {"keys": len(exposed)}
        first = exposed[0]
        assert call("POST", f"/v1/recovery/campaigns/{cid}/assign", admin_token,
                    json={"hosts": [first], "technician": "tina"}).status_code == 200

        # 3. Technicians: tina sees her work orders only; tom sees none and gets no key.
        mine = call("GET", f"/v1/recovery/campaigns/{cid}", tina).json()
        assert [h["host_id"] for h in mine["hosts"]] == [first]
        assert call("GET", f"/v1/recovery/campaigns/{cid}", tom).json()["hosts"] == []
        assert call("GET", f"/v1/recovery/campaigns/{cid}/plan", tina).status_code == 403
        assert call("GET", "/v1/hosts", tina).status_code == 403
        assert call("POST", f"/v1/recovery/campaigns/{cid}/hosts/{first}/mark", tina, json={"state": "start"}).is_success
        shown = call("POST", f"/v1/recovery/campaigns/{cid}/hosts/{first}/reveal-key", tina)
        assert shown.status_code == 200 and shown.json()["recovery_key"] == KEY
        assert shown.headers["cache-control"] == "no-store"
        refused = call("POST", f"/v1/recovery/campaigns/{cid}/hosts/{first}/reveal-key", tom)
        assert refused.status_code == 403 and "not in a work order assigned to you" in refused.json()["detail"]
        page = call("GET", f"/v1/recovery/campaigns/{cid}/hosts/{first}/work-order?reveal=true", tina)
        assert page.status_code == 200 and "<svg" in page.text and KEY in page.text

        # 4. The runbook's steps through the engines: Redfish against sushy-tools, ansible-runner on localhost.
        bad_file = tmp_path / "C-00000291-00000000-00000032.sys"
        bad_file.write_bytes(b"\0" * 32)
        env = {"RINGFENCE_SERVER_URL": srv.url, "RINGFENCE_TOKEN": admin_token}
        runner = CliRunner()
        for step in (1, 2, 3):
            res = runner.invoke(cli_app, ["recovery", "run", cid, first, "--runbooks", str(tmp_path / "runbooks.yaml"),
                                          "--step", str(step), "--bmc", bmc, "--system", system], env=env)
            assert res.exit_code == 0, res.output
        boot = httpx.get(f"{bmc}/redfish/v1/Systems/{system}").json()["Boot"]
        assert boot["BootSourceOverrideTarget"] == "Cd"
        res = runner.invoke(cli_app, ["recovery", "run", cid, first, "--runbooks", str(tmp_path / "runbooks.yaml"),
                                      "--step", "4", "--playbooks", str(FIXTURES), "-e", f"bad_file={bad_file}"], env=env)
        assert res.exit_code == 0, res.output
        assert not bad_file.exists()  # the playbook really ran
        with db.transaction() as conn:
            steps = [e for e in recovery_store.events(conn, cid, host_id=first) if e["kind"] == "step"]
        assert any("runner_on_ok" in e["message"] for e in steps)  # ansible-runner's event stream arrived
        assert any(e["details"].get("action") == "insert_media" for e in steps)

        # 5. Only the host's own heartbeat verifies it; a heartbeat on the bad version does not.
        assert call("POST", f"/v1/recovery/campaigns/{cid}/hosts/{first}/mark", tina, json={"state": "fixed"}).is_success
        assert call("POST", f"/v1/recovery/campaigns/{cid}/hosts/{first}/mark", tina,
                    json={"state": "verified"}).status_code == 422
        for version, expected in (("291", "fixed"), ("290", "verified")):  # the bad release does not count
            clock.advance(minutes=2)
            beat = http.post("/v1/health", headers={"Authorization": f"Bearer {creds[first]}"},
                             json={"host_id": first, "at": clock().astimezone(UTC).isoformat(),
                                   "versions": {"falcon-content": version}})
            assert beat.status_code == 202, beat.text
            view = call("GET", f"/v1/recovery/campaigns/{cid}", admin_token).json()
            assert {h["host_id"]: h["state"] for h in view["hosts"]}[first] == expected
        csv_text = call("GET", f"/v1/recovery/campaigns/{cid}/export.csv", admin_token).text
        assert csv_text.startswith("host_id,") and KEY not in csv_text
        report = call("GET", f"/v1/recovery/campaigns/{cid}/report", admin_token)
        assert report.status_code == 200 and "channel 291" in report.text
        assert call("POST", f"/v1/recovery/campaigns/{cid}/close", admin_token).is_success
        closed = call("POST", f"/v1/recovery/campaigns/{cid}/hosts/{first}/reveal-key", tina)
        assert closed.status_code == 403 and "closed" in closed.json()["detail"]
