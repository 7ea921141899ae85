"""Rollout use cases: releases, plans, tenant policies, rollouts, the reconciler tick, desired state, kill switch.

The tick (:func:`tick`) is the server's half of the engine: it loads a
rollout, counts what the engine needs (:class:`~ringfence.domain.rollout.Observations`)
from the store, calls the pure :func:`~ringfence.domain.engine.reconcile`, carries
out its intents (expose hosts, roll back) and commits the new status, the
decision log entry and the audit entry in one transaction with an optimistic
version check.  A crash at any point leaves the last committed status, so the
next tick resumes exactly there and a promotion is never applied twice.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import yaml
from sqlalchemy import text

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.adapters.db.stores import health as health_store
from ringfence.adapters.db.stores import inventory as inventory_store
from ringfence.adapters.db.stores import rollouts as store
from ringfence.adapters.db.stores.base import utc
from ringfence.domain.access import Role
from ringfence.domain.budgets import BudgetLedger, budgets_from_services
from ringfence.domain.channel import require_names
from ringfence.domain.cohorts import bucket, stratum_of
from ringfence.domain.engine import command as engine_command
from ringfence.domain.engine import initial_status
from ringfence.domain.gate import Signal, StreamCounts
from ringfence.domain.model import Host, RedundancyGroup
from ringfence.domain.plans import default_plan, plan_from_mapping, plan_to_mapping
from ringfence.domain.rollout import (
    TERMINAL,
    Artifact,
    Decision,
    IntentKind,
    Observations,
    Plan,
    Release,
    ReleaseId,
    ReleaseKind,
    RolloutId,
    RolloutSpec,
    RolloutState,
    WaveState,
)
from ringfence.domain.selector import compile_predicate
from ringfence.domain.waves import Placement, WaveCheck, assign_waves, check_plan
from ringfence.domain.windows import window_status_many
from ringfence.errors import ConflictError, InputError, NotFoundError
from ringfence.services.codec import gate_to_doc, reason_to_doc, status_from_doc, status_to_doc
from ringfence.services.context import Actor, Clock
from ringfence.services.fleet_port import (
    POOLED,
    RolloutView,
    count_streams,
    pick_eligible,
    reconcile_step,
    silent_now,
    wave_observations,
)
from ringfence.services.policies import HOLD_DELAYED, HOLD_HELD, policy_hold
from ringfence.services.policies import TenantPolicies as _Policies

__all__ = [
    "PINS",
    "POOLED",
    "RINGS",
    "InventoryCache",
    "RolloutView",
    "apply_plan",
    "create_release",
    "create_rollout",
    "desired_state",
    "get_plan",
    "get_rollout",
    "kill_switch",
    "list_rollouts",
    "operate",
    "plan_check",
    "set_policy",
    "tick",
    "tick_all",
]

RINGS = ("early", "general", "pause")
PINS = ("latest", "n-1", "exact:VERSION")
ENGINE_ACTOR = "ringfence-engine"


# --- releases -----------------------------------------------------------------------------

def create_release(db: Database, artifacts: ArtifactStore, *, product: str, version: str, kind: str,
                   platforms: list[str], files: list[tuple[str, bytes]], actor: Actor, clock: Clock,
                   reason: str = "") -> Release:
    """Store a release and its artifacts (content-addressed); releases are immutable."""
    actor.require(Role.OPERATOR, "creating releases")
    problems = []
    if not product or "@" in product or "/" in product or len(product) > 200:
        problems.append(("product", f"is {product!r}", "a product name without @ or /"))
    if not version or "@" in version or "/" in version or len(version) > 100:
        problems.append(("version", f"is {version!r}", "a version such as 7.16.18605 or 291"))
    try:
        kind_v = ReleaseKind(kind)
    except ValueError:
        problems.append(("kind", f"is {kind!r}", "one of " + ", ".join(k.value for k in ReleaseKind)))
        kind_v = ReleaseKind.APP
    valid_platforms = {"windows", "linux", "macos"}
    if not platforms or any(p not in valid_platforms for p in platforms):
        problems.append(("platform", f"is {platforms!r}", "one or more of windows, linux, macos"))
    if not files:
        problems.append(("file", "no artifact given", "at least one --file"))
    if problems:
        from ringfence.errors import FieldIssue  # noqa: PLC0415 - keeps the happy path's imports short

        raise InputError("release rejected", [FieldIssue(f, m, "release", e) for f, m, e in problems])
    require_names([("product", product), ("version", version), *(("file", n) for n, _ in files)], "release")
    stored = tuple(Artifact(name=name, sha256=artifacts.put(data), size=len(data)) for name, data in files)
    release = Release(id=ReleaseId(f"{product}@{version}"), product=product, version=version, kind=kind_v,
                      platforms=tuple(sorted(set(platforms))), artifacts=stored, created_by=actor.name)
    now = clock()
    with db.transaction() as conn:
        created = store.create_release(conn, release, now)
        audit_store.append(conn, at=now, actor=actor.name, action="release.create", target=f"release/{release.id}",
                           source=actor.source, reason=reason,
                           details={"kind": kind_v.value, "platforms": list(release.platforms),
                                    "artifacts": [{"name": a.name, "sha256": a.sha256} for a in stored]})
    return created


# --- plans and policies ---------------------------------------------------------------------

def apply_plan(db: Database, source: str, *, actor: Actor, clock: Clock, reason: str = "") -> tuple[Plan, int]:
    """Validate a plan's YAML and store it under its name; return it and its version."""
    actor.require(Role.OPERATOR, "applying plans")
    try:
        raw = yaml.safe_load(source)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError.single("plan", f"is not valid YAML{where}: {getattr(e, 'problem', e)}",
                                expected="a YAML mapping (see examples/plans/)") from e
    plan = plan_from_mapping(raw)
    now = clock()
    with db.transaction() as conn:
        version = store.upsert_plan(conn, plan.name, plan_to_mapping(plan), source, actor.name, now)
        audit_store.append(conn, at=now, actor=actor.name, action="plan.apply", target=f"plan/{plan.name}",
                           source=actor.source, reason=reason, details={"version": version})
    return plan, version


