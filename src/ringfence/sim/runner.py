"""The simulation loop: a virtual clock driving the real tick (:func:`~ringfence.services.fleet_port.reconcile_step`).

Each step moves the fleet model to the clock's time, then runs the same use case as the server's
reconciler, with the simulator's :class:`~ringfence.sim.fleet.SimFleet` as the fleet port and an in-memory
repository for status and decisions.  Steps are ``scenario.tick`` apart while hosts are being exposed or a
rollout is being rolled back, five ticks apart while a wave bakes, and jump to the next change window while
every window is closed.  The loop ends when the rollout stops (completed, halted, rolled back) or at the
scenario's horizon.

Results (one :class:`SimResult` per plan and replication) use the keys of the JSON output:

``plan`` the plan's name; ``exposed_hosts``  hosts offered the release; ``crashed_hosts`` hosts that crashed because of it;
``halted`` whether the gate stopped the rollout; ``time_to_halt_s`` from start to halt;
``exposure_host_hours`` host-hours on the release until the halt (or the end); ``time_to_full_s`` from start
to completion; ``false_halt`` a halt of a harmless release; ``manual_recovery_hosts`` boot-looped hosts that
needed hands; ``recovery_hours`` from the first release crash until the last such host was back.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from ringfence.domain.engine import command, initial_status
from ringfence.domain.logrank import Ledger
from ringfence.domain.model import Service
from ringfence.domain.rollout import (
    TERMINAL,
    Decision,
    Release,
    ReleaseId,
    ReleaseKind,
    RolloutId,
    RolloutSpec,
    RolloutState,
)
from ringfence.runtime import collector_paused
from ringfence.services.codec import gate_to_doc
from ringfence.services.fleet_port import RolloutView, reconcile_step
from ringfence.services.notify import Event, LogNotifier, Notification, Notifier
from ringfence.sim.fleet import SimFleet, Template, build_template
from ringfence.sim.scenario import Scenario

__all__ = ["RESULT_KEYS", "MemoryRepository", "SimResult", "simulate", "summarise"]

RESULT_KEYS = ("scenario", "plan", "hosts", "exposed_hosts", "crashed_hosts", "halted", "time_to_halt_s",
               "exposure_host_hours", "time_to_full_s", "false_halt", "manual_recovery_hosts", "recovery_hours",
               "seed")
_ACTOR = "ringfence-simulator"
#: Where the simulator's notifications go by default; silent unless the caller configures logging.
_NOTIFY_LOG = logging.getLogger("ringfence.sim.notify")
_NOTIFY_LOG.addHandler(logging.NullHandler())
_NOTIFY_LOG.propagate = False


class MemoryRepository:
    """The simulator's :class:`~ringfence.services.fleet_port.RolloutRepository`: status and log in memory."""

    def __init__(self, view: RolloutView) -> None:
        self.view = view
        self.log: list[dict[str, Any]] = []
        self.halt: dict[str, Any] | None = None

    def kill_switch_engaged(self, product: str) -> bool:
        """The simulator has no kill switch: the gate has to do the work."""
        return False

    def record(self, view: RolloutView, decision: Decision, *, at: datetime, audit_action: str) -> None:
        """Save the status and append the decision; keep the gate's evidence at the halt."""
        self.save_status(view, decision)
        entry = {"at": at.isoformat(), "state": decision.status.state.value, "wave": decision.status.wave,
                 "message": decision.status.message or decision.summary}
        self.log.append(entry)
        stopped = decision.status.state in (RolloutState.HALTED, RolloutState.ROLLING_BACK)
        if stopped and self.halt is None and decision.gate is not None:
            self.halt = {**entry, "evidence": gate_to_doc(decision.gate)}

    def save_status(self, view: RolloutView, decision: Decision) -> None:
        """Replace the status (one writer: no version conflict is possible)."""
        self.view = replace(view, status=decision.status, version=view.version + 1)


