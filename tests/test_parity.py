"""Server and simulator parity: the same small fleet and the same scripted events, tick by tick.

One fleet (two tenants, three strata, a paused tenant, a delayed tenant, a redundancy group under a
disruption budget) and one script of events — heartbeats, a host offline for a while without a word (a
silence), hosts that send a going-away notice and sleep, a crash not tied to the rollout, and in the harmful
row hosts the release makes silent or crash — go through

* the server path: the real database (SQLite, and PostgreSQL when ``RINGFENCE_TEST_DATABASE_URL`` is set),
  the real health ingest, :class:`~ringfence.adapters.db.fleet.DatabaseFleet` and the reconcile tick; and
* the simulator path: :class:`~ringfence.sim.fleet.SimFleet` over the same hosts (one simulated host per
  host, bucketed by the rollout's salt) and the same tick.

At every tick both must see the same observations (per wave; gate v2's risk-set ticks per stratum ×
signal, the current wave's strata and the hosts in flight) and make the same decision, and expose the same
hosts.  The script reacts to each side's own state (a broken host goes
quiet only once that side exposed it), so a difference anywhere shows up as a difference here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.fleet import DatabaseFleet, DatabaseRepository, load_view
from ringfence.adapters.db.stores import rollouts as store
from ringfence.domain.engine import command, initial_status
from ringfence.domain.model import Host, HostId, Inventory, OsFamily, RedundancyGroup, Service, ServiceId, TenantId
from ringfence.domain.plans import plan_from_mapping
from ringfence.domain.rollout import Decision, Observations, Release, ReleaseId, ReleaseKind, RolloutId, RolloutSpec
from ringfence.services import inventory, rollouts
from ringfence.services.fleet_port import Candidates, FleetPort, RolloutView, reconcile_step
from ringfence.services.health import HealthIngest, HealthReport
from ringfence.services.notify import Event, LogNotifier
from ringfence.sim.fleet import SimFleet, Template
from ringfence.sim.runner import MemoryRepository
from ringfence.sim.scenario import scenario_from_mapping
from tests.conftest import FakeClock
from tests.rollout_harness import OPERATOR

PRODUCT = "edr-agent"
OLD = "7.0"

PLAN = """
name: parity
windows:
  - {days: mon-sun, start: "00:00", end: "24:00"}
freeze: {public_holidays: false}
max_data_age_minutes: 10
silence_grace_minutes: 5
disruption_budgets: true
gate: {min_treated_hosts: 3, min_control_hosts: 5, max_streams: 16}
waves:
  - {name: canary, fraction: 0.5, min_bake_minutes: 8, min_observed_hosts: 3, max_rate_per_minute: 3}
  - {name: rest, fraction: 1.0, min_bake_minutes: 8, min_observed_hosts: 3, max_rate_per_minute: 6}