def get_plan(db: Database, name: str) -> Plan:
    """A stored plan, or the built-in default plan for ``default`` when none is stored."""
    with db.transaction() as conn:
        found = store.get_plan_document(conn, name)
    if found is None:
        if name == "default":
            return default_plan()
        raise NotFoundError(f"plan {name!r} not found; apply it with `ringfence plan apply -f FILE`")
    return plan_from_mapping(found[0])


def set_policy(db: Database, *, tenant: str, host_group: str = "", product: str = "*", ring: str = "general",
               delay_hours: float = 0.0, pin: str = "latest", actor: Actor, clock: Clock, reason: str = "") -> None:
    """Set a tenant's (or one host group's) ring, delay and pin for a product (``*`` = all)."""
    actor.require(Role.OPERATOR, "setting tenant policies")
    if ring not in RINGS:
        raise InputError.single("ring", f"is {ring!r}", expected="early, general or pause")
    if not (pin in ("latest", "n-1") or (pin.startswith("exact:") and len(pin) > len("exact:"))):
        raise InputError.single("pin", f"is {pin!r}", expected="latest, n-1 or exact:VERSION")
    if not math.isfinite(delay_hours) or delay_hours < 0 or delay_hours > 24 * 90:
        raise InputError.single("delay_hours", f"is {delay_hours}", expected="0 … 2160 hours")
    if host_group:
        compile_predicate(host_group)
    now = clock()
    with db.transaction() as conn:
        if not inventory_store.existing_tenant_ids(conn, [tenant]):
            raise NotFoundError(f"tenant {tenant!r} not found")
        store.set_policy(conn, tenant=tenant, host_group=host_group, product=product, ring=ring,
                         delay_hours=delay_hours, pin=pin, now=now)
        audit_store.append(conn, at=now, actor=actor.name, action="policy.set", target=f"tenant/{tenant}",
                           source=actor.source, reason=reason,
                           details={"host_group": host_group, "product": product, "ring": ring,
                                    "delay_hours": delay_hours, "pin": pin})


# --- rollouts -------------------------------------------------------------------------------

