"""Rollouts through the real services and database (SQLite and PostgreSQL) with a hand-moved clock.

Scenario rows from the issue: a release that breaks every host halts after at
most 3 failing hosts; a good release under noise and a fleet-wide shock is not
halted; missing health data never promotes; paused tenants get nothing; pinned
groups stay; closed windows and holidays expose nobody; budgets hold.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import rollouts as store
from ringfence.domain.model import Inventory, RedundancyGroup, Service, ServiceId, TenantId
from ringfence.errors import AuthenticationError, ConflictError, InputError, PermissionDeniedError
from ringfence.services import inventory, rollouts
from ringfence.services.health import HealthReport, TooManyReports, issue_credential
from ringfence.services.notify import Event, LogNotifier
from tests.conftest import FakeClock
from tests.rollout_harness import ALWAYS_OPEN, APPROVER, OPERATOR, Fleet, make_hosts, start


def _fleet(db: Database, clock: FakeClock, tmp_path: Path, n: int = 200, **kwargs: object) -> Fleet:
    hosts = make_hosts(n, builds=("22631", "26100", "19045"))
    return Fleet(db, clock, hosts, ArtifactStore(tmp_path / "artifacts"), **kwargs)  # type: ignore[arg-type]


def _halt_evidence(db: Database, rid: str) -> dict[str, object]:
    with db.transaction() as conn:
        log = store.decisions(conn, rid)
    halts = [d for d in log if d["evidence"].get("verdict") == "failed"]
    assert halts, [d["message"] for d in log]
    return halts[0]


def _frac(host_id: str, salt: str) -> float:
    return int(hashlib.sha256(f"{salt}:{host_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def test_release_that_breaks_every_host_halts_after_at_most_3_failures(db: Database, clock: FakeClock,
                                                                         tmp_path: Path) -> None:
    """19 July 2024 in miniature: every updated host goes silent; the gate halts and rolls back."""
    fleet = _fleet(db, clock, tmp_path)
    # One new host a minute, so failures arrive one at a time and the count at the halt is exact.
    rid = start(fleet, fleet.release("291"), ALWAYS_OPEN.replace("max_rate_per_minute: 2", "max_rate_per_minute: 1"))
    fleet.broken = lambda _h: True
    state = fleet.run(rid, minutes=60, until=lambda s: s in ("halted", "rolling_back", "rolled_back"))
    assert state in ("rolling_back", "rolled_back")
    halt = _halt_evidence(db, rid)
    # Gate v2's reason names the failing updated hosts: "… N silent events on updated hosts …".
    failing = int(re.search(r"(\d+) silent events? on updated hosts", halt["message"]).group(1))  # type: ignore[union-attr]
    assert failing <= 3, halt["message"]
    exposed = fleet.exposed(rid)
    assert len(exposed) <= 10  # 1 + rate (1/min) × detection latency (grace 5 min + ticks) + 3 failing
    assert "silent" in halt["message"] and "e-value" in halt["message"]
    # The halt reaches hosts as desired state: every exposed host is told to go back to 290.
    host = sorted(exposed)[0]
    assert rollouts.desired_state(db, host)["falcon-content"]["version"] == "290"
    assert rollouts.desired_state(db, host)["falcon-content"]["rollback"] is True
    fleet.run(rid, minutes=2)
    assert rollouts.get_rollout(db, rid).status.state.value == "rolled_back"


def test_good_release_under_noise_and_a_fleet_wide_shock_is_not_halted(db: Database, clock: FakeClock,
                                                                        tmp_path: Path) -> None:
    """Diurnal-like heartbeat loss and a shock that silences 30 % of all hosts for 8 minutes do not halt."""
    fleet = _fleet(db, clock, tmp_path, n=300)
    rid = start(fleet, fleet.release("292"))
    for minute in range(90):
        noise = {h.id for h in fleet.hosts if _frac(h.id, f"noise-{minute}") < 0.03}
        shock = {h.id for h in fleet.hosts if _frac(h.id, "shock") < 0.30} if 20 <= minute < 28 else set()
        fleet.down = noise | shock
        fleet.run(rid, minutes=1)
        state = rollouts.get_rollout(db, rid).status.state.value
        assert state not in ("halted", "rolling_back", "rolled_back"), rollouts.get_rollout(db, rid).status.message
    assert len(fleet.exposed(rid)) > 0


def test_good_release_completes_through_every_wave(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """With a gate tuned to a noisy small fleet, a good release is promoted wave by wave to completion."""
    fleet = _fleet(db, clock, tmp_path, n=120)
    plan = ALWAYS_OPEN.replace("max_streams: 16}", "max_streams: 16, baseline_rate: 2.0, tolerance: 5.0}")
    rid = start(fleet, fleet.release("293"), plan)
    state = fleet.run(rid, minutes=400, step=2, until=lambda s: s == "completed")
    assert state == "completed", rollouts.get_rollout(db, rid).status.message
    assert len(fleet.exposed(rid)) == 120
    with db.transaction() as conn:
        log = store.decisions(conn, rid)
    promotions = [d for d in log if d["message"].startswith("promoted")]
    assert len(promotions) == 1  # two waves: one promotion, then completion


def test_missing_health_data_never_promotes(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """When every heartbeat stops, nothing is exposed or promoted, and the reason says why."""
    fleet = _fleet(db, clock, tmp_path)
    rid = start(fleet, fleet.release("294"))
    fleet.run(rid, minutes=5)
    fleet.down = {h.id for h in fleet.hosts}
    for _ in range(11):  # reports stop; after max_data_age (10 min) the data counts as late
        rollouts.tick(db, rid, clock=clock)
        clock.advance(minutes=1)
    exposed = fleet.exposed(rid)
    for _ in range(120):
        rollouts.tick(db, rid, clock=clock)
        clock.advance(minutes=1)
    view = rollouts.get_rollout(db, rid)
    assert view.status.wave == 0
    assert fleet.exposed(rid) == exposed
    assert view.status.state.value not in ("completed",)
    assert "health data is" in view.status.message or view.status.state.value in ("halted", "rolling_back")


def test_paused_tenant_gets_nothing_and_pins_hold(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """A paused tenant receives nothing; a pinned group stays; both are visible; desired state honours pins."""
    hosts = make_hosts(60, tenant="acme") + make_hosts(30, tenant="globex", prefix="g") + \
        make_hosts(30, tenant="initech", prefix="i")
    fleet = Fleet(db, clock, hosts, ArtifactStore(tmp_path / "a"))
    older = fleet.release("290")
    assert older
    rollouts.set_policy(db, tenant="globex", ring="pause", actor=OPERATOR, clock=clock)
    rollouts.set_policy(db, tenant="initech", pin="n-1", actor=OPERATOR, clock=clock)
    plan = ALWAYS_OPEN.replace("max_streams: 16}", "max_streams: 16, baseline_rate: 2.0, tolerance: 5.0}")
    rid = start(fleet, fleet.release("295"), plan)
    state = fleet.run(rid, minutes=400, step=3, until=lambda s: s == "completed")
    assert state == "completed", rollouts.get_rollout(db, rid).status.message
    exposed = fleet.exposed(rid)
    assert len(exposed) == 60  # every acme host, and only those
    assert exposed and not any(h.startswith(("g", "i")) for h in exposed)
    assert rollouts.desired_state(db, "i00001")["falcon-content"]["version"] == "290"
    assert "N-1" in rollouts.desired_state(db, "i00001")["falcon-content"]["reason"]
    with db.transaction() as conn:
        log = store.decisions(conn, rid)
    assert any(r["code"] == "held_by_policy" for d in log for r in d["reasons"])


@pytest.mark.parametrize(("when", "country", "why"), [
    (datetime(2026, 11, 28, 10, 0, tzinfo=UTC), "DE", "Saturday"),
    (datetime(2026, 12, 25, 10, 0, tzinfo=UTC), "DE", "public holiday"),
])
def test_closed_windows_expose_nobody(db: Database, tmp_path: Path, when: datetime, country: str, why: str) -> None:
    """Outside the default Monday–Thursday 09–16 window, or on a public holiday, nobody is newly exposed."""
    clock = FakeClock(when)
    fleet = _fleet(db, clock, tmp_path, n=40)
    view = rollouts.create_rollout(db, release_id=fleet.release("296"), plan_name="default", actor=OPERATOR,
                                   clock=clock, start=True)
    fleet.run(view.spec.id, minutes=30, step=5)
    status = rollouts.get_rollout(db, view.spec.id).status
    assert fleet.exposed(view.spec.id) == set()
    assert status.state.value == "waiting_window" and why in status.message


def test_disruption_budget_caps_exposure_per_redundancy_group(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """A group of 3 with min_healthy 2 has at most 1 member exposed while the release is unproven."""
    fleet = _fleet(db, clock, tmp_path, n=30)
    members = tuple(h.id for h in fleet.hosts[:3])
    svc = Service(id=ServiceId("check-in"), name="Check-in", tenant=TenantId("acme"), tier=0,
                  redundancy_groups=(RedundancyGroup("ams", 2, hosts=members),))  # type: ignore[arg-type]
    inventory.import_inventory(db, Inventory(services=(svc,)), actor=OPERATOR, clock=clock)
    plan = ALWAYS_OPEN.replace("fraction: 0.05", "fraction: 1.0").replace(
        "  - {name: rest, fraction: 1.0, min_bake_minutes: 10, min_observed_hosts: 3}\n", "")
    rid = start(fleet, fleet.release("297"), plan)
    fleet.run(rid, minutes=8)
    assert len(fleet.exposed(rid) & set(members)) <= 1  # hosts go in bucket order: 0 or 1 member so far
    # Once a member has run the release for the wave's bake time (10 min) unharmed it counts as proven,
    # and the next member may follow: one at a time, never two unproven together.
    fleet.run(rid, minutes=60)
    with db.transaction() as conn:
        times = sorted(r.exposed_at for r in store.rollout_host_rows(conn, rid) if r.host_id in members)
    assert len(times) == 3
    assert all((b - a).total_seconds() >= 600 for a, b in itertools.pairwise(times))
    with db.transaction() as conn:
        log = store.decisions(conn, rid)
    assert any("disruption budgets" in d["message"] for d in log)


def test_kill_switch_halts_and_sends_hosts_back(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """The kill switch halts every rollout of the product and makes desired state the last known good."""
    fleet = _fleet(db, clock, tmp_path)
    rid = start(fleet, fleet.release("298"))
    fleet.run(rid, minutes=6)
    host = sorted(fleet.exposed(rid))[0]
    assert rollouts.desired_state(db, host)["falcon-content"]["version"] == "298"
    halted = rollouts.kill_switch(db, "falcon-content", actor=OPERATOR, clock=clock, reason="smoke seen")
    assert halted == [rid]
    assert rollouts.get_rollout(db, rid).status.state.value == "halted"
    desired = rollouts.desired_state(db, host)["falcon-content"]
    assert desired["version"] == "290" and "kill switch" in desired["reason"]
    before = fleet.exposed(rid)
    fleet.run(rid, minutes=10)
    assert fleet.exposed(rid) == before  # a halted rollout stays halted


def test_approval_is_four_eyes_through_the_service(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """The operator who started a rollout cannot approve its gated wave; an approver can."""
    fleet = _fleet(db, clock, tmp_path, n=20)
    plan = ALWAYS_OPEN.replace("fraction: 1.0, min_bake_minutes: 10", "fraction: 1.0, needs_approval: true, "
                               "min_bake_minutes: 10")
    plan = plan.replace("gate: {min_treated_hosts: 3, min_control_hosts: 5, max_streams: 16}",
                        "gate: {min_treated_hosts: 1, min_control_hosts: 1, baseline_rate: 5.0, tolerance: 5.0}")
    rid = start(fleet, fleet.release("299"), plan)
    fleet.run(rid, minutes=120, until=lambda s: s == "waiting_approval")
    assert rollouts.get_rollout(db, rid).status.state.value == "waiting_approval"
    with pytest.raises(PermissionDeniedError):
        rollouts.operate(db, rid, "approve", actor=OPERATOR, clock=clock)
    approved = rollouts.operate(db, rid, "approve", actor=APPROVER, clock=clock, reason="looks good")
    assert approved.status.waves[1].approved_by == "adam"


def test_health_reports_are_per_host_deduplicated_and_rate_limited(db: Database, clock: FakeClock,
                                                                   tmp_path: Path) -> None:
    """A host reports only for itself; ten crash events count as one failing host; floods get 429."""
    fleet = _fleet(db, clock, tmp_path, n=5)
    token = issue_credential(db, "h00001", actor=OPERATOR, clock=clock)
    host = fleet.ingest.authenticate(token)
    assert host == "h00001"
    with pytest.raises(AuthenticationError):
        fleet.ingest.authenticate("rfh_forged")
    with pytest.raises(PermissionDeniedError):
        fleet.ingest.submit(host, HealthReport(host_id="h00002", at=clock()))
    with pytest.raises(InputError):
        fleet.ingest.submit(host, HealthReport(host_id=host, at=clock(), events=(("exploded", "", clock()),)))
    rid = start(fleet, fleet.release("291"), ALWAYS_OPEN)  # events count only for a rollout that targets the host
    crash = tuple(("crashed", rid, clock()) for _ in range(10))
    fleet.ingest.submit(host, HealthReport(host_id=host, at=clock(), events=crash))
    fleet.ingest.flush()
    from ringfence.adapters.db.stores import health as health_store

    with db.transaction() as conn:
        assert health_store.events_for(conn, [rid], clock()) == {"crashed": {"h00001"}}
    fleet.ingest.max_per_minute = 3
    for _ in range(2):  # one report already counted this minute
        fleet.ingest.submit(host, HealthReport(host_id=host, at=clock()))
    with pytest.raises(TooManyReports):
        fleet.ingest.submit(host, HealthReport(host_id=host, at=clock()))


WORLD = [("Europe/Berlin", "DE", "BY"), ("America/New_York", "US", "NY"), ("Asia/Tokyo", "JP", ""),
         ("Europe/London", "GB", "")]
ONE_WAVE_DEFAULT_WINDOWS = """
name: one-wave
waves:
  - {name: all, fraction: 1.0, min_bake_minutes: 10, min_observed_hosts: 1}
