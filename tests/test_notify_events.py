"""Who hears what: engine notifications reach the rules of the tenants owning a rollout's targeted hosts and of
the rollout's plan (``notify:`` in its YAML); a release gate refusing a start, a wave on hold past its
``max_bake`` and the kill switch are delivered to a real receiver on 127.0.0.1; the rollback tells the truth
(desired state reverted, N confirmed back, M silent need a recovery campaign)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.adapters.notify import OutboxNotifier
from ringfence.adapters.notify.rules import Rule
from ringfence.domain.engine import command, reconcile
from ringfence.domain.rollout import IntentKind, Observations, RolloutState
from ringfence.errors import ConflictError, InputError, NotFoundError
from ringfence.services import notifications, release_gates, rollouts
from ringfence.services.context import Actor
from ringfence.services.health import HealthReport
from tests.conftest import FakeClock
from tests.notify_support import Receiver
from tests.rollout_harness import ALWAYS_OPEN, OPERATOR, Fleet, make_hosts
from tests.servers import free_port

SECRET = "s3cret-for-tests"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    yield r
    r.close()


def _tenant_rules(tenant: str, port: int) -> str:
    return f"""
tenant: {tenant}
notify:
  targets:
    hook: {{webhook: "http://127.0.0.1:{port}/{tenant}", secret_env: RF_TEST_SECRET}}
  rules:
    - events: ["*"]
      targets: [hook]
"""


def _plan(port: int, plan: str = ALWAYS_OPEN) -> str:
    """The test plan with a ``notify:`` section: every event of its rollouts to an Apprise json:// target."""
    return plan + f"""
notify:
  targets:
    team: {{apprise: "json://127.0.0.1:{port}/plan"}}
  rules:
    - events: ["*"]
      targets: [team]
"""


def _setup(db: Database, clock: FakeClock, tmp_path: Path, admin: Actor, port: int) -> tuple[Fleet, OutboxNotifier]:
    """40 hosts of acme and 40 of globex; rules for acme and for initech (no hosts) only, none for every tenant."""
    hosts = make_hosts(40, tenant="acme", prefix="a") + make_hosts(40, tenant="globex", prefix="g")
    fleet = Fleet(db, clock, hosts, ArtifactStore(tmp_path / "artifacts"))
    for tenant in ("acme", "initech"):
        notifications.apply_rules(db, _tenant_rules(tenant, port), actor=admin, clock=clock)
    notifier = OutboxNotifier(db, clock, env={"RF_TEST_SECRET": SECRET}, max_attempts=2, timeout_seconds=2.0)
    return fleet, notifier


def _delivered(receiver: Receiver) -> list[tuple[str, str, dict[str, object]]]:
    """(path, event, body) of every request: webhook bodies carry the event, Apprise's JSON its title."""
    out = []
    for path, headers, body in receiver.requests:
        doc = json.loads(body)
        out.append((path, headers.get("x-ringfence-event", ""), doc))
    return out


def _create(fleet: Fleet, plan_yaml: str, version: str) -> str:
    plan, _ = rollouts.apply_plan(fleet.db, plan_yaml, actor=OPERATOR, clock=fleet.clock)
    view = rollouts.create_rollout(fleet.db, release_id=fleet.release(version), plan_name=plan.name, actor=OPERATOR,
                                   clock=fleet.clock)
    return view.spec.id


