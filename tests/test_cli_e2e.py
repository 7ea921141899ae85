"""End to end through the documented commands: a real server process, the CLI over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ringfence.adapters.db.engine import Database
from ringfence.cli.sim_cli import duration
from ringfence.domain.access import Role
from ringfence.domain.model import Host, HostId, Inventory, OsFamily, TenantId
from ringfence.errors import InputError, NotFoundError
from ringfence.services import inventory
from ringfence.services.context import Actor
from tests.servers import Server, free_port

FIX = Path(__file__).parent / "fixtures" / "inventory"


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[Server]:
    srv = Server(tmp_path, db_url)
    yield srv
    srv.stop()


def test_generate_import_list_and_reject(server: Server, db: Database) -> None:
    """fleet generate → inventory import → hosts list, a malformed CSV rejected, tokens and audit verify."""
    fleet = server.workdir / "fleet.jsonl"
    server.cli("fleet", "generate", "--hosts", "3000", "--seed", "7", "--out", str(fleet))
    imported = json.loads(server.cli("inventory", "import", str(fleet), "--reason", "load", "--json").stdout)
    assert imported["hosts_inserted"] == 3000
    listed = json.loads(server.cli("hosts", "list", "--where", "os_family=windows and agent.vendor=CrowdStrike",
                                   "--all", "--limit", "500", "--json").stdout)
    assert listed["total"] == len(listed["hosts"]) > 0
    assert all(h["os_family"] == "windows" and any(a["vendor"] == "CrowdStrike" for a in h["agents"])
               for h in listed["hosts"])
    table = server.cli("hosts", "list", "--where", "tier=0", "--limit", "5")
    assert "hosts where tier=0" in table.stdout

    with db.engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT count(*), sum(version) FROM hosts").one()
    bad = server.cli("inventory", "import", str(FIX / "hosts.csv"), str(FIX / "bad_hosts.csv"), check=False)
    assert bad.returncode == 2
    assert "bad_hosts.csv row 4: tier: is 7 (expected an integer 0..3)" in bad.stderr
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*), sum(version) FROM hosts").one() == before

    bad_where = server.cli("hosts", "list", "--where", "colour=red", check=False)
    assert bad_where.returncode == 2 and "unknown field 'colour'" in bad_where.stderr

    viewer_token = server.cli("token", "create", "--name", "auditor", "--role", "viewer").stdout.strip()
    viewer = server.cli("inventory", "import", str(FIX / "hosts.csv"), "--token", viewer_token, check=False)
    assert viewer.returncode == 1 and "needs role operator" in viewer.stderr
    assert server.cli("whoami", "--token", viewer_token).stdout.strip() == "auditor (viewer)"

    report, out_json, out_md = (server.workdir / n for n in ("r.html", "r.json", "r.md"))
    assessed = server.cli("assess", "--what-if", "agent.vendor=CrowdStrike", "--report", str(report),
                          "--json", str(out_json), "--markdown", str(out_md))
    assert "what if agent.vendor=CrowdStrike" in assessed.stdout
    doc = json.loads(out_json.read_text())["assessments"][0]
    for key in ("hosts_down", "hosts_down_share", "services_down", "services_degraded", "hhi", "spofs",
                "recovery_hours", "eta_hours_by_site", "rto_breaches", "recommendations"):
        assert key in doc, key
    assert doc["hosts_down"] == len(doc["down_hosts"]) > 0
    html = report.read_text()
    assert "<svg" in html and "https://" not in html
    assert "| " in out_md.read_text()
    ranked = server.cli("assess", "--top", "5")
    assert "top 5 single points of failure" in ranked.stdout
    bad_scenario = server.cli("assess", "--scenario", "agent.vendr=CrowdStrike", check=False)  # the hidden old name
    assert bad_scenario.returncode == 2
    assert "unknown field 'agent.vendr'" in bad_scenario.stderr and "agent.vendor" in bad_scenario.stderr

    verify = server.cli("audit", "verify")
    assert "intact" in verify.stdout
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_log SET reason = 'tampered' WHERE seq = 2")
    broken = server.cli("audit", "verify", check=False)
    assert broken.returncode == 1 and "entry 2" in broken.stderr


def test_cli_without_server_or_token_says_what_to_do(tmp_path: Path) -> None:
    """With no token, or no server, the CLI says which setting to fix and exits non-zero."""
    env = {**os.environ, "RINGFENCE_SERVER_URL": f"http://127.0.0.1:{free_port()}"}
    env.pop("RINGFENCE_TOKEN", None)
    no_token = subprocess.run([sys.executable, "-m", "ringfence.cli", "hosts", "list"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, check=False)
    assert no_token.returncode == 2 and "RINGFENCE_TOKEN" in no_token.stderr
    env["RINGFENCE_TOKEN"] = "rf_x"
    no_server = subprocess.run([sys.executable, "-m", "ringfence.cli", "hosts", "list"], env=env, cwd=tmp_path,
                               capture_output=True, text=True, check=False)
    assert no_server.returncode == 1 and "cannot reach the ringfence server" in no_server.stderr


@pytest.mark.parametrize(("seconds", "words"), [(None, "—"), (float("nan"), "—"), (42.4, "42 s"), (360, "6 min"),
                                                 (14_520, "4 h 2 min"), (7200, "2 h"), (242_820.0, "2 d 19 h")])
def test_simulator_shows_durations_as_durations(seconds: float | None, words: str) -> None:
    """'time to halt s 242,820.00' is '2 d 19 h' in the simulator's table."""
    assert duration(seconds) == words


def test_hosts_show_takes_an_id_a_unique_prefix_or_a_hostname(db: Database) -> None:
    """Tables truncate ids, so a unique start of one is enough; an ambiguous one is refused with the candidates."""
    admin = Actor(name="admin", role=Role.ADMIN)
    hosts = tuple(Host(id=HostId(i), hostname=n, tenant=TenantId("t"), os_family=OsFamily.WINDOWS)
                  for i, n in (("00018818-d198-4f87", "ws-1"), ("00018818-e000-0000", "ws-2"), ("7f00aa", "ws-3")))
    inventory.import_inventory(db, Inventory(hosts=hosts), actor=admin, clock=lambda: datetime(2026, 12, 1, tzinfo=UTC))
    assert inventory.get_host(db, "7f00aa", actor=admin).hostname == "ws-3"          # the id
    assert inventory.get_host(db, "00018818-d1", actor=admin).hostname == "ws-1"     # a unique prefix
    assert inventory.get_host(db, "00018818-d198-4…", actor=admin).hostname == "ws-1"  # as a table shows it
    assert inventory.get_host(db, "WS-2", actor=admin).id == "00018818-e000-0000"    # a hostname
    with pytest.raises(InputError, match=r"matches several hosts: 00018818-d198-4f87 \(ws-1\), 00018818-e000"):
        inventory.get_host(db, "00018818", actor=admin)
    with pytest.raises(NotFoundError, match="a unique start of it, or its hostname"):
        inventory.get_host(db, "nope", actor=admin)