"""


@pytest.fixture
def world_fleet(db: Database, tmp_path: Path) -> Fleet:
    from dataclasses import replace

    clock = FakeClock()
    hosts = [replace(h, timezone=WORLD[i % 4][0], country=WORLD[i % 4][1], subdivision=WORLD[i % 4][2])
             for i, h in enumerate(make_hosts(24))]
    fleet = Fleet(db, clock, hosts, ArtifactStore(tmp_path / "w"))
    rollouts.apply_plan(db, ONE_WAVE_DEFAULT_WINDOWS, actor=OPERATOR, clock=clock)
    return fleet


_versions = iter(range(10_000, 99_999))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(instant=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)))
@example(instant=datetime(2026, 11, 23, 10, 0, tzinfo=UTC))  # Monday: open in Berlin and London, not NY or Tokyo
@example(instant=datetime(2026, 11, 23, 15, 30, tzinfo=UTC))  # Berlin closed (16:30), New York open (10:30)
def test_no_host_is_newly_exposed_outside_its_window_or_on_a_holiday(world_fleet: Fleet, instant: datetime) -> None:
    """Property: whatever the instant, a host exposed at it is inside Monday–Thursday 09–16 in its own time zone
    and not on a public holiday of its country and subdivision (checked independently with zoneinfo and holidays)."""
    from zoneinfo import ZoneInfo

    import holidays

    fleet = world_fleet
    fleet.clock.now = instant
    view = rollouts.create_rollout(fleet.db, release_id=fleet.release(str(next(_versions))), plan_name="one-wave",
                                   actor=OPERATOR, clock=fleet.clock, start=True)
    fleet.heartbeat(view.spec.id)
    rollouts.tick(fleet.db, view.spec.id, clock=fleet.clock)
    expected = set()
    for h in fleet.hosts:
        local = instant.astimezone(ZoneInfo(h.timezone))
        calendar = holidays.country_holidays(h.country, subdiv=h.subdivision or None, years=local.year)
        if local.weekday() <= 3 and 9 <= local.hour < 16 and local.date() not in calendar:
            expected.add(h.id)
    # Every online host whose window is open is exposed at once (one wave, no rate limit); no other is.
    assert fleet.exposed(view.spec.id) == expected
    if instant == datetime(2026, 11, 23, 10, 0, tzinfo=UTC):
        assert {by_tz.timezone for by_tz in fleet.hosts if by_tz.id in expected} == {"Europe/Berlin", "Europe/London"}


def test_inventory_cache_sees_every_change(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """The reconciler's inventory cache is reused while nothing changes and reloaded after any import."""
    from dataclasses import replace

    fleet = _fleet(db, clock, tmp_path, n=10)
    cache = rollouts.InventoryCache()
    with db.transaction() as conn:
        first = cache.hosts(conn)
        assert cache.hosts(conn) is first
    changed = replace(fleet.hosts[0], os_build="26100")
    inventory.import_inventory(db, Inventory(hosts=(changed,)), actor=OPERATOR, clock=clock)
    with db.transaction() as conn:
        again = cache.hosts(conn)
    assert again is not first and {h.id: h for h in again}[changed.id].os_build == "26100"