def test_halt_and_rollback_reach_the_tenants_and_the_plan_and_say_what_is_true(
        db: Database, clock: FakeClock, tmp_path: Path, admin: Actor, receiver: Receiver) -> None:
    """A release that silences half the exposed hosts: the halt and the rollback reach acme's webhook (its hosts
    are targeted) and the plan's target, not initech's (no host in the rollout); the final sentence counts who
    confirmed they are back and who is silent and points at a recovery campaign."""
    fleet, notifier = _setup(db, clock, tmp_path, admin, receiver.port)
    plan = _plan(receiver.port, ALWAYS_OPEN.replace("fraction: 0.05", "fraction: 0.25"))
    rid = _create(fleet, plan, "291")
    rollouts.operate(fleet.db, rid, "start", actor=OPERATOR, clock=clock, notifier=notifier)
    fleet.broken = lambda h: int(h.id[1:]) % 2 == 0
    state = ""
    for _ in range(90):
        fleet.heartbeat(rid)
        rollouts.tick(db, rid, clock=clock, notifier=notifier)
        state = rollouts.get_rollout(db, rid).status.state.value
        if state == "rolling_back":
            # The agents that still report obey the rollback and run 290 again; the broken ones stay silent.
            fleet.running.update(dict.fromkeys(fleet.exposed(rid), "290"))
            fleet.down = {h.id for h in fleet.hosts if fleet.broken(h)}
        if state == "rolled_back":
            break
        clock.advance(minutes=1)
    status = rollouts.get_rollout(db, rid).status
    assert state == "rolled_back", status.message
    exposed = fleet.exposed(rid)
    silent = {h for h in exposed if int(h[1:]) % 2 == 0}
    assert silent and exposed - silent
    assert "desired state of every exposed host is its last known good version again" in status.message
    assert f"{len(exposed - silent)} confirmed back" in status.message
    assert f"{len(silent)} silent" in status.message and "need recovery" in status.message
    assert f"/recovery/new?rollout={rid}" in status.message
    assert "every exposed host is back" not in status.message

    while notifier.run_once():
        pass
    notifier.stop()
    got = _delivered(receiver)
    assert {p for p, _, _ in got} == {"/acme", "/plan"}       # initech has no host in this rollout
    hooks = {e: doc for p, e, doc in got if p == "/acme"}
    assert set(hooks) == {"rollout.halted", "rollout.rolled_back"}
    assert hooks["rollout.halted"]["details"]["tenants"] == ["acme", "globex"]  # type: ignore[index]
    assert hooks["rollout.halted"]["tenant"] == "acme"
    assert f"{len(silent)} silent" in str(hooks["rollout.rolled_back"]["text"])
    assert sorted(str(doc["title"]) for p, _, doc in got if p == "/plan") == sorted(
        str(doc["title"]) for doc in hooks.values())
    log = notifications.deliveries(db, actor=admin)
    assert {d.target for d in log} == {"acme/hook", "plan:test-fast/team"} and {d.state for d in log} == {"delivered"}
    shown = {r.tenant: [t.shown()["url"] for t in r.targets.values()] for r, _ in notifications.list_rules(db, actor=admin)}
    assert shown["plan:test-fast"] == ["json://127.0.0.1/…"]    # notify show lists the plan's rules too


def test_release_gate_refusal_and_kill_switch_are_delivered(db: Database, clock: FakeClock, tmp_path: Path,
                                                            admin: Actor, receiver: Receiver) -> None:
    """An enforced signature gate refuses the start of an unsigned release: the refusal names the gate and
    reaches the rollout's tenant and plan; the kill switch then reaches them too."""
    fleet, notifier = _setup(db, clock, tmp_path, admin, receiver.port)
    release_gates.apply_gate_policy(db, "enforce: [signature]", actor=admin, clock=clock)
    rid = _create(fleet, _plan(receiver.port), "291")
    with pytest.raises(ConflictError, match="signature"):
        rollouts.operate(db, rid, "start", actor=OPERATOR, clock=clock, notifier=notifier)
    rollouts.kill_switch(db, "falcon-content", actor=OPERATOR, clock=clock, reason="drill", notifier=notifier)
    while notifier.run_once():
        pass
    notifier.stop()
    got = _delivered(receiver)
    hooks = {e: doc for p, e, doc in got if p == "/acme"}
    assert set(hooks) >= {"release_gate.refused", "killswitch"}
    refused = hooks["release_gate.refused"]
    assert refused["subject"] == rid and "not started, release gates failed" in str(refused["title"])
    assert "signature" in str(refused["text"]) and "ringfence release sign" in str(refused["text"])
    assert "drill" in str(hooks["killswitch"]["text"])
    plan_titles = {str(doc["title"]) for p, _, doc in got if p == "/plan"}
    assert str(refused["title"]) in plan_titles and str(hooks["killswitch"]["title"]) in plan_titles
    assert not [p for p, _, _ in got if p == "/initech"]


