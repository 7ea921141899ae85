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
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.fleet import DatabaseFleet, DatabaseRepository, InventoryCache, list_views, load_view, rollout_ids
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.adapters.db.stores import inventory as inventory_store
from ringfence.adapters.db.stores import rollouts as store
from ringfence.adapters.notify.rules import plan_rules, rules_to_doc
from ringfence.adapters.yamlfile import load_yaml
from ringfence.domain.access import Role
from ringfence.domain.channel import require_names
from ringfence.domain.engine import command as engine_command
from ringfence.domain.engine import initial_status
from ringfence.domain.plans import default_plan, plan_from_mapping, plan_to_mapping
from ringfence.domain.policies import TenantPolicies
from ringfence.domain.rollout import (
    TERMINAL,
    Artifact,
    Decision,
    Intent,
    IntentKind,
    Plan,
    Release,
    ReleaseId,
    ReleaseKind,
    RolloutId,
    RolloutSpec,
    RolloutState,
)
from ringfence.domain.selector import compile_predicate
from ringfence.domain.targeting import placements, targets
from ringfence.domain.waves import WaveCheck, assign_waves, check_plan
from ringfence.errors import ConflictError, InputError, NotFoundError, shown
from ringfence.services.codec import status_to_doc
from ringfence.services.context import Actor, Clock
from ringfence.services.fleet_port import POOLED, RolloutView, apply_intents, carry_out, reconcile_step
from ringfence.services.notify import Event, LogNotifier, Notification, Notifier

if TYPE_CHECKING:  # the release gates (and so the supply chain) are imported only when a rollout starts
    from ringfence.services.supply_chain import AdvisoryIndexCache

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
                   platforms: list[str], files: Sequence[tuple[str, bytes | IO[bytes]]], actor: Actor, clock: Clock,
                   reason: str = "") -> Release:
    """Store a release and its artifacts (content-addressed); releases are immutable.

    An artifact is given as bytes or as a binary stream (an upload where it is spooled), which is copied into
    the store a buffer at a time, never read whole.
    """
    actor.require(Role.OPERATOR, "creating releases")
    problems = []
    if not product or "@" in product or "/" in product or len(product) > 200:
        problems.append(("product", f"is {shown(product)}", "a product name without @ or /"))
    if not version or "@" in version or "/" in version or len(version) > 100:
        problems.append(("version", f"is {shown(version)}", "a version such as 7.16.18605 or 291"))
    try:
        kind_v = ReleaseKind(kind)
    except ValueError:
        problems.append(("kind", f"is {shown(kind)}", "one of " + ", ".join(k.value for k in ReleaseKind)))
        kind_v = ReleaseKind.APP
    valid_platforms = {"windows", "linux", "macos"}
    if not platforms or any(p not in valid_platforms for p in platforms):
        problems.append(("platform", f"is {shown(platforms)}", "one or more of windows, linux, macos"))
    if not files:
        problems.append(("file", "no artifact given", "at least one --file"))
    if problems:
        from ringfence.errors import FieldIssue  # noqa: PLC0415 - keeps the happy path's imports short

        raise InputError("release rejected", [FieldIssue(f, m, "release", e) for f, m, e in problems])
    require_names([("product", product), ("version", version), *(("file", n) for n, _ in files)], "release")
    stored = []
    for name, data in files:
        sha256, size = (artifacts.put(data), len(data)) if isinstance(data, bytes) else artifacts.put_stream(data)
        stored.append(Artifact(name=name, sha256=sha256, size=size))
    release = Release(id=ReleaseId(f"{product}@{version}"), product=product, version=version, kind=kind_v,
                      platforms=tuple(sorted(set(platforms))), artifacts=tuple(stored), created_by=actor.name)
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
    raw = load_yaml(source, what="plan", expected="a YAML mapping (see examples/plans/)")
    plan = plan_from_mapping(raw)
    document = plan_to_mapping(plan)
    if raw.get("notify") is not None:  # who hears about this plan's rollouts (docs/notifications.md)
        document["notify"] = rules_to_doc(plan_rules(plan.name, raw["notify"]))["notify"]
    now = clock()
    with db.transaction() as conn:
        version = store.upsert_plan(conn, plan.name, document, source, actor.name, now)
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
        raise NotFoundError(f"plan {shown(name)} not found; apply it with `ringfence plan apply -f FILE`")
    return plan_from_mapping(found[0])


