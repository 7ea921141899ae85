"""Gate v2's presence in the server: the rules (domain.presence), what ingest stores (SQLite and PostgreSQL),
the agent's going-away notice over the real API, and the pre-update history DatabaseFleet hands the gate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.fleet import DatabaseFleet, load_view
from ringfence.adapters.db.stores import health as health_store
from ringfence.adapters.db.tables import HostDayRow
from ringfence.domain.model import Host, HostId, Inventory, OsFamily, TenantId
from ringfence.domain.presence import AWAY_DEFAULT, AWAY_FLOOR, Arrival, Presence, away_limit_s, fold
from ringfence.services import inventory, rollouts
from ringfence.services.health import HealthIngest, HealthReport
from tests.api_support import Api, _problem
from tests.conftest import FakeClock
from tests.rollout_harness import ALWAYS_OPEN, OPERATOR, Fleet, make_hosts, start
from tests.test_agent_api import _agent, _token

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_usual_time_away_is_a_high_quantile_of_the_hosts_own_absences() -> None:
    assert away_limit_s([]) == away_limit_s([3600.0] * 4) == AWAY_DEFAULT.total_seconds()  # too few of its own
    night, weekend = 14 * 3600.0, 63 * 3600.0
    assert away_limit_s([night] * 18 + [weekend] * 2) == 1.5 * night  # the nearest-rank 90th of 20 is the 18th
    assert away_limit_s([night] * 17 + [weekend] * 3) == 1.5 * weekend
    assert away_limit_s([night] * 9 + [weekend]) == 1.5 * night  # one long absence in ten does not set it
    assert away_limit_s([night] * 8 + [weekend] * 2) == 1.5 * weekend
    assert away_limit_s([30.0] * 10) == AWAY_FLOOR.total_seconds()  # a server that only restarts: one hour
    assert away_limit_s([1.0] * 30 + [7200.0] * 5) == 1.5 * 7200.0  # only the last 20 absences count (15 × 1 s)


def test_fold_counts_hours_silences_notices_and_absences_by_the_rules() -> None:
    grace = timedelta(minutes=15)
    p = Presence()
    for minute in range(0, 61, 5):  # reporting every 5 min for an hour: 1 host-hour, nothing else
        p = fold(p, Arrival(T0 + timedelta(minutes=minute)), grace)
    assert p.days["2026-11-24"].hours == pytest.approx(1.0) and p.days["2026-11-24"].silences == 0
    p = fold(p, Arrival(T0 + timedelta(minutes=100)), grace)  # a 40-min gap without a word: a silence
    day = p.days["2026-11-24"]
    assert day.silences == 1 and day.hours == pytest.approx(1.25)  # at risk for the grace, then silent
    p = fold(p, Arrival(T0 + timedelta(minutes=101), notice="sleep"), grace)
    assert (p.notice_at, p.notice_reason, day.notices) == (T0 + timedelta(minutes=101), "sleep", 1)
    p = fold(p, Arrival(T0 + timedelta(hours=15, minutes=41), crashed=True), grace)  # back the next morning
    assert p.away == (14.0 * 3600,) and p.days["2026-11-24"].silences == 1  # censored: no silence, no hours
    assert p.crash_at == T0 + timedelta(hours=15, minutes=41) and p.days["2026-11-25"].crashes == 1
    assert p.last_seen == T0 + timedelta(hours=15, minutes=41)
    late = fold(p, Arrival(T0 + timedelta(hours=1)), grace)  # an older request arriving late changes nothing
    assert (late.last_seen, late.away, late.days["2026-11-24"].hours) == (p.last_seen, p.away, p.days["2026-11-24"].hours)


def _hosts(db: Database, clock: FakeClock, n: int) -> list[str]:
    hosts = [Host(id=HostId(f"h{i}"), hostname=f"h{i}", tenant=TenantId("acme"), os_family=OsFamily.WINDOWS,
                  os_build="22631", hardware_model="Latitude 7440", timezone="Europe/Berlin", country="DE")
             for i in range(n)]
    inventory.import_inventory(db, Inventory(hosts=tuple(hosts)), actor=OPERATOR, clock=clock)
    return [str(h.id) for h in hosts]


def _days(db: Database) -> dict[tuple[str, str], tuple[float, int, int, int]]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(HostDayRow.host_id, HostDayRow.day, HostDayRow.hours, HostDayRow.silences,
                                   HostDayRow.crashes, HostDayRow.notices)).all()
    return {(r.host_id, r.day): (round(r.hours, 6), r.silences, r.crashes, r.notices) for r in rows}


@pytest.mark.parametrize("flush_every", [1, 7], ids=["flush each report", "batched"])
def test_ingest_stores_arrivals_notices_crashes_and_the_day_record_however_it_batches(
        db: Database, clock: FakeClock, flush_every: int) -> None:
    """The same reports give the same stored presence whether the buffer is flushed after each or in batches."""
    (a, b) = _hosts(db, clock, 2)
    ingest = HealthIngest(db, clock, max_per_minute=60)
    script: list[tuple[int, str, str, bool]] = []  # (minute, host, notice, crash)
    script += [(m, a, "", False) for m in range(0, 120, 2)]  # a reports every 2 min for two hours
    script += [(m, b, "", False) for m in range(0, 30, 2)]  # b reports, then is silent 30 … 58
    script += [(60, b, "", True), (62, b, "", False), (64, b, "sleep", False), (200, b, "", False)]
    for reports, (minute, host, away, crash) in enumerate(sorted(script), start=1):
        clock.now = T0 + timedelta(minutes=minute)
        events = (("crashed", "", clock.now),) if crash else ()
        ingest.submit(host, HealthReport(host_id=host, at=clock.now - timedelta(seconds=40), events=events, away=away))
        if reports % flush_every == 0:
            ingest.flush()
    ingest.flush()
    with db.transaction() as conn:
        seen = health_store.presence(conn, [a, b])
        beats = health_store.heartbeats(conn, [a, b])
    # The arrival is the server's clock; the heartbeat stays the agent's (40 s behind here).
    assert seen[a].last_seen == T0 + timedelta(minutes=118) and beats[a] == seen[a].last_seen - timedelta(seconds=40)
    assert (seen[b].notice_at, seen[b].notice_reason) == (T0 + timedelta(minutes=64), "sleep")
    assert seen[b].crash_at == T0 + timedelta(minutes=60) and seen[b].away == (136 * 60.0,)
    day = "2026-11-24"
    # a: 59 gaps of 2 min.  b: 14 gaps of 2 min, the silence (15 min of grace, then silent), 2 + 2 min back.
    assert _days(db) == {(a, day): (round(118 / 60, 6), 0, 0, 0),
                         (b, day): (round((28 + 15 + 4) / 60, 6), 1, 1, 1)}
    with db.transaction() as conn:
        assert health_store.day_totals(conn, [a, b, "nobody"], "2026-11-01", "2026-11-25") == {
            a: (pytest.approx(118 / 60), 0, 0), b: (pytest.approx(47 / 60), 1, 1)}
        assert health_store.day_totals(conn, [a], "2026-11-25", "2026-11-26") == {}


def test_day_record_is_pruned_past_the_look_back(db: Database, clock: FakeClock) -> None:
    (a,) = _hosts(db, clock, 1)
    ingest = HealthIngest(db, clock)
    for day in (0, 1, 40):
        for minute in (0, 5):
            clock.now = T0 + timedelta(days=day, minutes=minute)
            ingest.submit(a, HealthReport(host_id=a, at=clock.now))
            ingest.flush()
            ingest._pruned = None  # as if an hour had passed since the last pruning
    assert sorted(d for _h, d in _days(db)) == ["2027-01-03"]  # days 0 and 1 are more than 28 days old


def test_agent_notice_goes_through_the_authenticated_health_report(api: Api, db: Database, clock: FakeClock,
                                                                   tmp_path: Path) -> None:
    agent = _agent(api, clock, tmp_path, "ws-1", _token(api))
    assert agent.enrol() and agent.report()
    clock.advance(minutes=1)
    assert agent.notify_away("sleep")
    api.client.app.state.ringfence.ingest.flush()  # type: ignore[attr-defined]
    with db.transaction() as conn:
        seen = health_store.presence(conn, ["ws-1"])["ws-1"]
    assert (seen.notice_at, seen.notice_reason, seen.last_seen) == (clock(), "sleep", clock())
    # notify-away from another process (a sleep hook, while `run` holds the state dir): the running agent then
    # holds its reports for a while, so the notice stays the host's last word before it sleeps.
    clock.advance(minutes=1)
    noticed = clock()
    assert agent.notify_away("sleep", events=False) and (tmp_path / "ws-1" / "away").exists()
    clock.advance(seconds=30)
    assert agent.report()  # held: nothing sent
    api.client.app.state.ringfence.ingest.flush()  # type: ignore[attr-defined]
    with db.transaction() as conn:
        assert health_store.presence(conn, ["ws-1"])["ws-1"].last_seen == noticed
    clock.advance(minutes=2)
    assert agent.report() and not (tmp_path / "ws-1" / "away").exists()
    api.client.app.state.ringfence.ingest.flush()  # type: ignore[attr-defined]
    with db.transaction() as conn:
        back = health_store.presence(conn, ["ws-1"])["ws-1"]
    assert back.last_seen == clock() and back.away == (60.0, 150.0)  # away after each notice
    agent.close()
    # A notice with a reason the server does not know is refused whole, naming the field.
    token = (tmp_path / "ws-1" / "credential").read_text()
    bad = api.call("POST", "/v1/health", role="", headers={"Authorization": f"Bearer {token}"},
                   json={"host_id": "ws-1", "at": clock().isoformat(), "away": "nap"})
    assert "away" in str(_problem(bad, 422))


def test_fleet_hands_the_gate_each_hosts_record_before_the_rollout_started(db: Database, clock: FakeClock,
                                                                           tmp_path: Path) -> None:
    fleet = Fleet(db, clock, make_hosts(4), ArtifactStore(tmp_path / "artifacts"))
    clock.now = T0 - timedelta(days=2)
    for minute in range(0, 61, 10):  # the day before yesterday: an hour of reports, then one silence
        clock.now = T0 - timedelta(days=2) + timedelta(minutes=minute)
        for h in fleet.hosts:
            fleet.ingest.submit(h.id, HealthReport(host_id=h.id, at=clock.now))
    clock.now = T0
    for h in fleet.hosts:
        events = (("crashed", "", clock.now),) if h.id == "h00001" else ()
        fleet.ingest.submit(h.id, HealthReport(host_id=h.id, at=clock.now, events=events))  # type: ignore[arg-type]
    fleet.ingest.flush()
    release = fleet.release("291")
    for grace, expected in ((15, True), (5, False)):
        rid = start(fleet, release, ALWAYS_OPEN.replace("silence_grace_minutes: 5", f"silence_grace_minutes: {grace}")
                    .replace("name: test-fast", f"name: grace-{grace}"))
        with db.transaction() as conn:
            view = load_view(conn, rid)
            ids = [HostId(h.id) for h in fleet.hosts]
            history = DatabaseFleet(conn)._history(view, ids, clock())
            obs, _ = DatabaseFleet(conn).observe(view, clock())
        assert obs.risk_as_of == clock()  # gate v2
        if not expected:  # a plan grace shorter than the record's: no self-control
            assert history is None
            continue
        assert history is not None
        # Counted up to the rollout's start day (today's reports and the crash this morning are not history).
        assert history.hours.tolist() == pytest.approx([1.0 + 0.25] * 4)  # an hour, then 15 min of grace
        assert history.silent_events.tolist() == [1] * 4 and history.crash_events.tolist() == [0] * 4
        rollouts.operate(db, rid, "abort", actor=OPERATOR, clock=clock, reason="next plan")