def test_a_wave_inconclusive_past_max_bake_holds_and_is_told(db: Database, clock: FakeClock, tmp_path: Path,
                                                             admin: Actor, receiver: Receiver) -> None:
    """The canary's hosts never report the new version, so nothing can be judged: past max_bake the wave goes on
    hold, and the hold (with what blocks it and what a person can do) reaches the tenant's webhook."""
    fleet, notifier = _setup(db, clock, tmp_path, admin, receiver.port)
    plan = ALWAYS_OPEN.replace("min_observed_hosts: 3, max_rate_per_minute: 2",
                               "min_observed_hosts: 3, max_rate_per_minute: 20, max_bake_minutes: 20")
    rid = _create(fleet, plan, "291")
    rollouts.operate(db, rid, "start", actor=OPERATOR, clock=clock, notifier=notifier)
    for _ in range(60):
        for h in fleet.hosts:  # every host reports, and keeps running 290 (the update never lands)
            fleet.ingest.submit(h.id, HealthReport(host_id=h.id, at=clock(), events=(),
                                                   versions={"falcon-content": "290"}, committed=("falcon-content",)))
        fleet.ingest.flush()
        rollouts.tick(db, rid, clock=clock, notifier=notifier)
        if rollouts.get_rollout(db, rid).status.state is RolloutState.HOLD:
            break
        clock.advance(minutes=1)
    status = rollouts.get_rollout(db, rid).status
    assert status.state is RolloutState.HOLD, status.message
    while notifier.run_once():
        pass
    notifier.stop()
    hooks = [(e, doc) for p, e, doc in _delivered(receiver) if p == "/acme"]
    # Nothing to judge, so the gate is among the blockers: the hold is a gate inconclusive past its limit.
    assert "gate inconclusive" in status.message, status.message
    assert [e for e, _ in hooks] == ["gate.inconclusive"]
    text = str(hooks[0][1]["text"])
    assert "limit 20 min" in text and "required updated hosts observed" in text and "approve" in text
    assert Rule(events=("rollout.hold",), targets=("t",)).matches("gate.inconclusive")  # a hold all the same
    assert not Rule(events=("gate.inconclusive",), targets=("t",)).matches("rollout.hold")


@pytest.mark.parametrize(("section", "field"), [
    ('{targets: {t: {webhook: "http://127.0.0.1:9/h", secret: x}}, rules: [{events: ["*"], targets: [t]}]}',
     "notify.targets.t.secret"),
    ('{targets: {t: {apprise: "json://127.0.0.1:9/a"}}, rules: [{events: [rollout.exploded], targets: [t]}]}',
     "notify.rules[0].events"),
    ('{targets: {}, rules: [{events: ["*"], targets: [nobody]}]}', "notify.rules[0].targets"),
    ("[oncall]", "notify"),
])
def test_bad_plan_notify_rules_name_the_field_and_store_nothing(db: Database, clock: FakeClock, section: str,
                                                                field: str) -> None:
    """A plan's notify: section is validated like a tenant's (inline secrets refused: plans are shown to every
    viewer); the whole plan is refused and nothing is stored."""
    with pytest.raises(InputError) as e:
        rollouts.apply_plan(db, ALWAYS_OPEN + f"notify: {section}\n", actor=OPERATOR, clock=clock)
    assert any(i.field == field for i in e.value.issues), e.value.issues
    with pytest.raises(NotFoundError):
        rollouts.get_plan(db, "test-fast")


