"""The notifier port: how people are told when something matters.

A use case that decides something people must hear about (a rollout halted or rolled back, a wave
waiting on a person, the kill switch, a release gate refusing a start, a recovery milestone) builds a
:class:`Notification` and hands it to a :class:`Notifier`.  The port is one method, like
pip-audit's service interfaces; delivery (signed webhooks, Apprise targets, retries, a delivery log)
lives in adapters that implement it.  Until one is configured, :class:`LogNotifier` writes each
notification to the ``ringfence.notify`` logger, so nothing is produced and silently dropped.

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


@dataclass(frozen=True, slots=True)
class Notification:
    """One thing people should hear about, in words, with the numbers behind it."""

    event: Event
    subject: str                 # what it is about, e.g. a rollout id or a product
    title: str                   # one line, e.g. "shop@1 halted in wave 0 (canary)"
    text: str                    # the decision in words, with its evidence
    at: datetime
    tenant: str = ""
    details: Mapping[str, str | int | float] = field(default_factory=dict)


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

    def notify(self, notification: Notification) -> None:
        """Log the notification (and keep the latest 1,000, so a caller or test can see what was said)."""
        self.sent.append(notification)
        self._log.warning("%s %s: %s — %s", notification.event.value, notification.subject,
                          notification.title, notification.text)
