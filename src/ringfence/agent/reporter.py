"""The agent's side of the API: enrolment, facts, heartbeats, events and going-away notices.

A going-away notice is a heartbeat with ``away`` set (``sleep``, ``shutdown``, ``reboot``,
``update_reboot``), sent over the same authenticated ``POST /v1/health`` as every report: the host
credential that binds reports to the host binds its notices too.  It is best effort and never queued
(a notice that arrives after the host came back would be false); a host that crashes or hangs sends
none, which is how the server tells a silence from a planned absence.

Reports and facts are sent with a **host token** (``rft_…``) when the server issues them: the agent
exchanges its long-lived credential for one (``POST /v1/agent/token``, one database lookup), which every
server checks with its key alone, and exchanges again before it expires (when a third of its life is
left) or when a server refuses it (expired, revoked, signed with a rotated key).  A server that issues
no tokens (an older server: 404; no key configured: 503) gets the credential, as before, and is asked
again after :data:`TOKEN_RETRY_SECONDS`; so a new agent works with an old server and an old agent (which
always sends its credential) with a new one.  The token is kept in memory only: a restarted agent
exchanges once more.

Events (``applied``, ``committed``, ``crashed``, ``auto_reverted``,
``install_failed``) are queued on disk first (:meth:`StateDir.enqueue`) and
leave the queue only once the server has accepted them, so an event survives
an unreachable server and an agent restart.  Heartbeats are not queued: the
next one replaces a lost one.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from ringfence import __version__
from ringfence.agent.state import StateDir

__all__ = ["EnrolmentRefused", "Reporter", "ServerUnreachable"]

log = logging.getLogger("ringfence.agent")

#: The server accepts at most this many events in one report.
MAX_EVENTS = 100
#: How long to send the credential before asking a server that issued no host token again.
TOKEN_RETRY_SECONDS = 600.0
#: Renew a host token when less than this share of its life is left.
TOKEN_RENEW_SHARE = 1 / 3


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
                 transport: httpx.BaseTransport | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self._http = httpx.Client(base_url=server.rstrip("/"), timeout=timeout, transport=transport,
                                  headers={"User-Agent": f"ringfence-agent/{__version__}"})
        self._monotonic = monotonic
        self._token = ""  # the host token (rft_…), "" when none is held
        self._token_renew_at = 0.0  # monotonic time to exchange again
        self._token_of = ""  # the credential the token was exchanged for (a re-enrolment replaces it)
        self._no_tokens_until = 0.0  # the server issued none: send the credential until then

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    @property
    def credential(self) -> str:
        """The host credential ("" before enrolment)."""
        return self.state.read_text("credential")

    def bearer(self) -> str:
        """What to authenticate reports with: a current host token, else the credential."""
        credential = self.credential
        if not credential:
            return ""
        now = self._monotonic()
        if self._token and self._token_of == credential and now < self._token_renew_at:
            return self._token
        self._token = ""
        if now < self._no_tokens_until:
            return credential
        try:
            response = self._http.post("/v1/agent/token", headers={"Authorization": f"Bearer {credential}"})
        except httpx.HTTPError as e:
            raise ServerUnreachable(f"POST /v1/agent/token: {e}") from e
        body: dict[str, Any] = {}
        if response.status_code == 200:
            try:
                body = response.json()
            except ValueError:
                body = {}
        token, life = str(body.get("token", "")), body.get("expires_in")
        if token.startswith("rft_") and isinstance(life, int | float) and life > 0:
            self._token, self._token_of = token, credential
            self._token_renew_at = now + life * (1 - TOKEN_RENEW_SHARE)
            return token
        if response.status_code == 429 or (response.status_code >= 500 and response.status_code != 503):
            raise ServerUnreachable(f"POST /v1/agent/token: HTTP {response.status_code} {_detail(response)}")
        if response.status_code != 401:  # 404: an older server; 503: no token key there; else a surprise
            log.info("the server issues no host token (HTTP %s %s); sending the credential for %.0f s",
                     response.status_code, _detail(response), TOKEN_RETRY_SECONDS)
            self._no_tokens_until = now + TOKEN_RETRY_SECONDS
        return credential  # 401: the credential itself is refused, and the report will say so

    def _send(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST with the host token (exchanged as needed); a refused token is exchanged again once, and a
        server that cannot check tokens just now (503) gets the credential."""
        bearer = self.bearer()
        response = self._post(path, body, bearer, retry_on_503=bearer.startswith("rft_"))
        if bearer.startswith("rft_") and response.status_code in (401, 503):
            log.info("the server refused the host token (HTTP %s %s); %s", response.status_code, _detail(response),
                     "exchanging it again" if response.status_code == 401 else "sending the credential")
            self._token = ""
            if response.status_code == 503:
                self._no_tokens_until = self._monotonic() + TOKEN_RETRY_SECONDS / 10
            response = self._post(path, body, self.bearer())
        return response

    def _post(self, path: str, body: dict[str, Any], token: str, *, retry_on_503: bool = False) -> httpx.Response:
        try:
            response = self._http.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as e:
            raise ServerUnreachable(f"POST {path}: {e}") from e
        if retry_on_503 and response.status_code == 503:
            return response  # the caller tries again with the credential
        if response.status_code >= 500 or response.status_code == 429:
            raise ServerUnreachable(f"POST {path}: HTTP {response.status_code} {_detail(response)}")
        return response

    def enrol(self, token: str, record: dict[str, Any]) -> str:
        """Exchange a one-time enrolment token for a host credential (stored 0600); return the host id.

        The credential is made here and kept (0600) before the first try, so a try whose answer is lost
        (a timeout while the server committed) can be repeated: the server recognises its own credential
        and answers the same enrolment instead of refusing a takeover or using the token again.
        """
        proposed = self.state.read_text("credential.proposed")
        if not proposed:
            proposed = "rfh_" + secrets.token_urlsafe(32)
            self.state.write_secret("credential.proposed", proposed)
        response = self._post("/v1/enrol", {"host": record, "credential": proposed}, token)
        if response.status_code != 201:
            raise EnrolmentRefused(f"HTTP {response.status_code}: {_detail(response)}")
        body = response.json()
        credential = str(body.get("credential", ""))
        if not credential.startswith("rfh_"):
            raise EnrolmentRefused("the server's answer has no host credential (rfh_…)")
        self.state.write_secret("credential", credential)
        (self.state.root / "credential.proposed").unlink(missing_ok=True)
        return str(body.get("host_id", record.get("id", "")))

    def send_facts(self, record: dict[str, Any]) -> bool:
        """Refresh the host's inventory facts; False when the server did not take them."""
        response = self._send("/v1/agent/facts", {"host": record})
        if not response.is_success:
            log.warning("facts not accepted: HTTP %s %s", response.status_code, _detail(response))
        return response.is_success

    def report(self, host_id: str, at: datetime, versions: dict[str, str], committed: list[str], *,
               away: str = "", events: bool = True) -> int:
        """A heartbeat carrying queued events (unless ``events`` is False); return how many events the server
        accepted.  ``away`` makes it a going-away notice (see the module docstring).

        Raises :class:`ServerUnreachable` when it should be retried later.  A
        report the server rejects as malformed (4xx other than 401/429) drops
        its events with a log line, so one bad event cannot block the queue.
        """
        queued = self.state.queued()[:MAX_EVENTS] if events else []
        body: dict[str, Any] = {"host_id": host_id, "at": at.isoformat(), "versions": versions, "committed": committed,
                                "events": queued}
        if away:
            body["away"] = away
        response = self._send("/v1/health", body)
        if response.status_code == 401:
            raise ServerUnreachable(f"the server refused this host's credential ({_detail(response)}); "
                                    "re-enrol with a new token if it was revoked")
        if not response.is_success:
            log.error("report rejected: HTTP %s %s; dropping %d queued events", response.status_code,
                      _detail(response), len(queued))
        if queued:
            self.state.dequeue(len(queued))
        return len(queued) if response.is_success else 0
