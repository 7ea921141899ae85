"""Recovery campaign events through the notifier port to a real HTTP receiver on 127.0.0.1 (SQLite and
PostgreSQL): created, planned, milestones 50/90/100 % (each once), re-planned when the ETA moves, closed, and
hosts changing state (one notification per committed change)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from ringfence.adapters.db.engine import Database
from ringfence.adapters.notify import OutboxNotifier
from ringfence.domain.access import Role
from ringfence.domain.recovery_campaign import milestones_crossed
from ringfence.errors import PermissionDeniedError
from ringfence.services import notifications
from ringfence.services import recovery as svc
from ringfence.services.context import Actor
from ringfence.services.health import HealthIngest, HealthReport
from ringfence.services.tokens import create_token
from tests.api_support import Api
from tests.conftest import FakeClock
from tests.notify_support import Receiver, signature_ok
from tests.rollout_harness import OPERATOR
from tests.servers import free_port
from tests.test_recovery_campaigns import RUNBOOKS, _setup

SECRET = "recovery-hook-secret"
RULES = """
tenant: ""
notify:
  targets:
    hook: {{webhook: "http://127.0.0.1:{port}/recovery", secret_env: RF_RECOVERY_SECRET}}
  rules:
    - events: [recovery.created, recovery.planned, recovery.milestone, recovery.closed]
      targets: [hook]
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    yield r
    r.close()


def _received(receiver: Receiver) -> list[tuple[str, dict[str, object]]]:
    out = []
    for _, headers, body in receiver.requests:
        assert signature_ok(SECRET, headers, body)
        out.append((headers["x-ringfence-event"], json.loads(body)))
    return out


def test_milestones_each_once_in_order() -> None:
    assert milestones_crossed(4, 10, []) == []
    assert milestones_crossed(5, 10, []) == [50]
    assert milestones_crossed(10, 10, [50]) == [90, 100]
    assert milestones_crossed(10, 10, [50, 90, 100]) == []
    assert milestones_crossed(0, 0, []) == []


def test_campaign_state_changes_reach_a_webhook(db: Database, clock: FakeClock, admin: Actor,
                                                receiver: Receiver) -> None:
    _setup(db, clock, n=5)
    notifications.apply_rules(db, RULES.format(port=receiver.port), actor=admin, clock=clock)
    notifier = OutboxNotifier(db, clock, env={"RF_RECOVERY_SECRET": SECRET}, max_attempts=2, timeout_seconds=2.0)
    try:
        c = svc.create_campaign(db, actor=OPERATOR, clock=clock, name="july", runbooks=RUNBOOKS,
                                hosts=["pc00", "pc01", "pc02", "pc04"], notifier=notifier)
        cid = c["id"]
        assert notifier.run_once() == 2
        got = _received(receiver)
        assert [e for e, _ in got] == ["recovery.created", "recovery.planned"]
        created, planned = got[0][1], got[1][1]
        assert created["subject"] == f"recovery/{cid}" and created["details"]["hosts"] == 4
        assert planned["details"]["eta_hours"] > 0 and "ETA" in planned["title"]
        # A re-plan with the same ETA says nothing new.
        svc.plan(db, cid, actor=OPERATOR, clock=clock, notifier=notifier)
        assert notifier.run_once() == 0
        ingest = HealthIngest(db, clock)
        for host in ("pc00", "pc02"):  # two of four back by themselves: 50 %
            svc.assign(db, cid, [host], "tina", actor=OPERATOR, clock=clock)
        clock.advance(minutes=2)
        for host in ("pc00", "pc02"):
            ingest.submit(host, HealthReport(host_id=host, at=clock(), versions={"falcon-content": "290"}))
        ingest.flush()
        svc.show(db, cid, actor=OPERATOR, clock=clock, notifier=notifier)
        svc.show(db, cid, actor=OPERATOR, clock=clock, notifier=notifier)  # no second 50 %
        notifier.run_once()
        clock.advance(minutes=2)
        for host in ("pc01", "pc04"):
            ingest.submit(host, HealthReport(host_id=host, at=clock(), versions={"falcon-content": "290"}))
        ingest.flush()
        svc.plan(db, cid, actor=OPERATOR, clock=clock, notifier=notifier)  # 90 % and 100 % at once
        svc.close(db, cid, actor=OPERATOR, clock=clock, reason="all back", notifier=notifier)
        notifier.run_once()
    finally:
        notifier.stop()
    got = _received(receiver)
    events = [e for e, _ in got]
    milestones = [b["details"]["percent"] for e, b in got if e == "recovery.milestone"]
    assert milestones == [50, 90, 100]
    assert events[-1] == "recovery.closed"
    closed = got[-1][1]
    assert closed["details"]["verified"] == 4 and "all back" in closed["text"]
    # Everyone verified: the re-plan's ETA moved (nothing left to do), so it was announced once more.
    assert events.count("recovery.planned") == 2
    log = notifications.deliveries(db, actor=admin)
    assert {d.state for d in log} == {"delivered"} and len(log) == len(got)