def set_policy(db: Database, *, tenant: str, host_group: str = "", product: str = "*", ring: str = "general",
               delay_hours: float = 0.0, pin: str = "latest", actor: Actor, clock: Clock, reason: str = "") -> None:
    """Set a tenant's (or one host group's) ring, delay and pin for a product (``*`` = all)."""
    actor.require(Role.OPERATOR, "setting tenant policies")
    if ring not in RINGS:
        raise InputError.single("ring", f"is {shown(ring)}", expected="early, general or pause")
    if not (pin in ("latest", "n-1") or (pin.startswith("exact:") and len(pin) > len("exact:"))):
        raise InputError.single("pin", f"is {shown(pin)}", expected="latest, n-1 or exact:VERSION")
    if not math.isfinite(delay_hours) or delay_hours < 0 or delay_hours > 24 * 90:
        raise InputError.single("delay_hours", f"is {delay_hours}", expected="0 … 2160 hours")
    if host_group:
        compile_predicate(host_group)
    now = clock()
    with db.transaction() as conn:
        if not inventory_store.existing_tenant_ids(conn, [tenant]):
            raise NotFoundError(f"tenant {shown(tenant)} not found")
        store.set_policy(conn, tenant=tenant, host_group=host_group, product=product, ring=ring,
                         delay_hours=delay_hours, pin=pin, now=now)
        audit_store.append(conn, at=now, actor=actor.name, action="policy.set", target=f"tenant/{tenant}",
                           source=actor.source, reason=reason,
                           details={"host_group": host_group, "product": product, "ring": ring,
                                    "delay_hours": delay_hours, "pin": pin})


# --- rollouts -------------------------------------------------------------------------------

def plan_check(db: Database, plan_name: str, release_id: str, *, actor: Actor) -> WaveCheck:
    """Wave sizes for a release under a plan, and the strata the first wave misses."""
    actor.require(Role.VIEWER, "checking plans")
    plan = get_plan(db, plan_name)
    with db.transaction() as conn:
        release = store.get_release(conn, release_id)
        if release is None:
            raise NotFoundError(f"release {shown(release_id)} not found")
        hosts = targets(plan, release.platforms, inventory_store.all_hosts(conn))
        policies = TenantPolicies(store.list_policies(conn), release.product)
    return check_plan(plan, placements(plan, "check", hosts, policies))


def create_rollout(db: Database, *, release_id: str, plan_name: str = "default", actor: Actor, clock: Clock,
                   reason: str = "", start: bool = False, notifier: Notifier | None = None,
                   artifacts: ArtifactStore | None = None,
                   advisory_cache: AdvisoryIndexCache | None = None) -> RolloutView:
    """Create a rollout of a release under a plan: target hosts, place them in waves; optionally start it.

    ``artifacts`` and ``advisory_cache`` are the application context's, for the release gates of the start
    (see :func:`operate`).
    """
    actor.require(Role.OPERATOR, "creating rollouts")
    plan = get_plan(db, plan_name)
    now = clock()
    rollout_id = RolloutId(f"ro-{now:%Y%m%d}-{secrets.token_hex(3)}")
    salt = secrets.token_hex(8)
    with db.transaction() as conn:
        release = store.get_release(conn, release_id)
        if release is None:
            raise NotFoundError(f"release {shown(release_id)} not found; create it with `ringfence release create`")
        hosts = targets(plan, release.platforms, inventory_store.all_hosts(conn))
        if not hosts:
            raise InputError.single("release", f"{release_id} targets no host in the inventory",
                                    expected=f"hosts with os_family in {list(release.platforms)}"
                                    + (f" matching {shown(plan.selector)}" if plan.selector else ""))
        policies = TenantPolicies(store.list_policies(conn), release.product)
        placed = placements(plan, salt, hosts, policies)
        waves = assign_waves(plan, placed)
        spec = RolloutSpec(id=rollout_id, release=release, plan=plan, salt=salt, created_by=actor.name, created_at=now)
        status = initial_status(spec)
        store.create_rollout(conn, rollout_id=rollout_id, release_id=release.id, product=release.product,
                             plan=plan_to_mapping(plan), salt=salt, status=status_to_doc(status),
                             state=status.state.value, actor=actor.name, now=now,
                             hosts=[(p.host_id, w, p.bucket, p.stratum) for p, w in zip(placed, waves, strict=True)])
        sizes = [waves.count(i) for i in range(len(plan.waves))]
        store.add_decision(conn, rollout_id, at=now, state=status.state.value, wave=0, actor=actor.name,
                           message=f"created: {release.id} under plan {plan.name} targeting {len(hosts):,} hosts, "
                                   f"waves {sizes}", reasons=[], evidence={})
        audit_store.append(conn, at=now, actor=actor.name, action="rollout.create", target=f"rollout/{rollout_id}",
                           source=actor.source, reason=reason,
                           details={"release": release.id, "plan": plan.name, "hosts": len(hosts), "waves": sizes})
    view = get_rollout(db, rollout_id)
    if start:
        view = operate(db, rollout_id, "start", actor=actor, clock=clock, reason=reason, notifier=notifier,
                       artifacts=artifacts, advisory_cache=advisory_cache)
    return view