class InventoryCache:
    """The whole inventory between reconciler ticks, reloaded only when it changed.

    Validity is checked with one aggregate query (host count, newest update, sum of row versions), so an
    import, an upsert or a deletion is seen at the next tick; the cache only saves re-reading unchanged hosts.
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._hosts: list[Host] = []

    def hosts(self, conn: Any) -> list[Host]:
        """Every host, from the cache when the inventory has not changed."""
        key = tuple(conn.execute(text("SELECT count(*), max(updated_at), sum(version) FROM hosts")).one())
        if key != self._key:
            self._hosts = _all_hosts(conn)
            self._key = key
        return self._hosts


def _all_hosts(conn: Any) -> list[Host]:
    return inventory_store.all_hosts(conn)


def _targets(plan: Plan, release: Release, hosts: Iterable[Host]) -> list[Host]:
    pred = compile_predicate(plan.selector) if plan.selector else None
    return [h for h in hosts if h.os_family.value in release.platforms and (pred is None or pred(h))]


def _placements(plan: Plan, salt: str, hosts: list[Host], policies: _Policies) -> list[Placement]:
    preds = [compile_predicate(w.selector) if w.selector else None for w in plan.waves]
    return [Placement(host_id=h.id, stratum=stratum_of(h), bucket=bucket(salt, h.id), tier=h.tier,
                      selected=tuple(bool(p is not None and p(h)) for p in preds),
                      early=policies.of(h).ring == "early") for h in hosts]


def plan_check(db: Database, plan_name: str, release_id: str, *, actor: Actor) -> WaveCheck:
    """Wave sizes for a release under a plan, and the strata the first wave misses."""
    actor.require(Role.VIEWER, "checking plans")
    plan = get_plan(db, plan_name)
    with db.transaction() as conn:
        release = store.get_release(conn, release_id)
        if release is None:
            raise NotFoundError(f"release {release_id!r} not found")
        hosts = _targets(plan, release, _all_hosts(conn))
        policies = _Policies(store.list_policies(conn), release.product)
    return check_plan(plan, _placements(plan, "check", hosts, policies))


def create_rollout(db: Database, *, release_id: str, plan_name: str = "default", actor: Actor, clock: Clock,
                   reason: str = "", start: bool = False) -> RolloutView:
    """Create a rollout of a release under a plan: target hosts, place them in waves; optionally start it."""
    actor.require(Role.OPERATOR, "creating rollouts")
    plan = get_plan(db, plan_name)
    now = clock()
    rollout_id = RolloutId(f"ro-{now:%Y%m%d}-{secrets.token_hex(3)}")
    salt = secrets.token_hex(8)
    with db.transaction() as conn:
        release = store.get_release(conn, release_id)
        if release is None:
            raise NotFoundError(f"release {release_id!r} not found; create it with `ringfence release create`")
        hosts = _targets(plan, release, _all_hosts(conn))
        if not hosts:
            raise InputError.single("release", f"{release_id} targets no host in the inventory",
                                    expected=f"hosts with os_family in {list(release.platforms)}"
                                    + (f" matching {plan.selector!r}" if plan.selector else ""))
        policies = _Policies(store.list_policies(conn), release.product)
        placements = _placements(plan, salt, hosts, policies)
        waves = assign_waves(plan, placements)
        spec = RolloutSpec(id=rollout_id, release=release, plan=plan, salt=salt, created_by=actor.name, created_at=now)
        status = initial_status(spec)
        store.create_rollout(conn, rollout_id=rollout_id, release_id=release.id, product=release.product,
                             plan=plan_to_mapping(plan), salt=salt, status=status_to_doc(status),
                             state=status.state.value, actor=actor.name, now=now,
                             hosts=[(p.host_id, w, p.bucket, p.stratum) for p, w in zip(placements, waves, strict=True)])
        sizes = [waves.count(i) for i in range(len(plan.waves))]
        store.add_decision(conn, rollout_id, at=now, state=status.state.value, wave=0, actor=actor.name,
                           message=f"created: {release.id} under plan {plan.name} targeting {len(hosts):,} hosts, "
                                   f"waves {sizes}", reasons=[], evidence={})
        audit_store.append(conn, at=now, actor=actor.name, action="rollout.create", target=f"rollout/{rollout_id}",
                           source=actor.source, reason=reason,
                           details={"release": release.id, "plan": plan.name, "hosts": len(hosts), "waves": sizes})
    view = get_rollout(db, rollout_id)
    if start:
        view = operate(db, rollout_id, "start", actor=actor, clock=clock, reason=reason)
    return view


def _view(row: Any, release: Release) -> RolloutView:
    plan = plan_from_mapping(row.plan)
    created = row.created_at
    spec = RolloutSpec(id=RolloutId(row.id), release=release, plan=plan, salt=row.salt, created_by=row.created_by,
                       created_at=created)
    return RolloutView(spec=spec, status=status_from_doc(row.status), version=int(row.version))


def _load(conn: Any, rollout_id: str) -> RolloutView:
    row = store.get_rollout_row(conn, rollout_id)
    if row is None:
        raise NotFoundError(f"rollout {rollout_id!r} not found")
    release = store.get_release(conn, row.release_id)
    assert release is not None
    return _view(row, release)


def get_rollout(db: Database, rollout_id: str) -> RolloutView:
    """One rollout's spec and status."""
    with db.transaction() as conn:
        return _load(conn, rollout_id)


