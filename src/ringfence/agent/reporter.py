"""The agent's side of the API: enrolment, facts, heartbeats and events.

Events (``applied``, ``committed``, ``crashed``, ``auto_reverted``,
``install_failed``) are queued on disk first (:meth:`StateDir.enqueue`) and
leave the queue only once the server has accepted them, so an event survives
an unreachable server and an agent restart.  Heartbeats are not queued: the
next one replaces a lost one.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import httpx

from ringfence import __version__
from ringfence.agent.state import StateDir

__all__ = ["EnrolmentRefused", "Reporter", "ServerUnreachable"]

log = logging.getLogger("ringfence.agent")

#: The server accepts at most this many events in one report.
MAX_EVENTS = 100


class ServerUnreachable(Exception):
    """The server could not be reached or asked to be retried later (5xx, 429)."""


class EnrolmentRefused(Exception):
    """The server refused the enrolment token (unknown, used up, expired) or the host record."""


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    detail = str(body.get("detail") or body.get("title") or "")
    issues = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in body.get("errors", []) if isinstance(e, dict))
    return f"{detail} ({issues})" if issues and issues not in detail else detail


class Reporter:
    """Talks to the server with the host credential kept in the state dir."""

    def __init__(self, server: str, state: StateDir, *, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.state = state
        self._http = httpx.Client(base_url=server.rstrip("/"), timeout=timeout, transport=transport,
                                  headers={"User-Agent": f"ringfence-agent/{__version__}"})

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    @property
    def credential(self) -> str:
        """The host credential ("" before enrolment)."""
        return self.state.read_text("credential")

    def _post(self, path: str, body: dict[str, Any], token: str) -> httpx.Response:
        try:
            response = self._http.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as e:
            raise ServerUnreachable(f"POST {path}: {e}") from e
        if response.status_code >= 500 or response.status_code == 429:
            raise ServerUnreachable(f"POST {path}: HTTP {response.status_code} {_detail(response)}")
        return response

    def enrol(self, token: str, record: dict[str, Any]) -> str:
        """Exchange a one-time enrolment token for a host credential (stored 0600); return the host id."""
        response = self._post("/v1/enrol", {"host": record}, token)
        if response.status_code != 201:
            raise EnrolmentRefused(f"HTTP {response.status_code}: {_detail(response)}")
        body = response.json()
        credential = str(body.get("credential", ""))
        if not credential.startswith("rfh_"):
            raise EnrolmentRefused("the server's answer has no host credential (rfh_…)")
        self.state.write_secret("credential", credential)
        return str(body.get("host_id", record.get("id", "")))

    def send_facts(self, record: dict[str, Any]) -> bool:
        """Refresh the host's inventory facts; False when the server did not take them."""
        response = self._post("/v1/agent/facts", {"host": record}, self.credential)
        if not response.is_success:
            log.warning("facts not accepted: HTTP %s %s", response.status_code, _detail(response))
        return response.is_success

    def report(self, host_id: str, at: datetime, versions: dict[str, str], committed: list[str]) -> int:
        """A heartbeat carrying queued events; return how many events the server accepted.

        Raises :class:`ServerUnreachable` when it should be retried later.  A
        report the server rejects as malformed (4xx other than 401/429) drops
        its events with a log line, so one bad event cannot block the queue.
        """
        events = self.state.queued()[:MAX_EVENTS]
        body = {"host_id": host_id, "at": at.isoformat(), "versions": versions, "committed": committed,
                "events": events}
        response = self._post("/v1/health", body, self.credential)
        if response.status_code == 401:
            raise ServerUnreachable(f"the server refused this host's credential ({_detail(response)}); "
                                    "re-enrol with a new token if it was revoked")
        if not response.is_success:
            log.error("report rejected: HTTP %s %s; dropping %d queued events", response.status_code,
                      _detail(response), len(events))
        self.state.dequeue(len(events))
        return len(events) if response.is_success else 0
