"""The `ringfence recovery` verbs end to end in-process: create from a host file, a selector and a halted rollout,
bad runbook YAML refused naming the field with nothing created, list / show / plan / assign / mark / import-keys /
reveal-key / export / report / close — the real CLI code against the real app over its ASGI transport, on the
test database, with roles enforced by the server (a technician's token for its own work orders)."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ringfence.adapters.api.app import create_app
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import recovery as recovery_store
from ringfence.cli import recovery_cli
from ringfence.cli.client import ApiClient
from ringfence.cli.main import app
from ringfence.config import Settings
from ringfence.domain.access import Role
from ringfence.domain.model import Host, HostId, Inventory, OsFamily, Platform, TenantId
from ringfence.errors import InputError, RingfenceError
from ringfence.services import inventory
from ringfence.services.context import Actor
from ringfence.services.tokens import create_token, ensure_admin_token
from tests.conftest import FakeClock
from tests.test_recovery_campaigns import KEY, RUNBOOKS, _setup, halted_rollout

BOOT = Actor(name="boot", role=Role.ADMIN)


@pytest.fixture
def cli(db: Database, db_url: str, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CliRunner, dict[str, str]]]:
    """The CLI against an app with a key source (RINGFENCE_RECOVERY_KEY); the token is chosen per call."""
    settings = Settings(database_url=db_url, data_dir=tmp_path / "var", reconcile_interval_seconds=0,
                        recovery_key=Fernet.generate_key().decode())
    admin = ensure_admin_token(db, clock=clock)
    assert admin is not None
    tokens = {"admin": admin, "tina": create_token(db, name="tina", role="technician", actor=BOOT, clock=clock)[0],
              "tom": create_token(db, name="tom", role="technician", actor=BOOT, clock=clock)[0]}
    with TestClient(create_app(settings, db=db, clock=clock)) as client:
        transport = client._transport  # real routes, roles and audit, no server process

        def api(_config: object, _server: object, token: str | None) -> ApiClient:
            return ApiClient("http://testserver", token or tokens["admin"], transport=transport)

        monkeypatch.setattr(recovery_cli, "_client", api)
        yield CliRunner(), tokens


def _run(cli: tuple[CliRunner, dict[str, str]], *args: str, who: str = "admin", code: int = 0) -> str:
    """Output of one verb; a RingfenceError counts as ringfence.cli.main.main() maps it (2 bad input, 1 otherwise)."""
    runner, tokens = cli
    result = runner.invoke(app, ["recovery", *args, "--token", tokens[who]])
    got, text = result.exit_code, result.output
    if isinstance(result.exception, RingfenceError):
        got = 2 if isinstance(result.exception, InputError) else 1
        text += "\n".join([str(result.exception), *(str(i) for i in getattr(result.exception, "issues", []))])
    assert got == code, (args, text, result.exception)
    return text


def test_recovery_verbs_from_create_to_close(cli: tuple[CliRunner, dict[str, str]], db: Database, clock: FakeClock,
                                             tmp_path: Path) -> None:
    _setup(db, clock, n=6)
    bad = tmp_path / "bad.yaml"
    bad.write_text(RUNBOOKS.replace("path: reimage", "path: reimag", 1))
    (tmp_path / "hosts.txt").write_text("pc00\npc01\n\npc02\n")
    refused = _run(cli, "create", "--name", "bad", "--runbooks", str(bad), "--hosts", str(tmp_path / "hosts.txt"),
                   code=2)
    assert re.search(r"runbooks\[\d+\]\.path: is .reimag.", refused), refused
    assert json.loads(_run(cli, "list", "--json"))["campaigns"] == []  # nothing was created

    from_file = json.loads(_run(cli, "create", "--name", "from a file", "--hosts", str(tmp_path / "hosts.txt"),
                                "--json"))
    assert from_file["hosts"] == 3 and from_file["source"] == "hosts"
    by_selector = _run(cli, "create", "--name", "verified keys", "--where", "recovery_key_verified=true")
    assert re.search(r"campaign \S+: 3 hosts \(", by_selector), by_selector
    cid = from_file["id"]
    assert "verified keys" in _run(cli, "list") and "from a file" in _run(cli, "list")
    planned = _run(cli, "plan", cid)
    assert "fra-1" in planned, planned

    assert "assigned 2 hosts to tina" in _run(cli, "assign", cid, "pc00", "pc02", "--technician", "tina")
    keys = tmp_path / "keys.csv"
    keys.write_text(f"Hostname,KeyID,RecoveryKey\nPC00,{{k-00}},{KEY}\nPC02,{{k-02}},{KEY}\n")
    assert "imported 2 recovery keys (encrypted)" in _run(cli, "import-keys", str(keys))
    mine = _run(cli, "show", cid, who="tina")
    assert "pc00" in mine and "pc02" in mine and "pc01" not in mine  # a technician sees its own work orders only
    assert "pc00: in progress" in _run(cli, "mark", cid, "pc00", "start", "--message", "USB key in", who="tina")
    assert _run(cli, "show", cid, who="tom").count("pc0") == 0
    refused_mark = _run(cli, "mark", cid, "pc00", "fixed", who="tom", code=1)
    assert "not in a work order assigned to tom" in refused_mark
    revealed = _run(cli, "reveal-key", cid, "pc00", who="tina")
    assert f"pc00 key {{k-00}}: {KEY}" in revealed
    assert "not in a work order" in _run(cli, "reveal-key", cid, "pc00", who="tom", code=1)
    page = tmp_path / "pc02.html"
    _run(cli, "reveal-key", cid, "pc02", "--work-order", str(page), who="tina")
    assert "<svg" in page.read_text() and KEY in page.read_text()  # the key as a QR code for a scanner

    exported = tmp_path / "orders.csv"
    _run(cli, "export", cid, "-o", str(exported))
    rows = list(csv.DictReader(io.StringIO(exported.read_text())))
    assert {r["host_id"] for r in rows} == {"pc00", "pc01", "pc02"} and KEY not in exported.read_text()
    report = tmp_path / "report.html"
    _run(cli, "report", cid, "-o", str(report))
    assert "from a file" in report.read_text()
    assert f"closed {cid}" in _run(cli, "close", cid, "--reason", "done")
    assert "closed" in _run(cli, "reveal-key", cid, "pc00", who="tina", code=1)


def test_create_from_a_halted_rollout(cli: tuple[CliRunner, dict[str, str]], db: Database, clock: FakeClock,
                                      tmp_path: Path) -> None:
    rid, exposed = halted_rollout(db, clock, tmp_path, n=40)
    made = json.loads(_run(cli, "create", "--name", "channel 291", "--from-rollout", rid, "--json"))
    assert made["source"] == "rollout" and made["hosts"] == len(exposed)
    shown = json.loads(_run(cli, "show", made["id"], "--json"))
    assert {h["host_id"] for h in shown["hosts"]} == exposed


def test_cloud_steps_are_printed_as_the_providers_commands_and_never_recorded_as_done(
        cli: tuple[CliRunner, dict[str, str]], db: Database, clock: FakeClock) -> None:
    """`recovery run` on a cloud VM prints Azure's `az vm repair`, AWS's SSM rescue workflow or gce-rescue for that VM,
    records "generated (dry run, not executed)" in the campaign and leaves the host where it was; a VM named too
    little for its provider is refused naming the missing --vm field, and nothing is recorded."""
    vms = tuple(Host(id=HostId(f"vm-{p}"), hostname=f"VM-{p.upper()}", tenant=TenantId("acme"),
                     os_family=OsFamily.WINDOWS, platform=Platform.CLOUD, cloud_provider=p, site="fra-1",
                     timezone="Europe/Berlin") for p in ("azure", "aws", "gcp"))
    inventory.import_inventory(db, Inventory(hosts=vms), actor=BOOT, clock=clock)
    cid = json.loads(_run(cli, "create", "--name", "cloud", "--where", "platform=cloud", "--json"))["id"]
    shown = {h["host_id"]: h for h in json.loads(_run(cli, "show", cid, "--json"))["hosts"]}
    assert {h: v["path"] for h, v in shown.items()} == dict.fromkeys(("vm-azure", "vm-aws", "vm-gcp"), "cloud_rescue")

    azure = _run(cli, "run", cid, "vm-azure", "--vm", "name=VM-AZURE", "--vm", "resource_group=rg-prod")
    assert "az vm repair create -g rg-prod -n VM-AZURE" in azure
    assert "az vm repair run -g rg-prod -n VM-AZURE --run-id win-crowdstrike-fix-bootloop --run-on-repair" in azure
    assert "az vm repair restore -g rg-prod -n VM-AZURE" in azure
    aws = _run(cli, "run", cid, "vm-aws", "--vm", "instance_id=i-0abc")
    assert "aws ssm start-automation-execution --document-name AWSSupport-StartEC2RescueWorkflow" in aws
    assert "InstanceId=i-0abc" in aws
    script = re.search(r"OfflineScript=([A-Za-z0-9+/=]+)", aws)
    assert script is not None, aws  # the fix itself, base64 as the runbook takes it, not a placeholder
    fix = base64.b64decode(script.group(1)).decode()
    assert "$env:EC2RESCUE_OFFLINE_DRIVE" in fix and "C-00000291*.sys" in fix and "Remove-Item" in fix
    missing = _run(cli, "run", cid, "vm-gcp", "--vm", "name=VM-GCP", code=2)
    assert "vm.zone: is missing" in missing and "vm.project: is missing" in missing, missing
    gcp = _run(cli, "run", cid, "vm-gcp", "--vm", "name=VM-GCP", "--vm", "zone=europe-west3-a", "--vm", "project=p1")
    assert "gce-rescue rescue VM-GCP --zone=europe-west3-a --project=p1 --quiet" in gcp
    assert "gce-rescue restore VM-GCP --zone=europe-west3-a --project=p1 --quiet" in gcp

    with db.transaction() as conn:
        steps = [e for e in recovery_store.events(conn, cid) if e["kind"] == "step"]
    assert sorted(e["host_id"] for e in steps) == ["vm-aws", "vm-azure", "vm-gcp"]  # the refused run left nothing
    assert all("generated (dry run, not executed)" in e["message"] for e in steps)
    after = {h["host_id"]: h["state"] for h in json.loads(_run(cli, "show", cid, "--json"))["hosts"]}
    assert set(after.values()) == {"queued"}  # printed commands are not a fix: nobody's state moved