HOST_RULES = RULES.replace("[recovery.created, recovery.planned, recovery.milestone, recovery.closed]",
                           "[recovery.hosts]")


def test_every_host_state_change_is_told_once_per_committed_change(db: Database, clock: FakeClock, admin: Actor,
                                                                   receiver: Receiver) -> None:
    """An assignment of two hosts is one ``recovery.hosts``; a technician's mark another, naming the host and its
    move; the heartbeats that verify two hosts a third (by "heartbeat"); a read that changes nothing tells nothing."""
    _setup(db, clock, n=5)
    notifications.apply_rules(db, HOST_RULES.format(port=receiver.port), actor=admin, clock=clock)
    notifier = OutboxNotifier(db, clock, env={"RF_RECOVERY_SECRET": SECRET}, max_attempts=2, timeout_seconds=2.0)
    tina = Actor(name="tina", role=Role.TECHNICIAN)
    try:
        cid = svc.create_campaign(db, actor=OPERATOR, clock=clock, name="july", runbooks=RUNBOOKS,
                                  hosts=["pc00", "pc01", "pc02"], notifier=notifier)["id"]
        assert notifier.run_once() == 0  # created and planned: not what this rule selects
        svc.assign(db, cid, ["pc00", "pc01"], "tina", actor=OPERATOR, clock=clock, notifier=notifier)
        svc.mark(db, cid, "pc00", "start", actor=tina, clock=clock, message="USB key in", notifier=notifier)
        with pytest.raises(PermissionDeniedError):  # refused: nothing changed, nothing told
            svc.mark(db, cid, "pc02", "start", actor=tina, clock=clock, notifier=notifier)
        clock.advance(minutes=2)
        ingest = HealthIngest(db, clock)
        for host in ("pc00", "pc01"):
            ingest.submit(host, HealthReport(host_id=host, at=clock(), versions={"falcon-content": "290"}))
        ingest.flush()
        svc.show(db, cid, actor=OPERATOR, clock=clock, notifier=notifier)
        svc.show(db, cid, actor=OPERATOR, clock=clock, notifier=notifier)  # nothing new
        notifier.run_once()
    finally:
        notifier.stop()
    got = [body for event, body in _received(receiver) if event == "recovery.hosts"]
    assert len(got) == len(_received(receiver)) == 3, got
    assigned, started, verified = (g["details"] for g in got)
    assert assigned == {"campaign": cid, "hosts": 2, "by": OPERATOR.name, "to.assigned": 2}
    assert started["host"] == "pc00" and (started["from"], started["to"], started["by"]) == ("assigned", "in_progress",
                                                                                           "tina")
    assert "pc00 in progress" in str(got[1]["title"]) and "USB key in" in str(got[1]["text"])
    assert verified == {"campaign": cid, "hosts": 2, "by": "heartbeat", "to.verified": 2}
    assert "pc00, pc01" in str(got[2]["text"]) and all(g["subject"] == f"recovery/{cid}" for g in got)


def test_the_api_routes_tell_host_changes_through_the_apps_notifier(api: Api, db: Database, clock: FakeClock,
                                                                    admin: Actor) -> None:
    """POST …/assign and …/mark hand their change to the app's notifier: it is in the delivery log."""
    _setup(db, clock, n=3)
    notifications.apply_rules(db, HOST_RULES.format(port=free_port()), actor=admin, clock=clock)
    cid = svc.create_campaign(db, actor=OPERATOR, clock=clock, name="api", runbooks=RUNBOOKS, hosts=["pc00"])["id"]
    tina_token, _ = create_token(db, name="tina", role="technician", actor=admin, clock=clock)
    assert api.call("POST", f"/v1/recovery/campaigns/{cid}/assign", role="operator",
                    json={"hosts": ["pc00"], "technician": "tina"}).status_code == 200
    marked = api.call("POST", f"/v1/recovery/campaigns/{cid}/hosts/pc00/mark", role="",
                      headers={"Authorization": f"Bearer {tina_token}"}, json={"state": "start"})
    assert marked.status_code == 200, marked.text
    for _ in range(100):  # the app's notifier writes its outbox rows from its worker thread
        told = [d for d in notifications.deliveries(db, actor=admin) if d.event == "recovery.hosts"]
        if len(told) == 2:
            break
        time.sleep(0.1)
    assert sorted(d.subject for d in told) == [f"recovery/{cid}"] * 2, told


def test_without_a_notifier_the_log_notifier_hears_it(db: Database, clock: FakeClock,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    _setup(db, clock, n=2)
    with caplog.at_level("WARNING", logger="ringfence.notify"):
        c = svc.create_campaign(db, actor=OPERATOR, clock=clock, name="july", runbooks=RUNBOOKS, hosts=["pc00"])
        svc.close(db, c["id"], actor=OPERATOR, clock=clock)
    said = [r.getMessage().split(" ")[0] for r in caplog.records]
    assert said == ["recovery.created", "recovery.planned", "recovery.closed"]