def list_rollouts(db: Database, *, actor: Actor, active_only: bool = False) -> list[RolloutView]:
    """Rollouts, newest first."""
    actor.require(Role.VIEWER, "listing rollouts")
    with db.transaction() as conn:
        rows = store.list_rollout_rows(conn)
        releases = {r.id: r for r in store.list_releases(conn)}
    views = [_view(r, releases[r.release_id]) for r in rows]
    return [v for v in views if not active_only or v.status.state not in TERMINAL]


def _record(conn: Any, view: RolloutView, decision: Decision, *, actor: str, source: str, at: datetime,
            reason: str = "", audit_action: str = "") -> int:
    new_version = store.save_status(conn, view.spec.id, view.version, decision.status.state.value,
                                    status_to_doc(decision.status))
    store.add_decision(conn, view.spec.id, at=at, state=decision.status.state.value, wave=decision.status.wave,
                       actor=actor, message=decision.status.message or decision.summary,
                       reasons=[reason_to_doc(r) for r in decision.reasons], evidence=gate_to_doc(decision.gate))
    if audit_action:
        audit_store.append(conn, at=at, actor=actor, action=audit_action, target=f"rollout/{view.spec.id}",
                           source=source, reason=reason,
                           details={"state": decision.status.state.value, "wave": decision.status.wave,
                                    "message": decision.status.message})
    return new_version


def operate(db: Database, rollout_id: str, op: str, *, actor: Actor, clock: Clock, reason: str = "") -> RolloutView:
    """Apply an operator command (start, pause, resume, approve, halt, rollback, abort)."""
    needed = Role.APPROVER if op == "approve" else Role.OPERATOR
    actor.require(needed, f"{op} of a rollout")
    if op == "start":  # release gates (signature, SBOM, vulnerabilities, content contract) before wave 0
        from ringfence.services import release_gates  # noqa: PLC0415 - gates live in their own module

        release_gates.check_before_start(db, rollout_id, actor=actor, clock=clock)
    now = clock()
    with db.transaction() as conn:
        view = _load(conn, rollout_id)
        if op in ("start", "resume") and store.kill_switch(conn, view.spec.release.product) is not None:
            raise ConflictError(f"cannot {op}: the kill switch for {view.spec.release.product} is engaged; "
                                f"release it first with `ringfence killswitch {view.spec.release.product} --release`")
        decision = engine_command(view.spec, view.status, op, actor=actor.name, now=now, reason=reason)
        if any(i.kind is IntentKind.ROLLBACK for i in decision.intents):
            store.mark_rolled_back(conn, rollout_id, now)
        _record(conn, view, decision, actor=actor.name, source=actor.source, at=now, reason=reason,
                audit_action=f"rollout.{op}")
    return get_rollout(db, rollout_id)


# --- observations and the tick ----------------------------------------------------------------

@dataclass
class _HostRow:
    host: Host
    wave: int
    bucket: int
    stratum: str
    exposed_at: datetime | None
    rolled_back_at: datetime | None


def _members(hosts_by_id: dict[str, Host]) -> Any:
    def members_of(group: RedundancyGroup) -> Iterable[str]:
        if group.hosts:
            return list(group.hosts)
        pred = compile_predicate(group.selector)
        return [h.id for h in hosts_by_id.values() if pred(h)]
    return members_of


def _seconds(at: datetime | None, origin: datetime) -> float:
    return math.nan if at is None else (at - origin).total_seconds()


