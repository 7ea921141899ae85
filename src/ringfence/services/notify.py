"""The notifier port: how people are told when something matters.

A use case that decides something people must hear about (a rollout halted or rolled back, a wave
waiting on a person, the kill switch, a release gate refusing a start, a recovery milestone) builds a
:class:`Notification` and hands it to a :class:`Notifier`.  The port is one method, like
pip-audit's service interfaces; delivery (signed webhooks, Apprise targets, retries, a delivery log)
lives in adapters that implement it.  Until one is configured, :class:`LogNotifier` writes each
notification to the ``ringfence.notify`` logger, so nothing is produced and silently dropped.

Who hears it: the rules for every tenant, those of ``tenant``, and for each rollout in ``rollouts`` the
rules of every tenant owning one of its targeted hosts and of the rollout's plan (``notify:`` in its YAML).

A notifier must never raise into the caller's transaction: delivery failures are the adapter's to
record and retry.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

__all__ = ["Event", "LogNotifier", "Notification", "Notifier"]


class Event(StrEnum):
    """What happened; the names notification rules select on."""

    ROLLOUT_HALTED = "rollout.halted"
    ROLLOUT_ROLLED_BACK = "rollout.rolled_back"
    ROLLOUT_HOLD = "rollout.hold"                  # a wave waits on a person (inconclusive past its limit)
    APPROVAL_NEEDED = "rollout.approval_needed"
    GATE_INCONCLUSIVE = "gate.inconclusive"
    KILL_SWITCH = "killswitch"
    RELEASE_GATE_REFUSED = "release_gate.refused"
    RECOVERY_MILESTONE = "recovery.milestone"
    RECOVERY_CREATED = "recovery.created"
    RECOVERY_PLANNED = "recovery.planned"
    RECOVERY_CLOSED = "recovery.closed"
    RECOVERY_HOSTS = "recovery.hosts"              # campaign hosts changed state (one per committed change)
    GATE_SHADOW = "gate.shadow"                    # a gate in shadow mode would have halted, held or promoted


@dataclass(frozen=True, slots=True)
class Notification:
    """One thing people should hear about, in words, with the numbers behind it."""

    event: Event
    subject: str                 # what it is about, e.g. a rollout id or a product
    title: str                   # one line, e.g. "shop@1 halted in wave 0 (canary)"
    text: str                    # the decision in words, with its evidence
    at: datetime
    tenant: str = ""             # the tenant it concerns, when one is known ("": none in particular)
    details: Mapping[str, str | int | float] = field(default_factory=dict)
    #: The rollouts it is about.  The notifier also tells the tenants owning their targeted hosts and applies
    #: the ``notify:`` rules of their plans, so a tenant's rules hear about a halt of a vendor-wide rollout.
    rollouts: tuple[str, ...] = ()
    #: Tell it at most once: a notifier drops a repeat with the same event, subject and title (a shadow gate
    #: "would have halted" on every tick until the wave ends; people hear it the first time).
    once: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two notifications the same for ``once``."""
        return (self.event.value, self.subject, self.title)


class Notifier(Protocol):
    """Delivers notifications; one method, never raises into the caller."""

    def notify(self, notification: Notification) -> None:
        """Deliver (or queue for delivery) one notification."""
        ...


class LogNotifier:
    """The default notifier: one log line per notification on the ``ringfence.notify`` logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("ringfence.notify")
        self.sent: deque[Notification] = deque(maxlen=1000)  # the latest, for callers and tests
        self._told: dict[tuple[str, str, str], None] = {}    # keys of `once` notifications, oldest first

    def notify(self, notification: Notification) -> None:
        """Log the notification (and keep the latest 1,000, so a caller or test can see what was said)."""
        if notification.once:
            if notification.key in self._told:
                return
            self._told[notification.key] = None
            if len(self._told) > 10_000:
                del self._told[next(iter(self._told))]
        self.sent.append(notification)
        self._log.warning("%s %s: %s — %s", notification.event.value, notification.subject,
                          notification.title, notification.text)