def get_rollout(db: Database, rollout_id: str) -> RolloutView:
    """One rollout's spec and status."""
    with db.transaction() as conn:
        return load_view(conn, rollout_id)


def list_rollouts(db: Database, *, actor: Actor, active_only: bool = False) -> list[RolloutView]:
    """Rollouts, newest first."""
    actor.require(Role.VIEWER, "listing rollouts")
    with db.transaction() as conn:
        views = list_views(conn)
    return [v for v in views if not active_only or v.status.state not in TERMINAL]


def operate(db: Database, rollout_id: str, op: str, *, actor: Actor, clock: Clock, reason: str = "",
            notifier: Notifier | None = None, artifacts: ArtifactStore | None = None,
            advisory_cache: AdvisoryIndexCache | None = None) -> RolloutView:
    """Apply an operator command (start, pause, resume, approve, halt, rollback, abort).

    The decision is carried out by :func:`~ringfence.services.fleet_port.carry_out`, like the reconciler's:
    a rollback sends every exposed host back, and a halt or rollback is told to ``notifier``.  A start runs
    the release gates first, with the application context's ``artifacts`` (the content contract reads the
    content; without a store that gate is inconclusive) and ``advisory_cache`` (the advisory index).
    """
    needed = Role.APPROVER if op == "approve" else Role.OPERATOR
    actor.require(needed, f"{op} of a rollout")
    if op == "start":  # release gates (signature, SBOM, vulnerabilities, content contract) before wave 0
        from ringfence.services import release_gates  # noqa: PLC0415 - gates live in their own module

        try:
            release_gates.check_before_start(db, rollout_id, actor=actor, clock=clock, artifacts=artifacts,
                                             advisory_cache=advisory_cache)
        except ConflictError as refused:  # the gates refused the start: people hear it, then the caller does
            _tell_refused(db, rollout_id, str(refused), notifier or LogNotifier(), clock())
            raise
    now = clock()
    with db.transaction() as conn:
        view = load_view(conn, rollout_id)
        if op in ("start", "resume") and store.kill_switch(conn, view.spec.release.product) is not None:
            raise ConflictError(f"cannot {op}: the kill switch for {view.spec.release.product} is engaged; "
                                f"release it first with `ringfence killswitch {view.spec.release.product} --release`")
        decision = engine_command(view.spec, view.status, op, actor=actor.name, now=now, reason=reason)
        carry_out(view, decision, fleet=DatabaseFleet(conn), notifier=notifier or LogNotifier(), now=now,
                  repo=DatabaseRepository(conn, actor=actor.name, source=actor.source, reason=reason),
                  audit_action=f"rollout.{op}")
    return get_rollout(db, rollout_id)


def _tell_refused(db: Database, rollout_id: str, why: str, notifier: Notifier, now: datetime) -> None:
    release = get_rollout(db, rollout_id).spec.release.id
    notifier.notify(Notification(event=Event.RELEASE_GATE_REFUSED, subject=rollout_id, at=now,
                                 title=f"{release}: rollout {rollout_id} not started, release gates failed",
                                 text=why, details={"rollout": rollout_id, "release": str(release)},
                                 rollouts=(rollout_id,)))


# --- the tick ---------------------------------------------------------------------------------

_TICKED = [s for s in RolloutState if s not in TERMINAL and s not in (RolloutState.PENDING, RolloutState.HALTED)]


