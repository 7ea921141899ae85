"""The database implementation of the fleet port and the rollout repository, and rollouts as views.

:class:`DatabaseFleet` is the server's :class:`~ringfence.services.fleet_port.FleetPort`: per-host state in
the database, counted by the shared rules of :mod:`ringfence.domain.counting` (the simulator's arrays go
through the same functions).  It runs inside the caller's transaction and keeps nothing between calls:
each call reads what it needs, and what ``expose`` needs from ``observe`` travels in the
:class:`~ringfence.services.fleet_port.Candidates` it returned.

:class:`DatabaseRepository` saves a rollout's status with its optimistic version, appends the decision
log and the audit entry; :class:`InventoryCache` keeps the inventory between reconciler passes (one per
application context, shared by the reconciler and the channel publisher).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from ringfence.adapters.db.stores import audit as audit_store
from ringfence.adapters.db.stores import health as health_store
from ringfence.adapters.db.stores import inventory as inventory_store
from ringfence.adapters.db.stores import rollouts as store
from ringfence.adapters.db.stores.base import utc
from ringfence.adapters.db.tables import HostRow
from ringfence.domain.budgets import BudgetLedger, budgets_from_services
from ringfence.domain.counting import (
    FloatArray,
    budget_ledger,
    first_whole_window_end,
    risk_observations,
    silent_now,
    unproven,
    wave_observations,
)
from ringfence.domain.model import Host, HostId
from ringfence.domain.plans import plan_from_mapping
from ringfence.domain.policies import HOLD_DELAYED, HOLD_HELD, TenantPolicies, policy_hold
from ringfence.domain.presence import HISTORY_GRACE, LOOKBACK_DAYS, away_limit_s
from ringfence.domain.risksets import PreHistory
from ringfence.domain.rollout import (
    TERMINAL,
    Decision,
    Observations,
    Release,
    RolloutId,
    RolloutSpec,
    RolloutState,
    WaveState,
)
from ringfence.domain.targeting import group_members
from ringfence.domain.windows import window_status_many
from ringfence.errors import NotFoundError, shown
from ringfence.services.codec import gate_to_doc, reason_to_doc, status_from_doc, status_to_doc
from ringfence.services.fleet_port import Candidates, RolloutView

__all__ = ["DatabaseFleet", "DatabaseRepository", "InventoryCache", "list_views", "load_view", "rollout_ids"]


class InventoryCache:
    """The whole inventory between reconciler ticks, reloaded only when it changed.

    Validity is checked with one aggregate query (host count, newest update, sum of row versions), so an
    import, an upsert or a deletion is seen at the next tick; the cache only saves re-reading unchanged hosts.
    The application context owns one (:class:`ringfence.appcontext.AppContext`), shared by the reconciler's
    ticks and the channel publisher (the reconciler thread and the publish route), so it is thread-safe; the
    list it returns is shared and must not be changed by the caller.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._hosts: list[Host] = []
        #: How many times the whole inventory was read (for tests and metrics).
        self.loads = 0

    def hosts(self, conn: Connection) -> list[Host]:
        """Every host, from the cache when the inventory has not changed."""
        key = tuple(conn.execute(select(func.count(), func.max(HostRow.updated_at), func.sum(HostRow.version))).one())
        with self._lock:
            if key != self._key:
                self._hosts = inventory_store.all_hosts(conn)
                self._key = key
                self.loads += 1
            return self._hosts


def _all_hosts(conn: Connection, cache: InventoryCache | None) -> list[Host]:
    return cache.hosts(conn) if cache is not None else inventory_store.all_hosts(conn)


# --- rollouts as views ------------------------------------------------------------------------

def _view(row: Any, release: Release) -> RolloutView:
    spec = RolloutSpec(id=RolloutId(row.id), release=release, plan=plan_from_mapping(row.plan), salt=row.salt,
                       created_by=row.created_by, created_at=row.created_at)
    return RolloutView(spec=spec, status=status_from_doc(row.status), version=int(row.version))


