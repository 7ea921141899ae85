"""The reconcile tick: the typed fleet port, the rollout repository, and the one executor of a Decision.

:func:`reconcile_step` is the one tick both the server and the simulator run::

    fleet.record_silence(view, now)               # explicit write: newly silent hosts become events
    observations, candidates = fleet.observe(view, now)   # reads only
    decision = reconcile(spec, status, observations, now)  # pure engine
    carry_out(view, decision, ...)                # expose, roll back, notify, record

What it needs from the fleet is a :class:`FleetPort` (the server's reads and writes the database,
:mod:`ringfence.adapters.db.fleet`; the simulator's holds numpy arrays, :mod:`ringfence.sim.fleet`), and
from storage a :class:`RolloutRepository` (status, decision log, kill switch).  The port keeps nothing
between calls: what ``expose`` needs from ``observe`` travels in the :class:`Candidates` value.

:func:`carry_out` is the only place a :class:`~ringfence.domain.rollout.Decision` is carried out, for the
reconciler, the operator's commands (halt, rollback, abort …), the kill switch and the simulator:
EXPOSE intents go to the fleet within the disruption budgets, ROLLBACK intents send every exposed host back,
NOTIFY intents (and every halt or rollback, whoever ordered it) go to the :class:`~ringfence.services.notify.Notifier`,
and the new status (halt, hold, wait …) is recorded through the repository.

The counting rules both fleets share are pure and live in :mod:`ringfence.domain.counting`; they are
re-exported here for callers of the old names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from ringfence.domain.budgets import BudgetLedger
from ringfence.domain.counting import (
    POOLED,
    BoolArray,
    IntArray,
    WaveCounts,
    choose_exposures,
    count_streams,
    pick_eligible,
    silent_now,
    wave_observations,
)
from ringfence.domain.engine import is_active, reconcile
from ringfence.domain.gate import Verdict
from ringfence.domain.rollout import (
    Decision,
    Intent,
    IntentKind,
    Observations,
    RolloutSpec,
    RolloutState,
    RolloutStatus,
)
from ringfence.services.notify import Event, Notification, Notifier

__all__ = [
    "POOLED",
    "Candidates",
    "FleetPort",
    "FleetView",
    "RolloutRepository",
    "RolloutView",
    "WaveCounts",
    "apply_intents",
    "carry_out",
    "count_streams",
    "notifications_for",
    "pick_eligible",
    "reconcile_step",
    "silent_now",
    "wave_observations",
]


@dataclass(frozen=True, slots=True)
class RolloutView:
    """A rollout as stored: spec, status, optimistic version."""

    spec: RolloutSpec
    status: RolloutStatus
    version: int


@dataclass(frozen=True, slots=True)
class Candidates:
    """The hosts one rollout may expose at ``at``, as ``observe`` found them.

    Positions index the fleet's host order of that observation: ``eligible``, ``wave`` and ``bucket`` are
    per position; ``hosts`` names each position (the server's host ids; the simulator names its hosts only
    when disruption budgets need them).  ``budget`` is the disruption-budget ledger at ``at`` (None: the plan
    has no budgets).  ``up_to_wave`` limits the choice to waves ``0 … up_to_wave`` (see :meth:`for_wave`).
    """

    at: datetime
    eligible: BoolArray
    wave: IntArray
    bucket: IntArray
    hosts: Sequence[str] = ()
    budget: BudgetLedger | None = None
    up_to_wave: int = 0

    def for_wave(self, wave: int) -> Candidates:
        """These candidates, for an EXPOSE intent of ``wave`` (it may take hosts of waves ``0 … wave``)."""
        return replace(self, up_to_wave=wave)

    def choose(self, limit: int) -> IntArray:
        """Up to ``limit`` positions to expose now, best first, within the budgets.

        Records the chosen hosts in the budget ledger: call it once per expose.
        """
        return choose_exposures(self.eligible, self.wave, self.bucket, self.up_to_wave, limit,
                                budget=self.budget, ids=self.hosts)


class FleetPort(Protocol):
    """The per-host half of a tick for one rollout at ``now``; nothing is kept between calls.

    ``record_silence`` records the hosts that went silent since the last tick as silence events (the
    tick's one write before counting); ``observe`` then counts what the engine needs and which hosts are
    eligible, writing nothing; ``expose`` offers the release to up to ``hosts`` of those candidates (best
    first) and returns how many were newly exposed; ``roll_back`` sends every exposed host back to what it
    ran before and returns how many were newly marked.
    """

    def record_silence(self, view: RolloutView, now: datetime) -> int:
        """Record newly silent hosts (treated and control) as silence events; return how many."""
        ...

    def observe(self, view: RolloutView, now: datetime) -> tuple[Observations, Candidates]:
        """The engine's observations at ``now`` and the hosts eligible for exposure then."""
        ...

    def expose(self, view: RolloutView, candidates: Candidates, hosts: int, now: datetime) -> int:
        """Expose up to ``hosts`` of ``candidates``; return how many were newly exposed."""
        ...

    def roll_back(self, view: RolloutView, now: datetime) -> int:
        """Mark every exposed host rolled back; return how many were newly marked."""
        ...


#: The old name of the port.
FleetView = FleetPort


class RolloutRepository(Protocol):
    """Where a rollout's status and decision log live (the server's database, or memory in the simulator)."""

    def kill_switch_engaged(self, product: str) -> bool:
        """True while the product's kill switch is engaged."""
        ...

    def record(self, view: RolloutView, decision: Decision, *, at: datetime, audit_action: str) -> None:
        """Save the new status and append the decision (and an audit entry when ``audit_action``)."""
        ...

    def save_status(self, view: RolloutView, decision: Decision) -> None:
        """Save the new status only (nothing worth a log entry happened)."""
        ...


def reconcile_step(view: RolloutView, fleet: FleetPort, repo: RolloutRepository, now: datetime,
                   notifier: Notifier | None = None) -> Decision | None:
    """One reconcile step for one rollout; None when there was nothing to do.

    The caller makes it atomic (the server runs it in one transaction with an optimistic version check).
    """
    if not is_active(view.status):
        return None
    if view.status.state is not RolloutState.ROLLING_BACK and repo.kill_switch_engaged(view.spec.release.product):
        return None  # belt and braces: engaging the switch halts every rollout of the product
    fleet.record_silence(view, now)
    obs, candidates = fleet.observe(view, now)
    decision = reconcile(view.spec, view.status, obs, now)
    carry_out(view, decision, fleet=fleet, repo=repo, notifier=notifier, now=now, candidates=candidates)
    return decision


# --- the executor -------------------------------------------------------------------------------------

_STOPPED = (RolloutState.HALTED, RolloutState.ROLLING_BACK)


def _event(state: RolloutState, gate_failed: bool, gate_undecided: bool = False) -> Event:
    if state is RolloutState.HALTED or (state is RolloutState.ROLLING_BACK and gate_failed):
        return Event.ROLLOUT_HALTED  # a failed gate is a halt, whether or not the plan rolls back at once
    if state in (RolloutState.ROLLING_BACK, RolloutState.ROLLED_BACK):
        return Event.ROLLOUT_ROLLED_BACK
    if state is RolloutState.WAITING_APPROVAL:
        return Event.APPROVAL_NEEDED
    # On hold past max_bake: when the gate itself could not decide, it is a gate inconclusive past its limit
    # (rules on rollout.hold hear it too, see adapters/notify/rules.Rule.matches).
    return Event.GATE_INCONCLUSIVE if gate_undecided else Event.ROLLOUT_HOLD


def notifications_for(view: RolloutView, decision: Decision, now: datetime) -> list[Notification]:
    """What people hear about a decision: one notification per NOTIFY intent, and one for a halt or a
    rollback that no NOTIFY intent announced (an operator's command)."""
    spec, status = view.spec, decision.status
    subject = str(spec.id)
    wave_name = spec.plan.waves[status.wave].name if status.wave < len(spec.plan.waves) else ""
    title = f"{spec.release.id} {status.state.value.replace('_', ' ')} in wave {status.wave}" + (
        f" ({wave_name})" if wave_name else "")
    details: dict[str, str | int | float] = {"rollout": subject, "release": str(spec.release.id),
                                             "state": status.state.value, "wave": status.wave}
    undecided = decision.gate is not None and decision.gate.verdict in (Verdict.INCONCLUSIVE, Verdict.ERROR)
    event = _event(status.state, any(r.code == "gate_failed" for r in decision.reasons), undecided)
    out = [Notification(event=event, subject=subject, title=title, text=i.message or decision.summary,
                        at=now, details=details, rollouts=(subject,))
           for i in decision.intents if i.kind is IntentKind.NOTIFY]
    newly_stopped = status.state in _STOPPED and status.state is not view.status.state
    if newly_stopped and not out:
        out.append(Notification(event=event, subject=subject, title=title,
                                text=status.message or decision.summary, at=now, details=details,
                                rollouts=(subject,)))
    # A gate in shadow mode enforces nothing; what it would have done is told once per rollout and wave.
    for r in decision.reasons:
        if r.code in _SHADOW:
            out.append(Notification(
                event=Event.GATE_SHADOW, subject=subject, at=now, text=r.message, details=details,
                rollouts=(subject,), once=True,
                title=f"{spec.release.id} {_SHADOW[r.code]} wave {view.status.wave} (shadow mode, not enforced)"))
    return out


#: The engine's shadow-mode reasons people hear about, and the words of their title.
_SHADOW = {"shadow_halt": "would have halted", "shadow_hold": "would have put on hold",
           "shadow_promote": "would have promoted"}


def apply_intents(view: RolloutView, intents: Sequence[Intent], *, fleet: FleetPort, now: datetime,
                  candidates: Candidates | None = None) -> int:
    """Carry out the EXPOSE and ROLLBACK intents; return how many hosts changed (exposed or sent back).

    An EXPOSE intent needs the ``candidates`` of the observation the decision was made on.
    """
    changed = 0
    for intent in intents:
        if intent.kind is IntentKind.EXPOSE:
            if candidates is None:
                raise ValueError("an EXPOSE intent needs the candidates of the observation it was decided on")
            changed += fleet.expose(view, candidates.for_wave(intent.wave), intent.hosts, now)
        elif intent.kind is IntentKind.ROLLBACK:
            changed += fleet.roll_back(view, now)
    return changed


def carry_out(view: RolloutView, decision: Decision, *, fleet: FleetPort, repo: RolloutRepository,
              notifier: Notifier | None, now: datetime, candidates: Candidates | None = None,
              audit_action: str | None = None) -> None:
    """Carry out a decision: its intents, its notifications, and its new status.

    ``audit_action`` None is the reconciler's rule: a decision that changed the status or has intents is
    logged (audited as ``rollout.transition`` when the state or wave changed), anything else only saves the
    status.  An operator's command passes its audit action and is always logged.
    """
    apply_intents(view, decision.intents, fleet=fleet, now=now, candidates=candidates)
    if audit_action is not None:
        repo.record(view, decision, at=now, audit_action=audit_action)
    else:
        before, after = view.status, decision.status
        changed = (after.state, after.wave, after.message) != (before.state, before.wave, before.message)
        if changed or decision.intents:
            moved = after.state != before.state or after.wave != before.wave
            repo.record(view, decision, at=now, audit_action="rollout.transition" if moved else "")
        else:
            repo.save_status(view, decision)
    if notifier is not None:
        for notification in notifications_for(view, decision, now):
            notifier.notify(notification)