def tick(db: Database, rollout_id: str, *, clock: Clock, cache: InventoryCache | None = None,
         notifier: Notifier | None = None, complete_through: datetime | None = None) -> Decision | None:
    """One reconcile step for one rollout, committed atomically; None when there was nothing to do.

    ``complete_through``: the time up to which every health report is in the database (None: all are); the
    gate counts events only up to it (:class:`~ringfence.adapters.db.fleet.DatabaseFleet`).
    """
    now = clock()
    with db.transaction() as conn:
        view = load_view(conn, rollout_id)
        return reconcile_step(view, DatabaseFleet(conn, cache, complete_through=complete_through), DatabaseRepository(
            conn, actor=ENGINE_ACTOR, source="reconciler"), now, notifier=notifier or LogNotifier())


def tick_all(db: Database, *, clock: Clock, cache: InventoryCache | None = None,
             notifier: Notifier | None = None, complete_through: datetime | None = None) -> dict[str, str]:
    """Tick every active rollout (``complete_through``: see :func:`tick`); a conflict (another reconciler
    won) is skipped, not an error."""
    with db.transaction() as conn:
        ids = rollout_ids(conn, _TICKED)
    out: dict[str, str] = {}
    for rid in ids:
        try:
            decision = tick(db, rid, clock=clock, cache=cache, notifier=notifier, complete_through=complete_through)
            out[rid] = decision.status.state.value if decision else "idle"
        except ConflictError:
            out[rid] = "conflict"
    return out


# --- desired state and the kill switch --------------------------------------------------------

def desired_state(db: Database, host_id: str, *, actor: Actor | None = None) -> dict[str, dict[str, Any]]:
    """What each product should be on this host, and why (rollouts, pins, kill switch).

    The rule lives in :mod:`ringfence.domain.desired`; :mod:`ringfence.services.desired` answers for many hosts.
    """
    from ringfence.services.desired import desired_one  # noqa: PLC0415 - desired imports this module's stores

    if actor is not None:
        actor.require(Role.VIEWER, "reading desired state")
    with db.transaction() as conn:
        host = inventory_store.get_host(conn, host_id)
        if host is None:
            raise NotFoundError(f"host {shown(host_id)} not found")
        return {product: d.as_dict() for product, d in desired_one(conn, host).items()}


def kill_switch(db: Database, product: str, *, engage: bool = True, actor: Actor, clock: Clock,
                reason: str = "", notifier: Notifier | None = None) -> list[str]:
    """Halt every rollout of a product and send its hosts back to their last known good version."""
    actor.require(Role.OPERATOR, "the kill switch")
    notifier = notifier or LogNotifier()
    now = clock()
    halted: list[str] = []
    with db.transaction() as conn:
        if not store.list_releases(conn, product):
            raise NotFoundError(f"product {shown(product)} has no releases")
        store.set_kill_switch(conn, product, active=engage, actor=actor.name, reason=reason, now=now)
        audit_store.append(conn, at=now, actor=actor.name, action="killswitch." + ("engage" if engage else "release"),
                           target=f"product/{product}", source=actor.source, reason=reason, details={})
        if engage:
            fleet = DatabaseFleet(conn)
            repo = DatabaseRepository(conn, actor=actor.name, source=actor.source, reason=reason)
            why = f"kill switch: {reason}" if reason else "kill switch"
            for view in list_views(conn, product=product):
                if view.status.state in TERMINAL:
                    continue
                # Every exposed host goes back to what it ran before, and stays there after the switch is
                # released (releasing the switch does not re-expose anyone).
                back = Intent(IntentKind.ROLLBACK, wave=view.status.wave, message=why)
                if view.status.state in (RolloutState.HALTED, RolloutState.ROLLING_BACK):
                    apply_intents(view, (back,), fleet=fleet, now=now)
                    continue
                op = "abort" if view.status.state is RolloutState.PENDING else "halt"
                decision = engine_command(view.spec, view.status, op, actor=actor.name, now=now, reason=why)
                carry_out(view, replace(decision, intents=(back, *decision.intents)), fleet=fleet, repo=repo,
                          notifier=notifier, now=now, audit_action=f"rollout.{op}")
                halted.append(view.spec.id)
        notifier.notify(Notification(
            event=Event.KILL_SWITCH, subject=product, at=now,
            title=f"kill switch {'engaged' if engage else 'released'} for {product} by {actor.name}",
            text=(f"{len(halted)} rollouts halted, their hosts sent back to their last known good version"
                  if engage else "no host is re-exposed; resume or start rollouts to continue")
            + (f" ({reason})" if reason else ""),
            details={"product": product, "halted": len(halted)}, rollouts=tuple(halted)))
    return halted
