"""Recovery campaigns as rules (DESIGN §3 C5): host states, who may move them, and who may see a key. Pure.

Per host::

    queued → assigned → in_progress → fixed (awaiting heartbeat) → verified
                 ↑           │                 │
                 │           ▼                 ▼
                 └──────── failed ──────→ escalated

* A person moves a host along the arrows: assign (queued, failed or escalated → assigned, naming the
  technician), start (assigned → in_progress), fixed (in_progress → fixed), failed (assigned, in_progress or
  fixed → failed), escalate (failed → escalated), unassign (assigned → queued).
* **Only the host's own heartbeat verifies it**: ``verified`` is never a person's move; a host in ``fixed``
  becomes ``verified`` when it reported after it was marked fixed, on a version that is not the bad release.
  A host in another open state that reports after the campaign was created (it came back by itself) is
  verified as well.
* A closed campaign changes no host.
* **Milestones** (:func:`milestones_crossed`): 50 %, 90 % and 100 % of a campaign's hosts verified; each is
  announced once, when the verified share first reaches it.
* **Key reveal** (:func:`reveal_refusal`): only to the technician the host is assigned to, while the host is
  assigned or in progress, in an open campaign, at most ``limit`` reveals per technician per ``window``; a
  technician's other requests wait for the window to pass.  Every reveal and every refusal is audited by the
  service.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from ringfence.errors import ConflictError, InputError, shown

__all__ = ["MILESTONES", "MOVES", "HostState", "milestones_crossed", "next_state", "reveal_refusal", "verified_by_heartbeat"]


class HostState(StrEnum):
    """Where one host of a campaign is."""

    QUEUED = "queued"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    FIXED = "fixed"  # fixed, awaiting the host's own heartbeat
    VERIFIED = "verified"
    FAILED = "failed"
    ESCALATED = "escalated"


_Q, _A, _P, _F, _V, _X, _E = (HostState.QUEUED, HostState.ASSIGNED, HostState.IN_PROGRESS, HostState.FIXED,
                              HostState.VERIFIED, HostState.FAILED, HostState.ESCALATED)

#: A person's moves: name -> (states it applies to, state it leads to).
MOVES: dict[str, tuple[frozenset[HostState], HostState]] = {
    "assign": (frozenset({_Q, _X, _E, _A}), _A),
    "unassign": (frozenset({_A}), _Q),
    "start": (frozenset({_A}), _P),
    "fixed": (frozenset({_P}), _F),
    "failed": (frozenset({_A, _P, _F}), _X),
    "escalate": (frozenset({_X}), _E),
}


#: Shares of a campaign's hosts verified that are announced (per cent).
MILESTONES: tuple[int, ...] = (50, 90, 100)


def milestones_crossed(verified: int, total: int, announced: Sequence[int]) -> list[int]:
    """The milestones that ``verified`` of ``total`` hosts reach and that were not announced yet (ascending)."""
    if total <= 0:
        return []
    return [m for m in MILESTONES if m not in announced and verified * 100 >= m * total]


def next_state(current: HostState, move: str, *, campaign_open: bool, host: str) -> HostState:
    """The state after ``move``; raises InputError for an unknown move, ConflictError for a wrong state."""
    if move == "verified":
        raise InputError.single("state", "cannot be set by hand",
                                expected="the host's own heartbeat (it verifies the host by itself)")
    if move not in MOVES:
        raise InputError.single("state", f"is {shown(move)}", expected="one of " + ", ".join(MOVES))
    if not campaign_open:
        raise ConflictError("the campaign is closed; nothing changes any more")
    allowed, target = MOVES[move]
    if current not in allowed:
        raise ConflictError(f"host {host} is {current.value}; {shown(move)} applies only to "
                            + ", ".join(sorted(s.value for s in allowed)))
    return target


def verified_by_heartbeat(state: HostState, fixed_at: datetime | None, heartbeat: datetime | None,
                          on_bad_version: bool, created_at: datetime) -> bool:
    """Whether a host's own heartbeat verifies it now (see the rules)."""
    if state in (_V,) or heartbeat is None or on_bad_version:
        return False
    if state is _F:
        return fixed_at is not None and heartbeat > fixed_at
    return heartbeat > created_at


def reveal_refusal(*, campaign_open: bool, assignee: str, state: HostState, actor: str,
                   recent: Sequence[datetime], now: datetime, limit: int, window: timedelta) -> str:
    """Why a key must not be revealed to ``actor`` ("" when it may be); ``recent`` are the actor's reveals."""
    if not campaign_open:
        return "the campaign is closed"
    if assignee != actor:
        return "the host is not in a work order assigned to you"
    if state not in (_A, _P):
        return f"the host is {state.value}, not assigned or in progress"
    if sum(1 for t in recent if t > now - window) >= limit:
        return f"rate limit: at most {limit} keys per {int(window.total_seconds() // 60)} minutes"
    return ""