class _ShadowWatch:
    """Passes every notification on and keeps what a gate in shadow mode would have done (each once)."""

    def __init__(self, inner: Notifier) -> None:
        self.inner = inner
        self.told: list[dict[str, Any]] = []
        self._seen: set[tuple[str, str, str]] = set()

    def notify(self, notification: Notification) -> None:
        if notification.event is Event.GATE_SHADOW and notification.key not in self._seen:
            self._seen.add(notification.key)
            self.told.append({"at": notification.at.isoformat(), "title": notification.title,
                              "message": notification.text})
        self.inner.notify(notification)


@dataclass
class SimResult:
    """One plan × one replication: the JSON figures, the time series and the halt evidence."""

    figures: dict[str, Any]
    series: list[tuple[float, int, int]] = field(default_factory=list)  # (hours, exposed, crashed and down)
    halt: dict[str, Any] | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    gate_ledger: Ledger = ()  # gate v2's evidence at the end (scenario.risk_sets), for tests and reports
    warm_up_s: float = 0.0  # wall time of the warm-up that measured each host's history (part of wall_s)
    #: A gate in shadow mode (``gate: {mode: shadow}``): what it would have done — halted, held, promoted — and when,
    #: each once, in order; nothing of it was enforced.
    shadow: list[dict[str, Any]] = field(default_factory=list)


def _spec(scenario: Scenario, plan_name: str, plan: Any, seed: int) -> RolloutSpec:
    release = Release(id=ReleaseId(f"{scenario.product}@{scenario.version}"), product=scenario.product,
                      version=scenario.version, kind=ReleaseKind(scenario.kind), platforms=scenario.platforms)
    return RolloutSpec(id=RolloutId(f"sim-{scenario.name}-{plan_name}-{seed}"), release=release, plan=plan,
                       salt=f"sim{seed}", created_by=_ACTOR, created_at=scenario.start)