def test_rollback_sentence_counts_confirmed_and_silent_and_claims_nothing_it_cannot_count() -> None:
    """Pure engine: the sentences during and after a rollback; a NOTIFY only when silent hosts are left."""
    from tests.test_engine import SPEC, T0, started

    rolling = command(SPEC, started(), "rollback", actor="olga", now=T0).status
    now = T0
    moving = reconcile(SPEC, rolling, Observations(waves=(), rolled_back_pending=4, rolled_back_confirmed=5,
                                                   rolled_back_silent=39), now)
    assert moving.status.state is RolloutState.ROLLING_BACK
    assert "4 reporting hosts are still on the release" in moving.status.message
    assert "5 confirmed back" in moving.status.message and "39 silent" in moving.status.message
    done = reconcile(SPEC, rolling, Observations(waves=(), rolled_back_confirmed=9, rolled_back_silent=39), now)
    assert done.status.state is RolloutState.ROLLED_BACK
    assert "9 confirmed back" in done.status.message and "39 silent" in done.status.message
    assert f"/recovery/new?rollout={SPEC.id}" in done.status.message
    assert [i.kind for i in done.intents] == [IntentKind.NOTIFY]
    clean = reconcile(SPEC, rolling, Observations(waves=(), rolled_back_confirmed=9, rolled_back_silent=0), now)
    assert "9 confirmed back" in clean.status.message and "silent" not in clean.status.message and not clean.intents
    unknown = reconcile(SPEC, rolling, Observations(waves=()), now)
    assert unknown.status.state is RolloutState.ROLLED_BACK
    assert "confirmed" not in unknown.status.message and "every exposed host is back" not in unknown.status.message


def test_a_wave_waiting_for_approval_is_told_once(db: Database, clock: FakeClock, tmp_path: Path, admin: Actor,
                                                  receiver: Receiver) -> None:
    """A canary that needs an approval waits for a person: told once to the tenant, not again on every tick."""
    fleet, notifier = _setup(db, clock, tmp_path, admin, receiver.port)
    plan = ALWAYS_OPEN.replace("max_rate_per_minute: 2}", "max_rate_per_minute: 2, needs_approval: true}")
    rid = _create(fleet, plan, "291")
    rollouts.operate(db, rid, "start", actor=OPERATOR, clock=clock, notifier=notifier)
    for _ in range(3):
        fleet.heartbeat(rid)
        rollouts.tick(db, rid, clock=clock, notifier=notifier)
        clock.advance(minutes=1)
    assert rollouts.get_rollout(db, rid).status.state is RolloutState.WAITING_APPROVAL
    while notifier.run_once():
        pass
    notifier.stop()
    hooks = [(e, doc) for p, e, doc in _delivered(receiver) if p == "/acme"]
    assert [e for e, _ in hooks] == ["rollout.approval_needed"]
    assert "needs approval before" in str(hooks[0][1]["text"])


def test_a_shadow_gate_tells_once_what_it_would_have_done_and_enforces_nothing(
        db: Database, clock: FakeClock, tmp_path: Path, admin: Actor, receiver: Receiver) -> None:
    """gate: {mode: shadow} on a release that silences every exposed host: the rollout goes on, no halt is told,
    and "would have halted" reaches the tenant once although the gate says so on every tick."""
    fleet, notifier = _setup(db, clock, tmp_path, admin, receiver.port)
    plan = ALWAYS_OPEN.replace("gate: {", "gate: {mode: shadow, ").replace("fraction: 0.05", "fraction: 0.25")
    rid = _create(fleet, plan, "291")
    rollouts.operate(db, rid, "start", actor=OPERATOR, clock=clock, notifier=notifier)
    fleet.broken = lambda _h: True
    shadow_ticks = 0
    for _ in range(25):
        fleet.heartbeat(rid)
        decision = rollouts.tick(db, rid, clock=clock, notifier=notifier)
        shadow_ticks += bool(decision and any(r.code == "shadow_halt" for r in decision.reasons))
        clock.advance(minutes=1)
        notifier.run_once()
    notifier.stop()
    assert shadow_ticks > 1, rollouts.get_rollout(db, rid).status.message  # the gate said it more than once …
    status = rollouts.get_rollout(db, rid).status
    assert status.state not in (RolloutState.HALTED, RolloutState.ROLLING_BACK), status.message
    hooks = [(e, doc) for p, e, doc in _delivered(receiver) if p == "/acme"]
    assert [e for e, _ in hooks] == ["gate.shadow"]          # … people heard it once, and no halt
    assert "would have halted wave 0" in str(hooks[0][1]["title"]) and "not enforced" in str(hooks[0][1]["title"])
    assert "shadow mode: the gate would have halted wave 0" in str(hooks[0][1]["text"])
