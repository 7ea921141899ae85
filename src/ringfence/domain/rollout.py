"""Releases, plans, rollouts and what the engine sees and decides (DESIGN §3 C1, §4).

Spec and status are kept apart (the argo-rollouts habit): a :class:`RolloutSpec`
says what should happen and never changes; a :class:`RolloutStatus` says where
the rollout is and is replaced, never mutated, by each :class:`Decision`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NewType

from ringfence.domain.gate import GateConfig, GateResult, StreamCounts
from ringfence.domain.logrank import Ledger, RiskTick
from ringfence.domain.windows import DEFAULT_WINDOWS, ChangeWindow, FreezeCalendar

__all__ = [
    "TERMINAL",
    "Artifact",
    "Decision",
    "Intent",
    "IntentKind",
    "Observations",
    "Plan",
    "Reason",
    "Release",
    "ReleaseId",
    "ReleaseKind",
    "RolloutId",
    "RolloutSpec",
    "RolloutState",
    "RolloutStatus",
    "StratumObservation",
    "WaveObservation",
    "WaveSpec",
    "WaveState",
    "WaveStatus",
]

ReleaseId = NewType("ReleaseId", str)
RolloutId = NewType("RolloutId", str)


class ReleaseKind(StrEnum):
    """What a release changes on a host."""

    AGENT = "agent"
    CONTENT = "content"
    OS_PATCH = "os-patch"
    APP = "app"


@dataclass(frozen=True, slots=True)
class Artifact:
    """A file of a release, stored content-addressed by its SHA-256."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Release:
    """A version of a product, with its artifacts."""

    id: ReleaseId
    product: str
    version: str
    kind: ReleaseKind
    platforms: tuple[str, ...]
    artifacts: tuple[Artifact, ...] = ()
    created_at: datetime | None = None
    created_by: str = ""


@dataclass(frozen=True, slots=True)
class WaveSpec:
    """One wave (ring) of a plan.

    A wave reaches, cumulatively, ``fraction`` of the targeted hosts and/or
    ``count`` hosts (whichever is larger), plus every host matching
    ``selector``.  It is *done exposing* when every eligible host in reach has
    been offered the release, then *bakes* for at least ``min_bake`` with at
    least ``min_observed_hosts`` updated hosts observed before the gate may
    promote it.  ``max_rate_per_minute`` caps how fast hosts are newly exposed.  ``max_bake``: past
    it a wave the gate cannot yet promote goes to HOLD and asks a person (None: no limit).
    ``max_in_flight``: another host is exposed only while at most this many exposed hosts have not
    yet reported healthy for the crash window (None: no cap), so a release that crashes every host
    crashes at most ``max_in_flight + 1``.  With ``in_flight_slow_start`` the exposed hosts already
    proven healthy are added to the cap: a release that crashes every host proves none, so the bound
    holds, and a healthy one opens up like TCP's slow start (the room doubles each crash window)
    instead of staying at ``max_in_flight + 1`` hosts per crash window.
    """

    name: str
    fraction: float | None = None
    count: int | None = None
    selector: str = ""
    min_bake: timedelta = timedelta(hours=1)
    min_observed_hosts: int = 10
    max_rate_per_minute: float | None = None
    needs_approval: bool = False
    max_bake: timedelta | None = None
    max_in_flight: int | None = None
    in_flight_slow_start: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """How a release spreads: waves, change windows, freezes, budgets and the gate."""

    name: str
    waves: tuple[WaveSpec, ...]
    windows: tuple[ChangeWindow, ...] = DEFAULT_WINDOWS
    freeze: FreezeCalendar = field(default_factory=FreezeCalendar)
    selector: str = ""
    disruption_budgets: bool = True
    tier0_last: bool = True
    gate: GateConfig = field(default_factory=GateConfig)
    silence_grace: timedelta = timedelta(minutes=15)
    max_data_age: timedelta = timedelta(minutes=10)
    auto_rollback: bool = True
    min_per_stratum: int = 1


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    """A release under a plan; fixed once the rollout exists."""

    id: RolloutId
    release: Release
    plan: Plan
    salt: str
    created_by: str
    created_at: datetime


class RolloutState(StrEnum):
    """Where a rollout is (see :mod:`ringfence.domain.engine` for the transitions)."""

    PENDING = "pending"
    PROGRESSING = "progressing"
    WAITING_WINDOW = "waiting_window"
    WAITING_APPROVAL = "waiting_approval"
    BAKING = "baking"
    HOLD = "hold"  # past max_bake and still inconclusive: a person approves, extends or halts
    PAUSED = "paused"
    HALTED = "halted"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    COMPLETED = "completed"
    ABORTED = "aborted"


TERMINAL = frozenset({RolloutState.ROLLED_BACK, RolloutState.COMPLETED, RolloutState.ABORTED})