def test_n_minus_1_pin_never_gets_a_failed_release(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """Review finding: after 291 fails and 292 is created, a host pinned to N-1 must stay on 290, not get 291."""
    hosts = make_hosts(60, tenant="acme") + make_hosts(20, tenant="bank", prefix="b")
    fleet = Fleet(db, clock, hosts, ArtifactStore(tmp_path / "a"))
    fleet.release("290")
    rollouts.set_policy(db, tenant="bank", pin="n-1", actor=OPERATOR, clock=clock)
    rid = start(fleet, fleet.release("291"))
    fleet.broken = lambda _h: True
    fleet.run(rid, minutes=30, until=lambda s: s in ("halted", "rolling_back", "rolled_back"))
    assert not any(h.startswith("b") for h in fleet.exposed(rid))
    fleet.release("292")
    assert rollouts.desired_state(db, "b00001")["falcon-content"]["version"] == "290"


def test_kill_switch_blocks_new_rollouts_and_releasing_it_re_exposes_nobody(db: Database, clock: FakeClock,
                                                                            tmp_path: Path) -> None:
    """Review findings: start/resume are refused while engaged; releasing the switch leaves hosts rolled back."""
    fleet = _fleet(db, clock, tmp_path)
    fleet.release("290")
    rid = start(fleet, fleet.release("298"))
    fleet.run(rid, minutes=8)
    exposed = fleet.exposed(rid)
    assert exposed
    rollouts.kill_switch(db, "falcon-content", actor=OPERATOR, clock=clock, reason="smoke")
    with pytest.raises(ConflictError, match="kill switch"):
        rollouts.operate(db, rid, "resume", actor=OPERATOR, clock=clock)
    other = rollouts.create_rollout(db, release_id=fleet.release("299"), plan_name="test-fast", actor=OPERATOR,
                                    clock=clock)
    with pytest.raises(ConflictError, match="kill switch"):
        rollouts.operate(db, other.spec.id, "start", actor=OPERATOR, clock=clock)
    rollouts.kill_switch(db, "falcon-content", engage=False, actor=OPERATOR, clock=clock)
    assert all(rollouts.desired_state(db, h)["falcon-content"]["version"] == "290" for h in exposed)


def test_a_rollout_that_has_not_started_cannot_be_halted(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """Review finding: halt-then-resume of a pending rollout skipped start (no start time, no starter)."""
    fleet = _fleet(db, clock, tmp_path, n=10)
    view = rollouts.create_rollout(db, release_id=fleet.release("300"), plan_name="default", actor=OPERATOR,
                                   clock=clock)
    with pytest.raises(ConflictError, match="abort it instead"):
        rollouts.operate(db, view.spec.id, "halt", actor=OPERATOR, clock=clock)


def _pair_service(db: Database, clock: FakeClock, members: tuple[str, ...], min_healthy: int) -> None:
    svc = Service(id=ServiceId("web"), name="Web", tenant=TenantId("acme"), tier=2,
                  redundancy_groups=(RedundancyGroup("g", min_healthy, hosts=members),))  # type: ignore[arg-type]
    inventory.import_inventory(db, Inventory(services=(svc,)), actor=OPERATOR, clock=clock)


ONE_WAVE = ALWAYS_OPEN.replace("fraction: 0.05", "fraction: 1.0").replace(
    "  - {name: rest, fraction: 1.0, min_bake_minutes: 10, min_observed_hosts: 3}\n", "")


def test_budget_counts_members_already_offline(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """Review finding: a group of 3 with min_healthy 2 and one member offline has no room to expose anyone."""
    fleet = _fleet(db, clock, tmp_path, n=30)
    members = ("h00000", "h00001", "h00002")
    _pair_service(db, clock, members, 2)
    for h in fleet.hosts:  # every host reports once; then h00000 goes quiet for longer than the grace
        fleet.ingest.submit(h.id, HealthReport(host_id=h.id, at=clock()))
    fleet.ingest.flush()
    clock.advance(minutes=6)
    fleet.down = {"h00000"}
    rid = start(fleet, fleet.release("291"), ONE_WAVE)
    fleet.run(rid, minutes=30)
    assert not set(members) & fleet.exposed(rid)


def test_budget_is_freed_once_a_wave_passes(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """Review finding: hosts of a passed wave are proven and no longer block their group's other members."""
    fleet = _fleet(db, clock, tmp_path, n=30)
    _pair_service(db, clock, ("h00000", "h00001"), 1)
    plan = ALWAYS_OPEN.replace("max_streams: 16}", "max_streams: 16, baseline_rate: 2.0, tolerance: 5.0}")
    rid = start(fleet, fleet.release("291"), plan)
    state = fleet.run(rid, minutes=600, step=5, until=lambda s: s == "completed")
    assert state == "completed", rollouts.get_rollout(db, rid).status.message
    assert {"h00000", "h00001"} <= fleet.exposed(rid)


def test_silence_is_remembered_after_the_host_comes_back(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """Review finding: a treated host that went silent and came back still counts as failed (a recorded event)."""
    from ringfence.adapters.db.stores import health as health_store

    fleet = _fleet(db, clock, tmp_path, n=200)
    plan = ALWAYS_OPEN.replace("auto_rollback: true", "auto_rollback: false")
    rid = start(fleet, fleet.release("291"), plan)
    fleet.run(rid, minutes=3)
    victim = sorted(fleet.exposed(rid))[0]
    fleet.down = {victim}
    fleet.run(rid, minutes=7)  # silent for longer than the 5-minute grace
    fleet.down = set()
    fleet.run(rid, minutes=2)  # back again
    with db.transaction() as conn:
        silent = health_store.events_for(conn, [rid], clock() - timedelta(hours=1)).get("silent", set())
    assert victim in silent


def test_operator_halt_rollback_and_kill_switch_are_told_to_the_notifier(db: Database, clock: FakeClock,
                                                                         tmp_path: Path) -> None:
    """Commands go through the same executor as the reconciler: a halt, a rollback and the kill switch are
    each told once to the notifier passed in, with the rollout and the reason."""
    fleet = _fleet(db, clock, tmp_path, n=30)
    rid = start(fleet, fleet.release("301"))
    fleet.run(rid, minutes=3)
    told = LogNotifier()
    rollouts.operate(db, rid, "halt", actor=OPERATOR, clock=clock, reason="smoke", notifier=told)
    rollouts.operate(db, rid, "rollback", actor=OPERATOR, clock=clock, reason="smoke", notifier=told)
    assert [(n.event, n.subject) for n in told.sent] == [(Event.ROLLOUT_HALTED, rid), (Event.ROLLOUT_ROLLED_BACK, rid)]
    assert "halted by olga (smoke)" in told.sent[0].text
    assert fleet.exposed(rid) and all(rollouts.desired_state(db, h)["falcon-content"]["rollback"]
                                      for h in fleet.exposed(rid))
    other = start(fleet, fleet.release("302"))
    switch = LogNotifier()
    assert rollouts.kill_switch(db, "falcon-content", actor=OPERATOR, clock=clock, reason="bad", notifier=switch) == [other]
    assert [(n.event, n.subject) for n in switch.sent] == [(Event.ROLLOUT_HALTED, other), (Event.KILL_SWITCH, "falcon-content")]
