"""The desired-state rule: what one product should be on one host, and why (pure).

Every caller that needs to know what a rollout's status means for a host's version asks here
(the channel publisher and ``GET /v1/agent/desired`` through :mod:`ringfence.services.desired`, the demo
fleet, tests), instead of re-deriving it from state names.  The rules, in order, for one host and product:

1. the newest rollout of the product that exposed the host decides: kill switch engaged →
   back to what the host ran when offered (rollback); host rolled back, or the rollout's status sends its
   hosts back (:func:`sends_back`) → the same; otherwise the rollout's release;
2. no rollout reached the host but the kill switch is engaged → its last known good version (nothing to
   publish when the host never reported the product);
3. a tenant policy pin (``n-1``: the newest earlier release that completed a rollout; ``exact:VERSION``);
4. otherwise keep the current version (``directive`` is False: the channel publishes nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ringfence.domain.policies import TenantPolicy
from ringfence.domain.rollout import RolloutState

__all__ = ["Desired", "Exposure", "KillSwitch", "desired_version", "sends_back"]

_SENDS_BACK = frozenset({RolloutState.ROLLING_BACK, RolloutState.ROLLED_BACK})


def sends_back(state: RolloutState) -> bool:
    """Whether a rollout in this state wants its exposed hosts back on what they ran before."""
    return state in _SENDS_BACK


@dataclass(frozen=True, slots=True)
class Desired:
    """What one product should be on one host."""

    version: str
    reason: str
    rollout: str | None
    rollback: bool
    wave: int | None = None
    #: False when nothing decided it (the host keeps what it runs): such entries are not published.
    directive: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The form of :func:`ringfence.services.rollouts.desired_state`."""
        return {"version": self.version, "reason": self.reason, "rollout": self.rollout, "rollback": self.rollback}


@dataclass(frozen=True, slots=True)
class Exposure:
    """One rollout's exposure of one host: the rollout, its state and release, and the way back."""

    rollout: str
    state: RolloutState
    release_version: str
    from_version: str
    rolled_back: bool
    wave: int | None


@dataclass(frozen=True, slots=True)
class KillSwitch:
    """An engaged kill switch: who engaged it and why."""

    actor: str
    reason: str

    def says(self) -> str:
        """The switch in words, for a reason."""
        return f"kill switch engaged by {self.actor}: {self.reason or 'no reason given'}"


def desired_version(*, exposure: Exposure | None, switch: KillSwitch | None, policy: TenantPolicy, current: str,
                    last_known_good: str, previous: Callable[[], str | None]) -> Desired:
    """The rule of the module docstring for one host and product.

    ``exposure`` is the newest rollout of the product that exposed the host (None: none did);
    ``current`` and ``last_known_good`` are what the host reported; ``previous()`` is the version an
    ``n-1`` pin means (None: no earlier release completed a rollout), asked only when needed.
    """
    if exposure is not None:
        if switch is not None:
            return Desired(exposure.from_version, f"{switch.says()}; back from {exposure.release_version}",
                           exposure.rollout, True, exposure.wave)
        if exposure.rolled_back or sends_back(exposure.state):
            return Desired(exposure.from_version, f"rolled back from {exposure.release_version} ({exposure.rollout})",
                           exposure.rollout, True, exposure.wave)
        return Desired(exposure.release_version, f"exposed in rollout {exposure.rollout} ({exposure.state.value})",
                       exposure.rollout, False, exposure.wave)
    if switch is not None:
        # a host that never reported the product has nothing to go back to: nothing to publish
        return Desired(last_known_good or current, switch.says(), None, True,
                       directive=bool(last_known_good or current))
    if policy.pin == "n-1":
        prev = previous()
        return Desired(prev if prev is not None else current,
                       "pinned to N-1 by tenant policy" + (
                           "" if prev is not None else " (no earlier release completed a rollout: stay)"),
                       None, False, directive=prev is not None)
    if policy.pin.startswith("exact:"):
        return Desired(policy.pin.removeprefix("exact:"), f"pinned by tenant policy ({policy.pin})", None, False)
    return Desired(current, "no rollout has reached this host; keep the current version", None, False,
                   directive=False)
