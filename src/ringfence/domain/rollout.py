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
    promote it.  ``max_rate_per_minute`` caps how fast hosts are newly exposed.
    """

    name: str
    fraction: float | None = None
    count: int | None = None
    selector: str = ""
    min_bake: timedelta = timedelta(hours=1)
    min_observed_hosts: int = 10
    max_rate_per_minute: float | None = None
    needs_approval: bool = False


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
    original halt time so a restart does not re-halt in a loop.
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


@dataclass(frozen=True, slots=True)
class WaveObservation:
    """Aggregates for one wave, counted by the store or the simulator (hosts, never events).

    ``in_reach`` hosts belong to this wave (and not an earlier one) and may
    receive the release under tenant policy; ``exposed`` of them were offered
    it; ``eligible_now`` of the unexposed could be offered it at this instant
    (change window open, no holiday, budget allows); ``held`` counts hosts
    held back by policy (paused tenant, pin, delay) for the status.
    """

    in_reach: int
    exposed: int
    eligible_now: int = 0
    observed: int = 0
    held: int = 0
    next_window: datetime | None = None
    window_reason: str = ""
    budget_blocked: int = 0


@dataclass(frozen=True, slots=True)
class Observations:
    """What the engine sees at one tick.

    ``health_as_of`` is the time up to which health reports are complete;
    ``streams`` are the gate's counts over every exposed host still
    unproven; ``rolled_back_pending`` counts exposed hosts not yet back on
    their last known good version during a rollback.
    """

    waves: tuple[WaveObservation, ...]
    streams: tuple[StreamCounts, ...] = ()
    health_as_of: datetime | None = None
    rolled_back_pending: int = 0


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