def load_view(conn: Connection, rollout_id: str) -> RolloutView:
    """One rollout's spec, status and version; NotFoundError when there is none."""
    row = store.get_rollout_row(conn, rollout_id)
    if row is None:
        raise NotFoundError(f"rollout {shown(rollout_id)} not found")
    release = store.get_release(conn, row.release_id)
    assert release is not None
    return _view(row, release)


def list_views(conn: Connection, *, product: str = "") -> list[RolloutView]:
    """Rollouts (of one product, or all), newest first."""
    rows = store.list_rollout_rows(conn, product=product)
    releases = {r.id: r for r in store.list_releases(conn, product)}
    return [_view(r, releases[r.release_id]) for r in rows]


def rollout_ids(conn: Connection, states: Iterable[RolloutState]) -> list[str]:
    """Ids of the rollouts in these states, newest first."""
    return [r.id for r in store.list_rollout_rows(conn, states=[s.value for s in states])]


# --- the fleet port ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _HostRow:
    host: Host
    wave: int
    bucket: int
    stratum: str
    exposed_at: datetime | None
    rolled_back_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """One call's read of a rollout's hosts: rows, heartbeats and the arrays the counting rules take."""

    items: list[_HostRow]
    ids: list[HostId]
    hosts_by_id: dict[HostId, Host]
    beats: dict[str, datetime]
    exposed_s: FloatArray
    rolled_back: Any
    beat_s: FloatArray
    control: Any


def _seconds(at: datetime | None, origin: datetime) -> float:
    return math.nan if at is None else (at - origin).total_seconds()