def simulate(scenario: Scenario, plan_name: str, plan: Any, *, hosts: int | None = None, seed: int = 0,
             template: Template | None = None, progress: Callable[[float], None] | None = None,
             notifier: Notifier | None = None, services: Sequence[Service] = ()) -> SimResult:
    """Run one rollout of the scenario's release under ``plan`` through the real engine; see the module doc.

    ``services`` are the business services whose redundancy groups the plan's disruption budgets protect
    (resolved over the template hosts, as the server resolves them over its inventory).
    ``notifier`` hears what people would (halts, rollbacks, approvals); by default a
    :class:`~ringfence.services.notify.LogNotifier` on the ``ringfence.sim.notify`` logger.
    """
    import time  # noqa: PLC0415 - wall time of the run only, never the simulated clock

    began = time.perf_counter()
    n = hosts or scenario.hosts
    with collector_paused():  # millions of small acyclic objects (see ringfence.runtime)
        template = template or build_template(scenario, seed)
        fleet = SimFleet(scenario, plan, template, hosts=n, seed=seed, services=services)
        warm = time.perf_counter()
        if scenario.risk_sets:  # gate v2 judges strata without a concurrent control against this history
            fleet.warm_up()
        warm_up_s = time.perf_counter() - warm
    spec = _spec(scenario, plan_name, plan, seed)
    start = scenario.start
    started = command(spec, initial_status(spec), "start", actor=_ACTOR, now=start)
    repo = MemoryRepository(RolloutView(spec=spec, status=started.status, version=1))
    watch = _ShadowWatch(notifier if notifier is not None else LogNotifier(_NOTIFY_LOG))
    tick = scenario.tick.total_seconds()
    horizon = scenario.horizon.total_seconds()
    t = 0.0
    series: list[tuple[float, int, int]] = []
    while t <= horizon:
        fleet.advance(t)
        reconcile_step(repo.view, fleet, repo, fleet.at(t), notifier=watch)
        state = repo.view.status.state
        crashed_now = int(np.count_nonzero(fleet.boot_looped))
        series.append((t / 3600.0, int(np.count_nonzero(~np.isnan(fleet.exposed_s))), crashed_now))
        if progress is not None:
            progress(min(1.0, t / horizon))
        if state in TERMINAL or state is RolloutState.HALTED:
            break
        step = tick
        if state in (RolloutState.BAKING, RolloutState.HOLD):  # on hold the gate keeps watching, nobody decides
            step = 5 * tick
        elif state is RolloutState.WAITING_WINDOW:
            # Jump to the next window only while no host is at risk: the gate watches exposed hosts meanwhile.
            if fleet.at_risk():
                step = 5 * tick
            else:
                nxt = fleet.next_window()
                step = max(tick, (nxt - t) if nxt is not None else 15 * 60.0)
        t += step
    end = t
    status = repo.view.status
    if status.state is RolloutState.HALTED:
        # Halted without a rollback: the hosts keep the release, so its pending harm still happens.
        with np.errstate(invalid="ignore"):
            pending = fleet.harm_s[np.isnan(fleet.crashed_s) & (fleet.harm_s <= horizon)]
        if len(pending):
            end = float(pending.max())
            fleet.advance(end)
            series.append((end / 3600.0, series[-1][1], int(np.count_nonzero(fleet.boot_looped))))
    halted_at = status.halted_at
    halted_s = (halted_at - start).total_seconds() if halted_at is not None else None
    started_s = 0.0
    exposed = ~np.isnan(fleet.exposed_s)
    until = halted_s if halted_s is not None else end
    exposure = float(np.sum(np.maximum(0.0, until - fleet.exposed_s[exposed]))) / 3600.0
    crashed = ~np.isnan(fleet.crashed_s)
    withdrawn = halted_s if status.state in (RolloutState.ROLLING_BACK, RolloutState.ROLLED_BACK) else None
    back, manual = fleet.recovery(withdrawn, halted_s)
    recovery_hours = 0.0
    if crashed.any():
        recovery_hours = float(np.nanmax(back[crashed]) - np.nanmin(fleet.crashed_s)) / 3600.0
        # crashed hosts over time, through recovery
        last = float(np.nanmax(back[crashed]))
        for h in np.linspace(end, max(end, last), 40)[1:]:
            down = int(np.count_nonzero(crashed & fleet.boot_looped & ~(back <= h)))
            series.append((float(h) / 3600.0, series[-1][1], down))
    completed = status.state is RolloutState.COMPLETED and status.finished_at is not None
    figures = {
        "scenario": scenario.name, "plan": plan_name, "hosts": n,
        "exposed_hosts": int(np.count_nonzero(exposed)), "crashed_hosts": int(np.count_nonzero(crashed)),
        "halted": halted_s is not None, "time_to_halt_s": None if halted_s is None else round(halted_s - started_s, 1),
        "exposure_host_hours": round(exposure, 3),
        "time_to_full_s": round((status.finished_at - start).total_seconds(), 1)  # type: ignore[operator]
        if completed else None,
        "false_halt": halted_s is not None and not scenario.harmful,
        "manual_recovery_hosts": manual, "recovery_hours": round(recovery_hours, 2), "seed": seed,
    }
    return SimResult(figures=figures, series=series, halt=repo.halt, log=repo.log,
                     wall_s=time.perf_counter() - began, gate_ledger=status.gate_ledger, warm_up_s=warm_up_s,
                     shadow=watch.told)


def summarise(results: Sequence[SimResult]) -> dict[str, Any]:
    """One object per plan over replications: medians of the figures, majority for the yes/no ones."""
    first = results[0].figures
    if len(results) == 1:
        return dict(first)
    out: dict[str, Any] = {"scenario": first["scenario"], "plan": first["plan"], "hosts": first["hosts"]}
    for key in RESULT_KEYS[3:-1]:
        values = [r.figures[key] for r in results]
        if isinstance(values[0], bool):
            out[key] = sum(values) * 2 > len(values)
        else:
            numbers = [v for v in values if v is not None]
            out[key] = statistics.median(numbers) if len(numbers) * 2 > len(values) else None
    out["seed"] = first["seed"]
    return out