class WaveState(StrEnum):
    """Where one wave is."""

    PENDING = "pending"
    EXPOSING = "exposing"
    BAKING = "baking"
    PASSED = "passed"
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class WaveStatus:
    """The state of one wave and the times that matter for it."""

    state: WaveState = WaveState.PENDING
    opened_at: datetime | None = None
    bake_started_at: datetime | None = None
    passed_at: datetime | None = None
    approved_by: str = ""


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    """Everything the engine remembers between ticks.

    ``last_exposed_at`` anchors the rate limit; ``halted_at`` keeps the
    original halt time so a restart does not re-halt in a loop.  ``gate_ledger`` is the running
    evidence of gate v2 (:mod:`ringfence.domain.logrank`) and ``gate_as_of`` the time up to which it
    has counted events: the port counts the next tick's events from there (from ``started_at`` when
    None), so the evidence persists with the status and resumes after a crash without counting an
    event twice.  ``bake_deadline_at`` replaces ``bake_started_at + max_bake`` after an ``extend``.
    """

    state: RolloutState = RolloutState.PENDING
    wave: int = 0
    waves: tuple[WaveStatus, ...] = ()
    started_at: datetime | None = None
    started_by: str = ""
    paused_from: RolloutState | None = None
    halted_at: datetime | None = None
    halt_reason: str = ""
    finished_at: datetime | None = None
    last_tick_at: datetime | None = None
    rate_anchor_at: datetime | None = None
    rate_anchor_exposed: int = 0
    message: str = ""
    gate_ledger: Ledger = ()
    gate_as_of: datetime | None = None
    bake_deadline_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WaveObservation:
    """Aggregates for one wave, counted by the store or the simulator (hosts, never events).

    ``in_reach`` hosts belong to this wave (and not an earlier one) and may
    receive the release under tenant policy; ``exposed`` of them were offered
    it; ``eligible_now`` of the unexposed could be offered it at this instant
    (change window open, no holiday, budget allows); ``held`` counts hosts
    held back by policy (paused tenant, pin, delay) for the status.
    ``missed_window`` of the unexposed had one whole change window of their own since the wave
    opened and are still blocked (offline or outside their window): stragglers, who no longer hold
    the wave's bake back (they are exposed when they next report in a window).
    """

    in_reach: int
    exposed: int
    eligible_now: int = 0
    observed: int = 0
    held: int = 0
    next_window: datetime | None = None
    window_reason: str = ""
    budget_blocked: int = 0
    missed_window: int = 0


@dataclass(frozen=True, slots=True)
class StratumObservation:
    """One stratum of the current wave: hosts in reach and updated hosts reporting past the bake."""

    stratum: str
    in_reach: int
    observed: int


@dataclass(frozen=True, slots=True)
class Observations:
    """What the engine sees at one tick.

    ``health_as_of`` is the time up to which health reports are complete;
    ``streams`` are the gate's counts over every exposed host still
    unproven; ``rolled_back_pending`` counts exposed hosts not yet back on
    their last known good version during a rollback (reporting, still on the
    release); ``rolled_back_confirmed`` those reporting on another version since
    their exposure, ``rolled_back_silent`` those not reporting within the grace
    and ``rolled_back_unheard`` those whose last report predates their exposure
    (None: not counted).

    Gate v2 (a port that counts risk sets sets ``risk_as_of``): ``risk`` holds the events per
    signal × stratum from ``RolloutStatus.gate_as_of`` (or the start) up to ``risk_as_of``;
    ``strata`` the current wave's strata; ``in_flight`` the exposed hosts not yet reported healthy
    for the crash window (the cap of ``WaveSpec.max_in_flight`` applies only when it is counted);
    ``proven`` the exposed hosts that did report healthy for it (None: not counted, the cap stays fixed).
    """

    waves: tuple[WaveObservation, ...]
    streams: tuple[StreamCounts, ...] = ()
    health_as_of: datetime | None = None
    rolled_back_pending: int = 0
    risk: tuple[RiskTick, ...] = ()
    risk_as_of: datetime | None = None
    strata: tuple[StratumObservation, ...] = ()
    in_flight: int | None = None
    proven: int | None = None
    rolled_back_confirmed: int | None = None
    rolled_back_silent: int | None = None
    rolled_back_unheard: int | None = None


class IntentKind(StrEnum):
    """What the caller must do after a decision."""

    EXPOSE = "expose"          # offer the release to up to ``hosts`` more eligible hosts of ``wave``
    ROLLBACK = "rollback"      # set exposed hosts' desired version back to their last known good
    NOTIFY = "notify"          # tell people (halt, approval needed)


@dataclass(frozen=True, slots=True)
class Intent:
    """One action for the service layer or the simulator to carry out."""

    kind: IntentKind
    wave: int = 0
    hosts: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class Reason:
    """A sentence for people plus the numbers behind it."""

    code: str
    message: str
    numbers: tuple[tuple[str, float | int | str], ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's output: the new status, what to do, and why."""

    status: RolloutStatus
    intents: tuple[Intent, ...] = ()
    reasons: tuple[Reason, ...] = ()
    gate: GateResult | None = None

    @property
    def summary(self) -> str:
        """All reasons as one line."""
        return "; ".join(r.message for r in self.reasons)
