"""Notification delivery: signed webhooks and Apprise targets behind the notifier port (docs/notifications.md)."""

from __future__ import annotations

from ringfence.adapters.notify.outbox import OutboxNotifier, sign
from ringfence.adapters.notify.rules import Rules, Target, parse_rules

__all__ = ["OutboxNotifier", "Rules", "Target", "parse_rules", "sign"]