class _StoreFleet:
    """The server's :class:`~ringfence.services.fleet_port.FleetView`: per-host state in the database.

    Runs inside the tick's transaction; ``expose`` uses the candidates of the preceding ``observe``.
    """

    def __init__(self, conn: Any, cache: InventoryCache | None) -> None:
        self._conn = conn
        self._cache = cache
        self._items: list[_HostRow] = []
        self._eligible: Any = np.zeros(0, dtype=bool)
        self._wave: Any = np.zeros(0, dtype=np.int64)
        self._bucket: Any = np.zeros(0, dtype=np.int64)
        self._ledger: BudgetLedger | None = None

    def observe(self, view: RolloutView, now: datetime) -> Observations:
        """Count the engine's observations from the store (see fleet_port for the rules)."""
        conn = self._conn
        spec, status = view.spec, view.status
        plan = spec.plan
        rows = store.rollout_host_rows(conn, spec.id)
        cache = self._cache
        hosts_by_id: dict[str, Host] = {h.id: h for h in (cache.hosts(conn) if cache else _all_hosts(conn))}
        items = [_HostRow(hosts_by_id[r.host_id], r.wave, r.bucket, r.stratum, utc(r.exposed_at),
                          utc(r.rolled_back_at)) for r in rows if r.host_id in hosts_by_id]
        ids = [i.host.id for i in items]
        beats = health_store.heartbeats(conn, ids)
        policies = _Policies(store.list_policies(conn), spec.release.product)
        started = status.started_at or now
        grace = plan.silence_grace
        holds = [policy_hold(policies.of(i.host), spec.release.version, started, now) for i in items]
        key_of = {k: j for j, k in enumerate(sorted({(i.host.timezone, i.host.country, i.host.subdivision)
                                                     for i in items}))}
        windows = window_status_many(plan.windows, plan.freeze, key_of, now)
        passed = {k for k, w in enumerate(status.waves) if w.state is WaveState.PASSED}
        # Unproven exposure: this rollout's exposed hosts in waves not yet passed, plus every exposed host of
        # the product's other unfinished rollouts (conservative: their gates have not vouched for them here).
        # A host that has run the release for its wave's whole bake time without the gate failing counts as
        # proven too, so members of one group can follow each other within the last wave.
        exposed_ids = {i.host.id for i in items if i.exposed_at is not None and i.rolled_back_at is None
                       and i.wave not in passed and now - i.exposed_at < plan.waves[i.wave].min_bake}
        ledger = None
        if plan.disruption_budgets:
            services = inventory_store.list_services(conn)
            budgets = budgets_from_services(services, _members(hosts_by_id))
            for other in store.list_rollout_rows(conn, states=[st.value for st in RolloutState if st not in TERMINAL]):
                if other.id != spec.id:
                    exposed_ids |= {r.host_id for r in store.rollout_host_rows(conn, other.id)
                                    if r.exposed_at is not None and r.rolled_back_at is None}
            # Members known to be offline already count against min_healthy (never-seen hosts are not assumed down).
            members = {m for b in budgets for m in b.members}
            member_beats = health_store.heartbeats(conn, members)
            down = {m for m, beat in member_beats.items() if now - beat > grace}
            ledger = BudgetLedger(budgets, exposed_ids, down=down)
        self._ledger = ledger

        running = health_store.versions_of(conn, [i.host.id for i in items if i.exposed_at is not None],
                                           spec.release.product)
        wave = np.array([i.wave for i in items], dtype=np.int64)
        exposed_s = np.array([_seconds(i.exposed_at, now) for i in items], dtype=np.float64)
        rolled_back = np.array([i.rolled_back_at is not None for i in items], dtype=bool)
        beat_s = np.array([_seconds(beats.get(h), now) for h in ids], dtype=np.float64)

        def budget_ok(idx: Any) -> Any:
            assert ledger is not None
            return np.array([ledger.can_expose(items[j].host.id)[0] for j in idx], dtype=bool)

        counts = wave_observations(
            waves=len(plan.waves), wave=wave, exposed_s=exposed_s, rolled_back=rolled_back,
            held=np.array([h == HOLD_HELD for h in holds], dtype=bool),
            delayed=np.array([h == HOLD_DELAYED for h in holds], dtype=bool),
            key=np.array([key_of[(i.host.timezone, i.host.country, i.host.subdivision)] for i in items],
                         dtype=np.int64),
            windows=[windows[k] for k in key_of], beat_s=beat_s,
            runs_release=np.array([running.get(h, ("", ""))[0] == spec.release.version for h in ids], dtype=bool),
            now_s=0.0, grace_s=grace.total_seconds(), name_of=lambda j: items[j].host.hostname,
            budget_ok=budget_ok if ledger is not None else None)
        self._items, self._eligible = items, counts.eligible
        self._wave, self._bucket = wave, np.array([i.bucket for i in items], dtype=np.int64)
        streams = self._streams(view, items, exposed_s, rolled_back, beat_s, now)
        as_of = max(beats.values()) if beats else None
        return Observations(waves=counts.waves, streams=tuple(streams), health_as_of=as_of,
                            rolled_back_pending=counts.rolled_back_pending)

    def _streams(self, view: RolloutView, items: list[_HostRow], exposed_s: Any, rolled_back: Any, beat_s: Any,
                 now: datetime) -> list[StreamCounts]:
        """Gate counts per stratum × signal: exposed hosts against not-yet-exposed hosts of the same stratum."""
        conn = self._conn
        spec, status = view.spec, view.status
        started = status.started_at or now
        grace = spec.plan.silence_grace
        ids = [i.host.id for i in items]
        treated_events = health_store.events_for(conn, [spec.id], started - grace)
        control_events = health_store.events_for(conn, [""], started)
        # Control = not-yet-exposed hosts that had reported before the rollout started; silence is recorded
        # as an event the first time it is seen, so a host that comes back still counts as having failed.
        first = health_store.first_heartbeats(conn, ids)
        control = np.array([i.exposed_at is None and i.host.id in first and first[i.host.id] <= started
                            for i in items], dtype=bool)
        s_treated, s_control = silent_now(exposed_s=exposed_s, rolled_back=rolled_back, control=control,
                                          beat_s=beat_s, now_s=0.0, grace_s=grace.total_seconds())
        silent_t = {ids[j] for j in np.flatnonzero(s_treated)}
        silent_c = {ids[j] for j in np.flatnonzero(s_control)}
        new_events: list[tuple[str, str, str, datetime]] = [
            (h, spec.id, "silent", now) for h in sorted(silent_t - treated_events.get("silent", set()))]
        new_events += [(h, "", "silent", now) for h in sorted(silent_c - control_events.get("silent", set()))]
        health_store.record_events(conn, new_events)
        treated_first = health_store.first_event_times(conn, [spec.id], started - grace)
        control_first = health_store.first_event_times(conn, [""], started)
        treated = ~np.isnan(exposed_s) & ~rolled_back

        def firsts(found: dict[str, dict[str, datetime]]) -> dict[Signal, Any]:
            return {signal: np.array([_seconds(found.get(signal.value, {}).get(h), now) for h in ids],
                                     dtype=np.float64) for signal in Signal}

        strata = sorted({i.stratum for i in items})
        index = {s: j for j, s in enumerate(strata)}
        return count_streams(strata=strata, stratum=np.array([index[i.stratum] for i in items], dtype=np.int64),
                             treated=treated, control=control, exposed_s=exposed_s,
                             treated_first_s=firsts(treated_first), control_first_s=firsts(control_first),
                             started_s=_seconds(started, now), now_s=0.0,
                             min_treated=spec.plan.gate.min_treated_hosts)

    def expose(self, view: RolloutView, wave: int, hosts: int, now: datetime) -> int:
        """Offer the release to up to ``hosts`` eligible hosts of ``wave``, recording what each ran (the way back)."""
        order = pick_eligible(self._eligible, self._wave, self._bucket, wave)
        ids: list[str] = [self._items[int(j)].host.id for j in order]
        ledger = self._ledger
        if ledger is not None:
            # Hosts another rollout already exposed cost no budget again; the rest go through the ledger.
            already = [h for h in ids if h in ledger.exposed][:hosts]
            fresh = [h for h in ids if h not in ledger.exposed]
            chosen = already + ledger.select(fresh, hosts - len(already))
        else:
            chosen = ids[:hosts]
        running = health_store.versions_of(self._conn, chosen, view.spec.release.product)
        return store.expose_hosts(self._conn, view.spec.id, {h: running.get(h, ("", ""))[0] for h in chosen},
                                  wave, now)

    def roll_back(self, view: RolloutView, now: datetime) -> int:
        """Send every exposed host back to what it ran before."""
        return store.mark_rolled_back(self._conn, view.spec.id, now)