class DatabaseFleet:
    """The server's :class:`~ringfence.services.fleet_port.FleetPort`, inside the caller's transaction."""

    def __init__(self, conn: Connection, cache: InventoryCache | None = None, *,
                 complete_through: datetime | None = None) -> None:
        """``complete_through``: the time up to which every health report the servers received is in the store
        (None: all of them are, the caller wrote them); gate v2 counts events only up to it."""
        self._conn = conn
        self._cache = cache
        self._through = complete_through

    def _snapshot(self, view: RolloutView, now: datetime) -> _Snapshot:
        conn = self._conn
        started = view.status.started_at or now
        rows = store.rollout_host_rows(conn, view.spec.id)
        hosts_by_id = {h.id: h for h in _all_hosts(conn, self._cache)}
        items = [_HostRow(hosts_by_id[r.host_id], r.wave, r.bucket, r.stratum, utc(r.exposed_at),
                          utc(r.rolled_back_at)) for r in rows if r.host_id in hosts_by_id]
        ids = [i.host.id for i in items]
        beats = health_store.heartbeats(conn, ids)
        # Control = not-yet-exposed hosts that had reported before the rollout started.
        first = health_store.first_heartbeats(conn, ids)
        control = np.array([i.exposed_at is None and i.host.id in first and first[i.host.id] <= started
                            for i in items], dtype=bool)
        return _Snapshot(
            items=items, ids=ids, hosts_by_id=hosts_by_id, beats=beats,
            exposed_s=np.array([_seconds(i.exposed_at, now) for i in items], dtype=np.float64),
            rolled_back=np.array([i.rolled_back_at is not None for i in items], dtype=bool),
            beat_s=np.array([_seconds(beats.get(h), now) for h in ids], dtype=np.float64), control=control)

    def record_silence(self, view: RolloutView, now: datetime) -> int:
        """Record hosts silent now as silence events, the first time each is seen (see domain.counting).

        A host that comes back later still counts as having failed.  A host away with a going-away notice (sent
        at or after its last report) is not silent, as gate v2 does not count it.
        """
        conn = self._conn
        spec = view.spec
        started = view.status.started_at or now
        grace = spec.plan.silence_grace
        snap = self._snapshot(view, now)
        s_treated, s_control = silent_now(exposed_s=snap.exposed_s, rolled_back=snap.rolled_back,
                                          control=snap.control, beat_s=snap.beat_s, now_s=0.0,
                                          grace_s=grace.total_seconds())
        treated_events = health_store.events_for(conn, [spec.id], started - grace)
        control_events = health_store.events_for(conn, [""], started)
        silent_t = {snap.ids[j] for j in np.flatnonzero(s_treated)}
        silent_c = {snap.ids[j] for j in np.flatnonzero(s_control)}
        found = health_store.presence(conn, silent_t | silent_c)
        away = {h for h, p in found.items() if p.notice_at is not None and p.last_seen is not None
                and p.notice_at >= p.last_seen}
        silent_t, silent_c = silent_t - away, silent_c - away
        new_events: list[tuple[str, str, str, datetime]] = [
            (h, spec.id, "silent", now) for h in sorted(silent_t - treated_events.get("silent", set()))]
        new_events += [(h, "", "silent", now) for h in sorted(silent_c - control_events.get("silent", set()))]
        health_store.record_events(conn, new_events)
        return len(new_events)

    def _ledger(self, view: RolloutView, snap: _Snapshot, now: datetime) -> BudgetLedger | None:
        conn = self._conn
        spec, status, plan = view.spec, view.status, view.spec.plan
        if not plan.disruption_budgets:
            return None
        mine = unproven(exposed_s=snap.exposed_s, rolled_back=snap.rolled_back,
                        wave=np.array([i.wave for i in snap.items], dtype=np.int64),
                        passed=[k for k, w in enumerate(status.waves) if w.state is WaveState.PASSED],
                        min_bake_s=[w.min_bake.total_seconds() for w in plan.waves], now_s=0.0)
        exposed_ids = {snap.ids[j] for j in np.flatnonzero(mine)}
        # Every exposed host of the product's other unfinished rollouts counts too (conservative: their gates
        # have not vouched for them here).
        for other in store.list_rollout_rows(conn, states=[st.value for st in RolloutState if st not in TERMINAL]):
            if other.id != spec.id:
                exposed_ids |= {r.host_id for r in store.rollout_host_rows(conn, other.id)
                                if r.exposed_at is not None and r.rolled_back_at is None}
        budgets = budgets_from_services(inventory_store.list_services(conn), group_members(list(snap.hosts_by_id.values())))
        members = {m for b in budgets for m in b.members}
        beats = {m: _seconds(at, now) for m, at in health_store.heartbeats(conn, members).items()}
        return budget_ledger(budgets, exposed=exposed_ids, member_beat_s=beats, now_s=0.0,
                             grace_s=plan.silence_grace.total_seconds())

    def observe(self, view: RolloutView, now: datetime) -> tuple[Observations, Candidates]:
        """Count the engine's observations from the store, and the hosts eligible now (writes nothing)."""
        conn = self._conn
        spec, status = view.spec, view.status
        plan = spec.plan
        snap = self._snapshot(view, now)
        items, ids = snap.items, snap.ids
        policies = TenantPolicies(store.list_policies(conn), spec.release.product)
        started = status.started_at or now
        holds = [policy_hold(policies.of(i.host), spec.release.version, started, now) for i in items]
        key_of = {k: j for j, k in enumerate(sorted({(i.host.timezone, i.host.country, i.host.subdivision)
                                                     for i in items}))}
        windows = window_status_many(plan.windows, plan.freeze, key_of, now)
        k = min(status.wave, len(plan.waves) - 1)
        opened = status.waves[k].opened_at if status.waves else None
        ends = first_whole_window_end(plan.windows, plan.freeze, list(key_of), opened) if opened else []
        missed_key = np.array([e is not None and now >= e for e in ends], dtype=bool) if opened else None
        ledger = self._ledger(view, snap, now)
        running = health_store.versions_of(conn, [i.host.id for i in items if i.exposed_at is not None],
                                           spec.release.product)
        wave = np.array([i.wave for i in items], dtype=np.int64)

        def budget_ok(idx: Any) -> Any:
            assert ledger is not None
            return np.array([ledger.can_expose(items[j].host.id)[0] for j in idx], dtype=bool)

        counts = wave_observations(
            waves=len(plan.waves), wave=wave, exposed_s=snap.exposed_s, rolled_back=snap.rolled_back,
            held=np.array([h == HOLD_HELD for h in holds], dtype=bool),
            delayed=np.array([h == HOLD_DELAYED for h in holds], dtype=bool),
            key=np.array([key_of[(i.host.timezone, i.host.country, i.host.subdivision)] for i in items],
                         dtype=np.int64),
            windows=[windows[k] for k in key_of], beat_s=snap.beat_s,
            runs_release=np.array([running.get(h, ("", ""))[0] == spec.release.version for h in ids], dtype=bool),
            now_s=0.0, grace_s=plan.silence_grace.total_seconds(), name_of=lambda j: items[j].host.hostname,
            budget_ok=budget_ok if ledger is not None else None, missed_key=missed_key)
        as_of = max(snap.beats.values()) if snap.beats else None
        observations = self._risk(view, snap, Observations(waves=counts.waves, health_as_of=as_of,
                                                           rolled_back_pending=counts.rolled_back_pending,
                                                           rolled_back_confirmed=counts.rolled_back_confirmed,
                                                           rolled_back_silent=counts.rolled_back_silent,
                                                           rolled_back_unheard=counts.rolled_back_unheard),
                                  wave, np.array([h == HOLD_HELD for h in holds], dtype=bool), now, counts.missed)
        candidates = Candidates(at=now, eligible=counts.eligible, wave=wave,
                                bucket=np.array([i.bucket for i in items], dtype=np.int64), hosts=tuple(ids),
                                budget=ledger)
        return observations, candidates

    def _risk(self, view: RolloutView, snap: _Snapshot, obs: Observations, wave: Any, held: Any,
              now: datetime, missed: Any = None) -> Observations:
        """Gate v2's observations: risk sets since the last committed tick, by the simulator's shared rules
        (:func:`~ringfence.domain.counting.risk_observations`) over the store's presence of each host."""
        spec, status = view.spec, view.status
        plan = spec.plan
        since = status.gate_as_of or status.started_at or now
        # Count only what the store holds in full: a report that arrived before now but still waits in a
        # server's buffer is counted by a later tick (its interval starts here), never dropped.
        horizon = max(since, now if self._through is None else min(now, self._through))
        k = min(status.wave, len(plan.waves) - 1)
        found = health_store.presence(self._conn, snap.ids)
        # The server's arrival time of the last report (hosts last seen before it was kept: their heartbeat).
        seen = np.array([_seconds(p.last_seen if (p := found.get(h)) is not None and p.last_seen is not None
                                  else snap.beats.get(h), now) for h in snap.ids], dtype=np.float64)
        notice = np.array([_seconds(p.notice_at if (p := found.get(h)) is not None else None, now) for h in snap.ids],
                          dtype=np.float64)
        crash = np.array([_seconds(p.crash_at if (p := found.get(h)) is not None else None, now) for h in snap.ids],
                         dtype=np.float64)
        limit = np.array([away_limit_s(list(p.away) if (p := found.get(h)) is not None else []) for h in snap.ids],
                         dtype=np.float64)
        strata = sorted({i.stratum for i in snap.items})
        index = {s: j for j, s in enumerate(strata)}
        risk = risk_observations(
            strata=strata, stratum=np.array([index[i.stratum] for i in snap.items], dtype=np.int64),
            in_scope=np.ones(len(snap.ids), dtype=bool), wave=wave, current_wave=k, held=held,
            exposed_s=snap.exposed_s, rolled_back=snap.rolled_back, beat_s=seen, notice_s=notice,
            away_limit_s=limit, crash_s=crash, since_s=min(0.0, _seconds(since, now)), now_s=0.0,
            horizon_s=min(0.0, _seconds(horizon, now)),
            grace_s=plan.silence_grace.total_seconds(), min_bake_s=plan.waves[k].min_bake.total_seconds(),
            required=plan.gate.required_signals, history=self._history(view, snap.ids, now),
            ledger=status.gate_ledger, self_control_ratio=plan.gate.self_control_ratio, missed=missed)
        return replace(obs, streams=(), risk=risk.ticks, risk_as_of=horizon, strata=risk.strata,
                       in_flight=risk.in_flight, proven=risk.proven)

    def _history(self, view: RolloutView, ids: list[HostId], now: datetime) -> PreHistory | None:
        """Each host's own record over the :data:`~ringfence.domain.presence.LOOKBACK_DAYS` whole UTC days before
        the rollout started (self-control's pre-update history), or None when the plan's grace is shorter than
        the one the record was counted with (its silences would then not compare: no self-control)."""
        if view.spec.plan.silence_grace < HISTORY_GRACE:
            return None
        started = view.status.started_at or now
        totals = health_store.day_totals(self._conn, ids, (started - timedelta(days=LOOKBACK_DAYS)).strftime("%Y-%m-%d"),
                                         started.strftime("%Y-%m-%d"))
        none = (0.0, 0, 0)
        return PreHistory(silent_events=np.array([totals.get(h, none)[1] for h in ids], dtype=np.int64),
                          crash_events=np.array([totals.get(h, none)[2] for h in ids], dtype=np.int64),
                          hours=np.array([totals.get(h, none)[0] for h in ids], dtype=np.float64))

    def expose(self, view: RolloutView, candidates: Candidates, hosts: int, now: datetime) -> int:
        """Offer the release to up to ``hosts`` candidates, recording what each ran (the way back)."""
        chosen = [candidates.hosts[int(j)] for j in candidates.choose(hosts)]
        running = health_store.versions_of(self._conn, chosen, view.spec.release.product)
        return store.expose_hosts(self._conn, view.spec.id, {h: running.get(h, ("", ""))[0] for h in chosen},
                                  candidates.up_to_wave, now)

    def roll_back(self, view: RolloutView, now: datetime) -> int:
        """Send every exposed host back to what it ran before."""
        return store.mark_rolled_back(self._conn, view.spec.id, now)