"""


def _hosts() -> list[Host]:
    builds = ("22631", "26100", "19045")
    out = []
    for i in range(36):
        tenant = "acme" if i < 28 else ("slowco" if i < 32 else "frozen")
        out.append(Host(id=HostId(f"p{i:03d}"), hostname=f"pc-{i}", tenant=TenantId(tenant),
                        os_family=OsFamily.WINDOWS, os_build=builds[i % 3], hardware_model="Latitude 7440",
                        timezone="Europe/Berlin", country="DE", tier=1 if i % 9 == 0 else 3))
    out.append(Host(id=HostId("p900"), hostname="mac-900", tenant=TenantId("acme"), os_family=OsFamily.MACOS,
                    timezone="Europe/Berlin", country="DE"))  # not targeted: a Windows release
    return out


SERVICE = Service(id=ServiceId("checkin"), name="Check-in", tenant=TenantId("acme"), tier=0,
                  redundancy_groups=(RedundancyGroup("ams", 2, hosts=(HostId("p001"), HostId("p002"),  # type: ignore[arg-type]
                                                                      HostId("p004"))),))
POLICIES = [
    {"tenant": "slowco", "host_group": "", "product": "*", "ring": "general", "delay_hours": 0.25, "pin": "latest"},
    {"tenant": "frozen", "host_group": "", "product": "*", "ring": "pause", "delay_hours": 0.0, "pin": "latest"},
]


@dataclass(frozen=True)
class Script:
    """What happens to which host: ``broken`` hosts go silent once exposed, ``crashing`` ones report a crash
    at their first report after exposure; ``offline`` hosts do not report in those minutes; ``asleep`` hosts
    send a going-away notice in the minute before and do not report in those minutes; ``control_crash``
    hosts report a crash not tied to the rollout at that minute."""

    name: str
    minutes: int
    broken: frozenset[str] = frozenset()
    crashing: frozenset[str] = frozenset()
    offline: dict[str, range] = field(default_factory=dict)
    asleep: dict[str, range] = field(default_factory=dict)
    control_crash: dict[str, int] = field(default_factory=dict)
    with_delay_and_budget: bool = True  # the delayed tenant's policy and the budgeted service

    @property
    def policies(self) -> list[dict[str, Any]]:
        return POLICIES if self.with_delay_and_budget else POLICIES[1:]

    @property
    def services(self) -> list[Service]:
        return [SERVICE] if self.with_delay_and_budget else []


SCRIPTS = [
    Script("good release, noise", minutes=34, offline={"p007": range(2, 12), "p020": range(14, 30)},
           asleep={"p003": range(3, 25), "p016": range(9, 40), "p022": range(20, 27)},
           control_crash={"p010": 3, "p025": 16}),
    Script("harmful release", minutes=20, with_delay_and_budget=False,
           broken=frozenset(f"p{i:03d}" for i in range(36) if i not in (5, 11)),
           crashing=frozenset({"p005", "p011"}), offline={"p008": range(4, 9)}, asleep={"p011": range(12, 16)},
           control_crash={"p013": 5}),
]


class _Recording:
    """A fleet port that passes every call through and keeps what ``observe`` returned."""

    def __init__(self, inner: FleetPort) -> None:
        self.inner = inner
        self.observations: Observations | None = None
        self.silenced: int | None = None

    def record_silence(self, view: RolloutView, now: datetime) -> int:
        self.silenced = self.inner.record_silence(view, now)
        return self.silenced

    def observe(self, view: RolloutView, now: datetime) -> tuple[Observations, Candidates]:
        obs, candidates = self.inner.observe(view, now)
        self.observations = obs
        return obs, candidates

    def expose(self, view: RolloutView, candidates: Candidates, hosts: int, now: datetime) -> int:
        return self.inner.expose(view, candidates, hosts, now)

    def roll_back(self, view: RolloutView, now: datetime) -> int:
        return self.inner.roll_back(view, now)


def _obs_key(obs: Observations | None) -> Any:
    if obs is None:  # nothing to do (the rollout stopped): neither side observed
        return None
    assert obs.risk_as_of is not None and not obs.streams  # gate v2 on both sides
    ticks = sorted((str(t.signal), t.stratum, t.treated_events, t.control_events, t.treated_at_risk, t.control_at_risk,
                    round(t.treated_hours, 9), t.treated_hosts, str(t.reference)) for t in obs.risk)
    return (obs.waves, ticks, obs.risk_as_of, obs.strata, obs.in_flight, obs.health_as_of,
            obs.rolled_back_pending)


def _decision_key(d: Decision | None) -> Any:
    if d is None:
        return None
    return (d.status.state, d.status.wave, d.status.message, [(i.kind, i.wave, i.hosts, i.message) for i in d.intents],
            [(r.code, r.message) for r in d.reasons], None if d.gate is None else d.gate.verdict)


class _Server:
    def __init__(self, db: Database, clock: FakeClock, tmp_path: Path, hosts: list[Host], script: Script) -> None:
        self.db, self.clock, self.hosts = db, clock, hosts
        self.ingest = HealthIngest(db, clock, max_per_minute=10_000)
        self.notifier = LogNotifier()
        self.silenced: int | None = None
        inventory.import_inventory(db, Inventory(hosts=tuple(hosts), services=tuple(script.services)), actor=OPERATOR,
                                   clock=clock)
        for p in script.policies:
            rollouts.set_policy(db, tenant=p["tenant"], ring=p["ring"], delay_hours=p["delay_hours"], actor=OPERATOR,
                                clock=clock)
        rollouts.apply_plan(db, PLAN, actor=OPERATOR, clock=clock)
        release = rollouts.create_release(db, ArtifactStore(tmp_path / "artifacts"), product=PRODUCT, version="7.1",
                                          kind="agent", platforms=["windows"], files=[("a.msi", b"7.1")],
                                          actor=OPERATOR, clock=clock)
        self.rid = rollouts.create_rollout(db, release_id=release.id, plan_name="parity", actor=OPERATOR,
                                           clock=clock).spec.id

    def start(self) -> RolloutView:
        return rollouts.operate(self.db, self.rid, "start", actor=OPERATOR, clock=self.clock)

    def state(self) -> tuple[set[str], set[str]]:
        with self.db.transaction() as conn:
            rows = store.rollout_host_rows(conn, self.rid)
        return ({r.host_id for r in rows if r.exposed_at is not None},
                {r.host_id for r in rows if r.rolled_back_at is not None})

    def report(self, beats: list[str], crashes: list[tuple[str, bool]], running: Callable[[str], str],
               notices: frozenset[str] = frozenset()) -> None:
        now = self.clock()
        for h in beats:
            events = tuple(("crashed", self.rid if treated else "", now) for host, treated in crashes if host == h)
            self.ingest.submit(h, HealthReport(host_id=h, at=now, versions={PRODUCT: running(h)},
                                               committed=(PRODUCT,), events=events,
                                               away="sleep" if h in notices else ""))
        self.ingest.flush()

    def tick(self) -> tuple[Decision | None, Observations | None]:
        now = self.clock()
        with self.db.transaction() as conn:
            fleet = _Recording(DatabaseFleet(conn))
            decision = reconcile_step(load_view(conn, self.rid), fleet,
                                      DatabaseRepository(conn, actor="ringfence-engine", source="reconciler"), now,
                                      notifier=self.notifier)
        self.silenced = fleet.silenced
        return decision, fleet.observations


class _Sim:
    def __init__(self, view: RolloutView, hosts: list[Host], start: datetime, script: Script) -> None:
        scenario = scenario_from_mapping({
            "name": "parity", "start": start.isoformat(), "hosts": 10,
            "release": {"product": PRODUCT, "version": "7.1", "kind": "agent", "platforms": ["windows"]},
            "agents": {"poll_seconds": [0.5, 1.0], "heartbeat_seconds": 60}, "failures": [],
            "risk_sets": {"enabled": True, "sleep_notice": False},  # notices come from the script
            "baseline": {"crash_per_host_hour": 1e-9, "heartbeat_loss_per_host_hour": 1e-9}})  # unused: no physics
        template = Template(hosts=tuple(hosts), weights=np.full(len(hosts), 1.0 / len(hosts)))
        self.fleet = SimFleet(scenario, view.spec.plan, template, hosts=len(hosts), seed=0, policies=script.policies,
                              services=script.services, exact_salt=view.spec.salt)
        self.index = {self.fleet.names[j]: j for j in range(self.fleet.n)}
        self.start = start
        self.repo: MemoryRepository | None = None
        self.notifier = LogNotifier()
        self.silenced: int | None = None

    def begin(self, view: RolloutView) -> None:
        """Start from the server's started status (the same spec, salt and start time)."""
        self.repo = MemoryRepository(RolloutView(spec=view.spec, status=view.status, version=1))

    def state(self) -> tuple[set[str], set[str]]:
        f = self.fleet
        return ({f.names[int(j)] for j in np.flatnonzero(~np.isnan(f.exposed_s))},
                {f.names[int(j)] for j in np.flatnonzero(f.rolled_back)})

    def report(self, now: datetime, beats: list[str], crashes: list[tuple[str, bool]],
               notices: frozenset[str] = frozenset()) -> None:
        t = (now - self.start).total_seconds()
        idx = np.array([self.index[h] for h in beats if h in self.index], dtype=np.int64)
        self.fleet.heartbeat(idx, t)
        noticed = np.array([self.index[h] for h in beats if h in notices and h in self.index], dtype=np.int64)
        self.fleet.notice_s[noticed] = t  # a report that is a going-away notice
        crashed = np.array([self.index[h] for h, _t in crashes if h in self.index], dtype=np.int64)
        if len(crashed):
            self.fleet.crash(crashed, t)

    def tick(self, now: datetime) -> tuple[Decision | None, Observations | None]:
        assert self.repo is not None
        fleet = _Recording(self.fleet)
        decision = reconcile_step(self.repo.view, fleet, self.repo, now, notifier=self.notifier)
        self.silenced = fleet.silenced
        return decision, fleet.observations