class _StoreRepository:
    """The server's :class:`~ringfence.services.fleet_port.RolloutRepository`, inside the tick's transaction."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def kill_switch_engaged(self, product: str) -> bool:
        return store.kill_switch(self._conn, product) is not None

    def record(self, view: RolloutView, decision: Decision, *, at: datetime, audit_action: str) -> None:
        _record(self._conn, view, decision, actor=ENGINE_ACTOR, source="reconciler", at=at, audit_action=audit_action)

    def save_status(self, view: RolloutView, decision: Decision) -> None:
        store.save_status(self._conn, view.spec.id, view.version, decision.status.state.value,
                          status_to_doc(decision.status))


def tick(db: Database, rollout_id: str, *, clock: Clock, cache: InventoryCache | None = None) -> Decision | None:
    """One reconcile step for one rollout, committed atomically; None when there was nothing to do."""
    now = clock()
    with db.transaction() as conn:
        view = _load(conn, rollout_id)
        return reconcile_step(view, _StoreFleet(conn, cache), _StoreRepository(conn), now)


def tick_all(db: Database, *, clock: Clock, cache: InventoryCache | None = None) -> dict[str, str]:
    """Tick every active rollout; a conflict (another reconciler won) is skipped, not an error."""
    with db.transaction() as conn:
        ids = [r.id for r in store.list_rollout_rows(conn, states=[s.value for s in RolloutState
                                                                   if s not in TERMINAL and s not in (
                                                                       RolloutState.PENDING, RolloutState.HALTED)])]
    out: dict[str, str] = {}
    for rid in ids:
        try:
            decision = tick(db, rid, clock=clock, cache=cache)
            out[rid] = decision.status.state.value if decision else "idle"
        except ConflictError:
            out[rid] = "conflict"
    return out


# --- desired state and the kill switch --------------------------------------------------------

def desired_state(db: Database, host_id: str, *, actor: Actor | None = None) -> dict[str, dict[str, Any]]:
    """What each product should be on this host, and why (rollouts, pins, kill switch).

    The rules live in :mod:`ringfence.services.desired`, which answers for many hosts at once.
    """
    from ringfence.services.desired import desired_one  # noqa: PLC0415 - desired imports this module

    if actor is not None:
        actor.require(Role.VIEWER, "reading desired state")
    with db.transaction() as conn:
        host = inventory_store.get_host(conn, host_id)
        if host is None:
            raise NotFoundError(f"host {host_id!r} not found")
        return {product: d.as_dict() for product, d in desired_one(conn, host).items()}


def kill_switch(db: Database, product: str, *, engage: bool = True, actor: Actor, clock: Clock,
                reason: str = "") -> list[str]:
    """Halt every rollout of a product and send its hosts back to their last known good version."""
    actor.require(Role.OPERATOR, "the kill switch")
    now = clock()
    halted: list[str] = []
    with db.transaction() as conn:
        if not store.list_releases(conn, product):
            raise NotFoundError(f"product {product!r} has no releases")
        store.set_kill_switch(conn, product, active=engage, actor=actor.name, reason=reason, now=now)
        audit_store.append(conn, at=now, actor=actor.name, action="killswitch." + ("engage" if engage else "release"),
                           target=f"product/{product}", source=actor.source, reason=reason, details={})
        if engage:
            for row in store.list_rollout_rows(conn, product=product):
                release = store.get_release(conn, row.release_id)
                assert release is not None
                view = _view(row, release)
                if view.status.state in TERMINAL:
                    continue
                # Every exposed host goes back to what it ran before, and stays there after the switch is
                # released (releasing the switch does not re-expose anyone).
                store.mark_rolled_back(conn, row.id, now)
                if view.status.state in (RolloutState.HALTED, RolloutState.ROLLING_BACK):
                    continue
                op = "abort" if view.status.state is RolloutState.PENDING else "halt"
                decision = engine_command(view.spec, view.status, op, actor=actor.name, now=now,
                                          reason=f"kill switch: {reason}" if reason else "kill switch")
                _record(conn, view, decision, actor=actor.name, source=actor.source, at=now, reason=reason,
                        audit_action=f"rollout.{op}")
                halted.append(row.id)
    return halted
