"""Recovery campaigns through the real services and database (SQLite and PostgreSQL): create, plan, states, keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.adapters.db.stores import recovery as recovery_store
from ringfence.domain.access import Role
from ringfence.domain.assessment import Fleet as AssessFleet
from ringfence.domain.assessment import assess
from ringfence.domain.model import DiskEncryption, Host, HostId, Inventory, OsFamily, TenantId
from ringfence.errors import ConflictError, InputError, PermissionDeniedError
from ringfence.services import inventory
from ringfence.services import recovery as svc
from ringfence.services.context import Actor
from ringfence.services.health import HealthIngest, HealthReport
from tests.conftest import FakeClock
from tests.rollout_harness import ALWAYS_OPEN, OPERATOR, Fleet, make_hosts, start

RUNBOOKS = (Path(__file__).resolve().parents[1] / "examples" / "recovery" / "default.yaml").read_text()
TECH = Actor(name="tina", role=Role.TECHNICIAN, source="127.0.0.1")
OTHER = Actor(name="tom", role=Role.TECHNICIAN, source="127.0.0.1")
KEY = "123456-" * 7 + "654321"


def _hosts(n: int) -> list[Host]:
    return [Host(id=HostId(f"pc{i:02d}"), hostname=f"PC{i:02d}", tenant=TenantId("acme"), os_family=OsFamily.WINDOWS,
                 site="fra-1", timezone="Europe/Berlin", encryption=DiskEncryption.BITLOCKER,
                 recovery_key_escrowed=True, recovery_key_verified=i % 2 == 0) for i in range(n)]


def _setup(db: Database, clock: FakeClock, n: int = 6) -> None:
    inventory.import_inventory(db, Inventory(hosts=tuple(_hosts(n))), actor=OPERATOR, clock=clock)


def _audit(db: Database, action: str) -> list[str]:
    with db.transaction() as conn:
        return [e.target for e in audit_store.list_entries(conn, limit=1000, action=action)]


def test_create_from_hosts_and_selector_classifies_by_runbook(db: Database, clock: FakeClock) -> None:
    _setup(db, clock)
    c = svc.create_campaign(db, actor=OPERATOR, clock=clock, name="july", runbooks=RUNBOOKS, hosts=["pc00", "pc01"])
    assert c["hosts"] == 2 and c["paths"] == {"key_unlock": 1, "reimage": 1}
    s = svc.create_campaign(db, actor=OPERATOR, clock=clock, name="sel", runbooks=RUNBOOKS,
                            where="recovery_key_verified=true")
    assert s["hosts"] == 3
    view = svc.show(db, c["id"], actor=OPERATOR, clock=clock)
    assert view["counts"] == {"queued": 2}
    assert {h["host_id"]: h["runbook"] for h in view["hosts"]} == {"pc00": "pc-key", "pc01": "reimage"}
    p = svc.plan(db, c["id"], actor=OPERATOR, clock=clock)
    # Two technicians (default): the 4-minute unlock and the 90-minute reimage run side by side.
    assert p["eta_hours_by_site"] == {"fra-1": pytest.approx(94 / 2 / 60, abs=1e-3)}
    assert p["to_do"] == 2 and p["waves"][0]["hosts"] == 2


def test_bad_input_names_the_field_and_changes_nothing(db: Database, clock: FakeClock) -> None:
    _setup(db, clock)
    bad = RUNBOOKS.replace("path: reimage", "path: reimagine")
    with pytest.raises(InputError) as e:
        svc.create_campaign(db, actor=OPERATOR, clock=clock, name="x", runbooks=bad, hosts=["pc00"])
    assert any(i.field.endswith(".path") for i in e.value.issues)
    with pytest.raises(InputError) as e:
        svc.create_campaign(db, actor=OPERATOR, clock=clock, name="x", runbooks=RUNBOOKS, hosts=["pc00", "nope"])
    assert e.value.issues[0].field == "hosts" and "nope" in e.value.issues[0].message
    with pytest.raises(InputError):
        svc.create_campaign(db, actor=OPERATOR, clock=clock, name="x", runbooks=RUNBOOKS, where="site=mars")
    with pytest.raises(InputError) as e:
        svc.create_campaign(db, actor=OPERATOR, clock=clock, name="x", runbooks="runbooks: [", hosts=["pc00"])
    assert e.value.issues[0].field == "runbooks"
    with db.transaction() as conn:
        assert recovery_store.list_campaigns(conn) == []


def test_states_only_a_heartbeat_verifies(db: Database, clock: FakeClock) -> None:
    _setup(db, clock)
    c = svc.create_campaign(db, actor=OPERATOR, clock=clock, name="july", runbooks=RUNBOOKS, hosts=["pc00", "pc02"])
    cid = c["id"]
    svc.assign(db, cid, ["pc00"], "tina", actor=OPERATOR, clock=clock)
    with pytest.raises(PermissionDeniedError):
        svc.mark(db, cid, "pc00", "start", actor=OTHER, clock=clock)  # not tom's work order
    with pytest.raises(PermissionDeniedError):
        svc.assign(db, cid, ["pc02"], "tina", actor=TECH, clock=clock)  # technicians do not assign
    svc.mark(db, cid, "pc00", "start", actor=TECH, clock=clock)
    with pytest.raises(InputError) as e:
        svc.mark(db, cid, "pc00", "verified", actor=TECH, clock=clock)
    assert "heartbeat" in e.value.issues[0].expected
    with pytest.raises(ConflictError):
        svc.mark(db, cid, "pc00", "escalate", actor=TECH, clock=clock)  # only a failed host escalates
    clock.advance(minutes=5)
    svc.mark(db, cid, "pc00", "fixed", actor=TECH, clock=clock)
    # The technician only sees its own work orders.
    assert [h["host_id"] for h in svc.show(db, cid, actor=TECH, clock=clock)["hosts"]] == ["pc00"]
    with pytest.raises(PermissionDeniedError):
        svc.list_campaigns(db, actor=TECH) and svc.plan(db, cid, actor=TECH, clock=clock)
    assert svc.show(db, cid, actor=OPERATOR, clock=clock)["counts"] == {"fixed": 1, "queued": 1}
    ingest = HealthIngest(db, clock)
    clock.advance(minutes=1)
    ingest.submit("pc00", HealthReport(host_id="pc00", at=clock(), versions={"falcon-content": "290"}))
    ingest.flush()
    view = svc.show(db, cid, actor=OPERATOR, clock=clock)
    assert view["counts"] == {"queued": 1, "verified": 1}
    with db.transaction() as conn:
        kinds = [(e["state_from"], e["state_to"], e["actor"]) for e in recovery_store.events(conn, cid, host_id="pc00")]
    assert kinds[-1] == ("fixed", "verified", "heartbeat")
    assert svc.plan(db, cid, actor=OPERATOR, clock=clock)["to_do"] == 1


def test_keys_encrypted_revealed_only_to_the_assigned_technician(db: Database, clock: FakeClock) -> None:
    _setup(db, clock)
    vault = svc.KeyVault(Fernet.generate_key().decode())
    csv_text = f"Hostname,KeyID,RecoveryKey\nPC00,{{k-00}},{KEY}\nPC02,{{k-02}},{KEY.replace('1', '2')}\n"
    with pytest.raises(InputError) as e:
        svc.import_keys(db, csv_text + "PC99,{k},not-a-key\n", vault, actor=Actor("a", Role.ADMIN), clock=clock)
    assert {i.field for i in e.value.issues} == {"Hostname", "RecoveryKey"}
    assert svc.import_keys(db, csv_text, vault, actor=Actor("a", Role.ADMIN), clock=clock) == 2
    with db.transaction() as conn:
        kid, cipher = recovery_store.key_of(conn, "pc00") or ("", "")
    assert kid == "{k-00}" and KEY not in cipher  # encrypted at rest
    c = svc.create_campaign(db, actor=OPERATOR, clock=clock, name="july", runbooks=RUNBOOKS,
                            hosts=["pc00", "pc02", "pc04"])
    cid = c["id"]
    svc.assign(db, cid, ["pc00", "pc02"], "tina", actor=OPERATOR, clock=clock)
    got = svc.reveal_key(db, cid, "pc00", vault, actor=TECH, clock=clock)
    assert got["recovery_key"] == KEY and got["key_id"] == "{k-00}"
    with pytest.raises(PermissionDeniedError, match="not in a work order assigned to you"):
        svc.reveal_key(db, cid, "pc00", vault, actor=OTHER, clock=clock)
    with pytest.raises(PermissionDeniedError, match="not in a work order"):
        svc.reveal_key(db, cid, "pc04", vault, actor=TECH, clock=clock)  # in the campaign, not assigned to tina
    for _ in range(svc.REVEAL_LIMIT - 1):
        svc.reveal_key(db, cid, "pc02", vault, actor=TECH, clock=clock)
    with pytest.raises(PermissionDeniedError, match="rate limit"):
        svc.reveal_key(db, cid, "pc02", vault, actor=TECH, clock=clock)
    clock.advance(minutes=61)
    svc.reveal_key(db, cid, "pc02", vault, actor=TECH, clock=clock)
    svc.close(db, cid, actor=OPERATOR, clock=clock)
    with pytest.raises(PermissionDeniedError, match="closed"):
        svc.reveal_key(db, cid, "pc02", vault, actor=TECH, clock=clock)
    assert len(_audit(db, "recovery.key.reveal")) == svc.REVEAL_LIMIT + 1
    assert len(_audit(db, "recovery.key.refused")) == 4
    with db.transaction() as conn:
        entries = audit_store.list_entries(conn, limit=1000)
    assert all(KEY not in str(e.details) and KEY not in e.reason for e in entries)  # never the key itself


def halted_rollout(db: Database, clock: FakeClock, tmp_path: Path, n: int = 60) -> tuple[str, set[str]]:
    """A release that breaks every host it reaches, run until the gate stops it; its exposed hosts then boot-loop
    (silent for 30 minutes).  Returns the rollout id and the exposed hosts."""
    fleet = Fleet(db, clock, make_hosts(n), ArtifactStore(tmp_path / "a"))
    rid = start(fleet, fleet.release("291"), ALWAYS_OPEN.replace("max_rate_per_minute: 2", "max_rate_per_minute: 1"))
    fleet.broken = lambda _h: True
    # The gate normally halts within minutes; under heavy machine load it was seen still baking after 60
    # (not understood, see the report), so the campaign is checked on whatever the rollout exposed.
    fleet.run(rid, minutes=60, until=lambda s: s in ("halted", "rolling_back", "rolled_back"))
    exposed = fleet.exposed(rid)
    assert exposed
    clock.advance(minutes=30)
    fleet.down = set(exposed)  # the exposed hosts boot-loop: silent
    fleet.heartbeat(rid)
    return rid, exposed


def test_campaign_from_a_halted_rollout(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    rid, exposed = halted_rollout(db, clock, tmp_path)
    c = svc.create_campaign(db, actor=OPERATOR, clock=clock, name="291", runbooks=RUNBOOKS, from_rollout=rid)
    assert c["source"] == "rollout" and c["hosts"] == len(exposed)
    assert {h["host_id"] for h in svc.show(db, c["id"], actor=OPERATOR, clock=clock)["hosts"]} == exposed


def test_recovery_plan_agrees_with_assess_on_the_same_hosts(db: Database, clock: FakeClock) -> None:
    _setup(db, clock, n=9)
    plain = "runbooks:\n  - {name: any, match: '', path: site_visit, steps: [{name: fix, executor: manual}]}\n"
    c = svc.create_campaign(db, actor=OPERATOR, clock=clock, name="x", runbooks=plain, where="site=fra-1")
    p = svc.plan(db, c["id"], actor=OPERATOR, clock=clock)
    a = assess(AssessFleet(_hosts(9), []), "site=fra-1")
    assert p["eta_hours_by_site"] == pytest.approx(a.recovery.eta_hours_by_site, abs=1e-4)  # JSON rounds to 4 places