class DatabaseRepository:
    """The server's :class:`~ringfence.services.fleet_port.RolloutRepository`, inside the caller's transaction.

    ``actor``, ``source`` and ``reason`` go into the decision log and the audit entries it writes (the
    reconciler's, or the operator's whose command it records).
    """

    def __init__(self, conn: Connection, *, actor: str, source: str, reason: str = "") -> None:
        self._conn = conn
        self._actor = actor
        self._source = source
        self._reason = reason

    def kill_switch_engaged(self, product: str) -> bool:
        """True while the product's kill switch is engaged."""
        return store.kill_switch(self._conn, product) is not None

    def record(self, view: RolloutView, decision: Decision, *, at: datetime, audit_action: str) -> None:
        """Save the status (optimistic version), append the decision, and audit it when ``audit_action``."""
        conn = self._conn
        self.save_status(view, decision)
        store.add_decision(conn, view.spec.id, at=at, state=decision.status.state.value, wave=decision.status.wave,
                           actor=self._actor, message=decision.status.message or decision.summary,
                           reasons=[reason_to_doc(r) for r in decision.reasons], evidence=gate_to_doc(decision.gate))
        if audit_action:
            audit_store.append(conn, at=at, actor=self._actor, action=audit_action, target=f"rollout/{view.spec.id}",
                               source=self._source, reason=self._reason,
                               details={"state": decision.status.state.value, "wave": decision.status.wave,
                                        "message": decision.status.message})

    def save_status(self, view: RolloutView, decision: Decision) -> None:
        """Save the new status with the optimistic version check (ConflictError when another writer won)."""
        store.save_status(self._conn, view.spec.id, view.version, decision.status.state.value,
                          status_to_doc(decision.status))

