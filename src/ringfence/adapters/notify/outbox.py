"""Delivery of notifications: an outbox in the database drained by one worker thread.

:meth:`OutboxNotifier.notify` only puts the notification on an in-memory queue and returns: it never
blocks, never touches the database in the caller's transaction and never raises, so the reconciler and
the API stay as fast as they were.  The worker thread writes one ``notify_deliveries`` row per matching
target, then attempts every due row.  The rules that apply: those for every tenant (``tenant: ""``), the
notification's tenant's, and for each rollout it is about the rules of every tenant owning one of the
rollout's targeted hosts and the ``notify:`` rules of the rollout's plan (each target once):

* **webhook** targets get a JSON POST signed with HMAC-SHA256 (:func:`sign`): headers
  ``X-Ringfence-Timestamp`` (Unix seconds), ``X-Ringfence-Signature: sha256=<hex>`` over
  ``"<timestamp>." + body``, ``X-Ringfence-Event`` and ``X-Ringfence-Delivery`` (the row id, the same on
  every retry, so a receiver can drop duplicates).  Any 2xx is delivered.
* **apprise** targets go through Apprise (Slack, Microsoft Teams, e-mail, PagerDuty, ``json://`` …).

A failed attempt is retried with exponential backoff (``backoff_base`` × 2^(attempt−1), at most
``backoff_cap`` seconds, ±20 % jitter) until ``max_attempts``; then the row is ``failed`` with the last error.
Rows are the delivery log (``ringfence notify log``, ``/notifications`` in the dashboard); rows still
pending when the server stops are attempted after it starts again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import random
import threading
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ringfence import __version__
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import notify as store
from ringfence.adapters.db.stores.base import utc
from ringfence.adapters.notify.rules import PLAN_SCOPE, Rules, Target, plan_rules, rules_from_doc
from ringfence.errors import InputError
from ringfence.services.context import Clock, system_clock
from ringfence.services.notify import Notification

__all__ = ["OutboxNotifier", "sign"]

_log = logging.getLogger("ringfence.notify")
#: A notification about a vendor-wide rollout names at most this many tenants in its details.
_MAX_TENANTS_SHOWN = 100


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The webhook signature: hex HMAC-SHA256 of ``b"<timestamp>." + body`` under ``secret``."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


class DeliveryError(Exception):
    """One attempt failed; the message says why (it goes into the delivery log)."""


class OutboxNotifier:
    """A :class:`~ringfence.services.notify.Notifier` that stores and delivers with retries, off the caller's thread."""

    def __init__(self, db: Database, clock: Clock = system_clock, *, env: Mapping[str, str] | None = None,
                 backoff_base: float = 2.0, backoff_cap: float = 300.0, max_attempts: int = 8,
                 poll_seconds: float = 1.0, timeout_seconds: float = 5.0,
                 apprise_send: Callable[[str, str, str], bool] | None = None) -> None:
        self._db = db
        self._clock = clock
        self._env = os.environ if env is None else env
        self.backoff_base, self.backoff_cap, self.max_attempts = backoff_base, backoff_cap, max_attempts
        self._poll = poll_seconds
        self._http = httpx.Client(timeout=timeout_seconds, headers={"user-agent": f"ringfence/{__version__}"})
        self._apprise_send = apprise_send or _apprise_send
        self._queue: queue.SimpleQueue[Notification] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: When the database next has a due row: no query before then unless something new was queued
        #: (on SQLite every transaction takes the write lock, so an idle worker must not poll it).
        self._next_due: datetime | None = datetime.min.replace(tzinfo=UTC)

    # --- the port ----------------------------------------------------------------------------
    def notify(self, notification: Notification) -> None:
        """Queue the notification for the worker; returns at once and never raises."""
        try:
            self._queue.put_nowait(notification)
            self._wake.set()
        except Exception:  # pragma: no cover - SimpleQueue.put_nowait does not fail; the port promises no raise
            _log.exception("could not queue notification %s", notification.title)

    # --- the worker --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._thread = threading.Thread(target=self._loop, name="ringfence-notify", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker after its current attempt; what is still pending stays in the outbox."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._http.close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception:  # the worker must outlive a database hiccup; the rows are still there
                _log.exception("notification worker: pass failed; retrying")
            self._wake.wait(self._poll)
            self._wake.clear()

    def run_once(self) -> int:
        """Store what was queued, then attempt every due delivery; returns how many attempts were made."""
        queued = self._store_queued()
        now = self._clock()
        if not queued and (self._next_due is None or now < self._next_due):
            return 0
        with self._db.transaction() as conn:
            due = store.due_deliveries(conn, now)
            rules = self._rules(conn)
        for row in due:
            if self._stopping.is_set():
                break
            self._attempt(row, rules)
        with self._db.transaction() as conn:
            self._next_due = store.next_due(conn)
        return len(due)

    def _rules(self, conn: Any) -> dict[str, Rules]:
        """Every scope's rules: tenants by id ("" for every tenant), plans as ``plan:<name>``."""
        rules = {r.tenant: rules_from_doc(r.document) for r in store.all_rules(conn)}
        for name, (section, _) in store.plan_rules(conn).items():
            try:
                rules[f"{PLAN_SCOPE}{name}"] = plan_rules(name, section)
            except InputError:  # validated when the plan was applied; a hand-edited row must not stop delivery
                _log.warning("plan %s has notify rules that no longer validate; they are skipped", name)
        return rules

    def _store_queued(self) -> bool:
        pending: list[Notification] = []
        while True:
            try:
                pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not pending:
            return False
        now = self._clock()
        with self._db.transaction() as conn:
            rules = self._rules(conn)
            rows: list[dict[str, Any]] = []
            once: set[tuple[str, str, str]] = set()
            for n in pending:
                if n.once:  # told at most once: drop a repeat of this batch or of any earlier delivery
                    if n.key in once or store.told(conn, *n.key):
                        continue
                    once.add(n.key)
                tenants, plans = store.rollout_scopes(conn, n.rollouts)
                tenants = sorted({*tenants, n.tenant} - {""})
                scopes = ["", *tenants, *(f"{PLAN_SCOPE}{p}" for p in dict.fromkeys(plans.values()) if p)]
                details: dict[str, Any] = {**n.details, **({"tenants": tenants[:_MAX_TENANTS_SHOWN]} if tenants else {})}
                seen: set[tuple[str, str]] = set()  # one delivery per target, even when several scopes select it
                for scope in scopes:
                    if scope not in rules:
                        continue
                    for target in rules[scope].targets_for(n.event.value):
                        if (target.kind, target.url) in seen:
                            continue
                        seen.add((target.kind, target.url))
                        rows.append({"event": n.event.value, "subject": n.subject,
                                     "tenant": (scope if scope in tenants else ",".join(tenants))[:200],
                                     "title": n.title, "text": n.text, "details": details,
                                     "target": f"{scope or '*'}/{target.name}", "kind": target.kind,
                                     "state": "pending", "attempts": 0, "created_at": n.at, "next_attempt_at": now,
                                     "delivered_at": None, "last_error": "", "version": 1})
            store.add_deliveries(conn, rows)
        if not rows:
            _log.info("%d notification(s) matched no rule", len(pending))
        return bool(rows)

    def _attempt(self, row: Any, rules: Mapping[str, Rules]) -> None:
        scope, _, name = row.target.partition("/")
        target = rules.get("" if scope == "*" else scope, None)
        found = target.targets.get(name) if target is not None else None
        now = self._clock()
        attempts = int(row.attempts) + 1
        try:
            if found is None:
                raise DeliveryError(f"target {row.target} is no longer in the rules")
            self._send(found, row)
        except DeliveryError as e:
            final = attempts >= self.max_attempts or found is None
            delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto
            with self._db.transaction() as conn:
                store.record_attempt(conn, row.id, state="failed" if final else "pending", attempts=attempts,
                                     next_attempt_at=now + timedelta(seconds=delay), delivered_at=None, error=str(e))
            _log.warning("notification %s to %s: attempt %d failed: %s%s", row.id, row.target, attempts, e,
                         "; giving up" if final else f"; retrying in {delay:.0f} s")
            return
        with self._db.transaction() as conn:
            store.record_attempt(conn, row.id, state="delivered", attempts=attempts, next_attempt_at=now,
                                 delivered_at=now, error="")

    def _send(self, target: Target, row: Any) -> None:
        at = utc(row.created_at)
        payload = {"delivery": row.id, "event": row.event, "subject": row.subject, "tenant": row.tenant,
                   "title": row.title, "text": row.text, "at": at.isoformat() if at else "", "details": row.details}
        if target.kind == "webhook":
            self._post_webhook(target, row, payload)
        elif not self._apprise_send(target.url, row.title, row.text or row.title):  # Apprise refuses an empty body
            raise DeliveryError(f"Apprise could not deliver to {target.shown()['url']} (details in the server log)")

    def _post_webhook(self, target: Target, row: Any, payload: Mapping[str, Any]) -> None:
        secret = target.secret or self._env.get(target.secret_env, "")
        if not secret:
            raise DeliveryError(f"webhook secret ${target.secret_env} is not set in the server's environment")
        body = json.dumps(payload, sort_keys=True, default=str).encode()
        timestamp = int(self._clock().timestamp())
        headers = {"content-type": "application/json", "x-ringfence-event": row.event,
                   "x-ringfence-delivery": str(row.id), "x-ringfence-timestamp": str(timestamp),
                   "x-ringfence-signature": f"sha256={sign(secret, timestamp, body)}"}
        try:
            response = self._http.post(target.url, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise DeliveryError(f"{type(e).__name__}: {e}") from e
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"HTTP {response.status_code} from {target.url}")


def _apprise_send(url: str, title: str, body: str) -> bool:
    """Send through Apprise; True when every service it names accepted the message."""
    with warnings.catch_warnings():  # Apprise loads plugins on first use; some import imghdr, deprecated in 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise  # noqa: PLC0415 - a large import, paid only by servers that deliver to Apprise targets

        sender = apprise.Apprise()
        if not sender.add(url):
            _log.warning("Apprise does not understand the target URL %s…", url.split("://", 1)[0])
            return False
        return bool(sender.notify(title=title, body=body))