def _events(script: Script, minute: int, hosts: list[Host], exposed: set[str], rolled_back: set[str],
            reported_crash: set[str]) -> tuple[list[str], list[tuple[str, bool]]]:
    """Who reports this minute, and which crashes they report (host, tied to the rollout), on one side."""
    beats, crashes = [], []
    for h in hosts:
        hid = str(h.id)
        if minute in script.offline.get(hid, ()) or minute in script.asleep.get(hid, ()):
            continue
        updated = hid in exposed and hid not in rolled_back
        if updated and hid in script.broken:
            continue  # boot-looped: silent
        beats.append(hid)
        if updated and hid in script.crashing and hid not in reported_crash:
            reported_crash.add(hid)
            crashes.append((hid, True))
        if script.control_crash.get(hid) == minute and not updated:
            crashes.append((hid, False))
    return beats, crashes


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_server_and_simulator_see_and_decide_the_same_at_every_tick(db: Database, clock: FakeClock, tmp_path: Path,
                                                                    script: Script) -> None:
    hosts = _hosts()
    server = _Server(db, clock, tmp_path, hosts, script)
    # Every host reported before the start (the simulator's assumption about its control hosts).
    server.report([str(h.id) for h in hosts], [], lambda _h: OLD)
    clock.advance(minutes=1)
    view = server.start()
    sim = _Sim(view, hosts, start=clock() - timedelta(minutes=1), script=script)
    sim.report(clock() - timedelta(minutes=1), [str(h.id) for h in hosts], [])
    sim.begin(view)
    crashed_server: set[str] = set()
    crashed_sim: set[str] = set()
    seen_states = set()
    delayed = {"p028", "p029", "p030", "p031"}
    silences = crash_events = 0
    for minute in range(script.minutes):
        now = clock()
        s_exposed, s_back = server.state()
        m_exposed, m_back = sim.state()
        assert (s_exposed, s_back) == (m_exposed, m_back), f"minute {minute}: exposed hosts differ"
        # the state at minute m shows exposures up to tick m - 1; the delay ends at minute 15
        if minute <= 15 and script.with_delay_and_budget:
            assert not s_exposed & delayed, f"minute {minute}: the delayed tenant was exposed early"

        def running(h: str, exposed: set[str] = s_exposed, back: set[str] = s_back) -> str:
            return "7.1" if h in exposed and h not in back else OLD

        notices = frozenset(h for h, r in script.asleep.items() if minute + 1 == r.start)
        beats, crashes = _events(script, minute, hosts, s_exposed, s_back, crashed_server)
        server.report(beats, crashes, running, notices)
        beats_m, crashes_m = _events(script, minute, hosts, m_exposed, m_back, crashed_sim)
        sim.report(now, beats_m, crashes_m, notices)
        s_decision, s_obs = server.tick()
        m_decision, m_obs = sim.tick(now)
        assert _obs_key(s_obs) == _obs_key(m_obs), f"minute {minute}: observations differ"
        # record_silence: the same silence events on both sides; a host away with a notice is never one.
        assert server.silenced == sim.silenced, f"minute {minute}: silence events differ"
        if s_obs is not None:
            silences += sum(t.treated_events + t.control_events for t in s_obs.risk if str(t.signal) == "silent")
            crash_events += sum(t.treated_events + t.control_events for t in s_obs.risk
                                if str(t.signal) == "crashed")
        assert _decision_key(s_decision) == _decision_key(m_decision), f"minute {minute}: decisions differ"
        if s_decision is not None:
            seen_states.add(s_decision.status.state.value)
        clock.advance(minutes=1)
    told = [(n.event, n.subject, n.title, n.text, n.at) for n in server.notifier.sent]
    assert told == [(n.event, n.subject, n.title, n.text, n.at) for n in sim.notifier.sent]
    exposed, _back = server.state()
    assert "p900" not in exposed  # targeting: the macOS host is not reached
    assert not exposed & {"p032", "p033", "p034", "p035"}  # the paused tenant got nothing
    if script.broken:
        assert seen_states & {"halted", "rolling_back"}, seen_states
        assert [n[0] for n in told] == [Event.ROLLOUT_HALTED]  # the gate's halt (and its rollback) told once
    else:
        assert seen_states & {"baking", "progressing"} and not seen_states & {"halted", "rolling_back"}, seen_states
        assert told == []
        # The two hosts offline without a word are the only silences: the sleepers said so first.  (A control
        # crash counts only once its stratum has updated hosts, which depends on the rollout's salt.)
        assert silences == 2 and crash_events <= 2, (silences, crash_events)


def test_a_drawn_fleet_resolves_budgets_over_its_template() -> None:
    """In a fleet drawn from a template (the simulator's usual fleet), a redundancy group's members are the
    simulated hosts drawn from the template hosts the group names, and its budget blocks exposure."""
    hosts = _hosts()
    scenario = scenario_from_mapping({
        "name": "drawn", "start": "2026-03-02T06:00:00Z", "hosts": 500,
        "release": {"product": PRODUCT, "version": "7.1", "kind": "agent", "platforms": ["windows"]},
        "failures": [], "baseline": {"crash_per_host_hour": 1e-9, "heartbeat_loss_per_host_hour": 1e-9}})
    plan = plan_from_mapping(yaml.safe_load(PLAN))
    template = Template(hosts=tuple(hosts), weights=np.full(len(hosts), 1.0 / len(hosts)))
    fleet = SimFleet(scenario, plan, template, hosts=500, seed=3, services=[SERVICE])
    (budget,) = fleet.budgets
    drawn = {str(fleet.template[int(fleet.tmpl[j])].id) for j in range(fleet.n)}
    expected = [j for j in range(fleet.n) if str(fleet.template[int(fleet.tmpl[j])].id) in {"p001", "p002", "p004"}]
    assert {"p001", "p002", "p004"} & drawn and budget.members == {f"sim-{j}" for j in expected}
    # With the group's members unproven, the budget (allowance = members - 2) blocks the rest of them.
    spec = RolloutSpec(id=RolloutId("r"), release=Release(id=ReleaseId("edr@7.1"), product=PRODUCT, version="7.1",
                                                          kind=ReleaseKind.AGENT, platforms=("windows",)),
                       plan=plan, salt="s", created_by="t", created_at=scenario.start)
    view = RolloutView(spec=spec, status=command(spec, initial_status(spec), "start", actor="t",
                                                 now=scenario.start).status, version=1)
    fleet.heartbeat(np.arange(fleet.n, dtype=np.int64), 0.0)
    exposed_members = np.array(expected[:len(expected) - 2], dtype=np.int64)
    fleet.exposed_s[exposed_members] = 0.0
    obs, candidates = fleet.observe(view, scenario.start)
    assert candidates.budget is not None
    assert not candidates.eligible[expected[len(expected) - 2:]].any()
    assert sum(w.budget_blocked for w in obs.waves[-1:]) == 2
