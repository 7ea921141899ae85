"""Short-lived signed host tokens: an agent's reports are authenticated without a database round trip.

An agent exchanges its host credential (``rfh_…``, checked against the database once) for a host token
(``rft_…``): the host id and the time it was issued, signed with HMAC-SHA256 by itsdangerous under the
installation's key (``host_token_key``, else the audit key, with a salt of its own).  Every server
verifies a token with the key alone.  Revoking or replacing a credential records a revocation; every
server polls the revocations every ``poll_seconds`` (1 s by default) and refuses tokens of that host
issued before it, so a revocation takes effect on every server within about a poll, and a token that
was never revoked expires after ``ttl`` anyway.  A server whose last successful poll is older than
:data:`MAX_STALENESS` refuses tokens (503) rather than accept one that may have been revoked.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import host_tokens as store
from ringfence.errors import AuthenticationError, UnavailableError
from ringfence.services.context import Clock

__all__ = ["HOST_TOKEN_PREFIX", "MAX_STALENESS", "HostTokens", "record_revocation"]

log = logging.getLogger(__name__)

HOST_TOKEN_PREFIX = "rft_"  # noqa: S105 - a recognisable prefix, not a secret
#: The longest a server trusts its copy of the revocations (a revocation must reach every server within 5 s).
MAX_STALENESS = timedelta(seconds=4)
_OVERLAP = timedelta(seconds=60)  # re-read this much of the past on each poll: commits land out of time order


def record_revocation(conn: Any, host_id: str, at: datetime) -> None:
    """Refuse the host's tokens issued before ``at`` (call in the transaction that revokes or replaces a credential)."""
    store.record_revocation(conn, host_id, at)


class HostTokens:
    """Issues and verifies host tokens and keeps this server's copy of the revocations current."""

    def __init__(self, db: Database, clock: Clock, secret: bytes, *, ttl: timedelta = timedelta(minutes=10),
                 poll_seconds: float = 1.0) -> None:
        if len(secret) < 16:
            raise ValueError("a host token key needs at least 16 bytes")
        self.db = db
        self.clock = clock
        self.ttl = ttl
        self.poll_seconds = poll_seconds
        outer = self

        class _Signer(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(outer.clock().timestamp())

        self._serializer = URLSafeTimedSerializer(secret, salt="ringfence.host-token", signer=_Signer,
                                                  signer_kwargs={"digest_method": hashlib.sha256})
        self._revoked: dict[str, datetime] = {}
        self._polled_from: datetime | None = None
        self._fresh_at: datetime | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: threading.Thread | None = None
        self.listening = threading.Event()
        """Set while this server listens for pushed revocations (PostgreSQL, after :meth:`start`)."""

    def issue(self, host_id: str) -> dict[str, Any]:
        """A token for a host whose credential was just checked; with when it expires."""
        # "t": the issue time to the microsecond (the signer's own timestamp, for expiry, is whole seconds)
        token = HOST_TOKEN_PREFIX + self._serializer.dumps({"h": host_id, "t": self.clock().timestamp()})
        expires = self.clock() + self.ttl
        return {"token": token, "token_type": "host", "expires_at": expires.isoformat(),
                "expires_in": int(self.ttl.total_seconds())}

    def fresh(self) -> bool:
        """Whether :meth:`verify` can answer from memory now (this server's copy of the revocations is recent
        enough, with a second to spare): an async caller may then verify without leaving its event loop."""
        with self._lock:
            fresh_at = self._fresh_at
        return fresh_at is not None and self.clock() - fresh_at <= MAX_STALENESS - timedelta(seconds=1)

    def verify(self, token: str) -> str:
        """The host a token belongs to; :class:`AuthenticationError` when it is forged, expired or revoked."""
        if not token.startswith(HOST_TOKEN_PREFIX):
            raise AuthenticationError("not a host token (rft_…)")
        now = self.clock()
        try:
            doc = self._serializer.loads(token[len(HOST_TOKEN_PREFIX):], max_age=int(self.ttl.total_seconds()))
        except SignatureExpired as e:
            raise AuthenticationError("host token expired; exchange the host credential for a new one "
                                      "(POST /v1/agent/token)") from e
        except BadSignature as e:
            raise AuthenticationError("invalid host token") from e
        host = doc.get("h") if isinstance(doc, dict) else None
        issued = doc.get("t") if isinstance(doc, dict) else None
        if not isinstance(host, str) or not host or not isinstance(issued, float | int):
            raise AuthenticationError("invalid host token")
        with self._lock:
            fresh_at, revoked = self._fresh_at, self._revoked.get(host)
        if fresh_at is None or now - fresh_at > MAX_STALENESS:
            self.refresh()  # no poller running (tests, a stalled thread): catch up now, or refuse
            with self._lock:
                revoked = self._revoked.get(host)
        if revoked is not None and issued <= revoked.timestamp():
            raise AuthenticationError("host token revoked (its credential was revoked or replaced)")
        return host

    def revoked_at(self, host_id: str) -> datetime | None:
        """When this server last knew the host's credential to be revoked (from memory; no database read)."""
        with self._lock:
            return self._revoked.get(host_id)

    def refresh(self) -> int:
        """Read the revocations recorded since the last poll; return how many."""
        now = self.clock()
        since = (self._polled_from - _OVERLAP) if self._polled_from is not None else now - self.ttl - _OVERLAP
        try:
            with self.db.transaction() as conn:
                rows = store.revocations_since(conn, since)
        except Exception as e:
            if self._fresh_at is None or now - self._fresh_at > MAX_STALENESS:
                raise UnavailableError("host token revocations cannot be read; send the host credential "
                                       "(rfh_…) instead") from e
            raise
        with self._lock:
            for host, at in rows:
                prev = self._revoked.get(host)
                if prev is None or at > prev:
                    self._revoked[host] = at
            horizon = now - self.ttl - _OVERLAP
            self._revoked = {h: at for h, at in self._revoked.items() if at >= horizon}
            self._polled_from = now
            self._fresh_at = now
        return len(rows)

    def _loop(self) -> None:
        pruned = 0.0
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
                pruned += self.poll_seconds
                if pruned >= 300:
                    with self.db.transaction() as conn:
                        store.prune_revocations(conn, self.clock() - 2 * self.ttl - _OVERLAP)
                    pruned = 0.0
            except Exception:  # the database away: tokens are refused once the copy is stale
                log.warning("polling host token revocations failed", exc_info=True)

    def start(self) -> None:
        """Poll in a daemon thread."""
        if self._thread is None:
            try:
                self.refresh()
            except Exception:
                log.warning("reading host token revocations failed at start", exc_info=True)
            self._thread = threading.Thread(target=self._loop, name="ringfence-host-tokens", daemon=True)
            self._thread.start()
        if self._listener is None and not self.db.is_sqlite:
            self._listener = threading.Thread(target=self._listen, name="ringfence-host-token-push", daemon=True)
            self._listener.start()

    def _listen(self) -> None:
        def pushed(_host_id: str) -> None:  # read what was committed, with its time, as a poll would
            try:
                self.refresh()
            except Exception:
                log.warning("reading a pushed host token revocation failed; the poll retries", exc_info=True)

        store.listen_revocations(self.db, pushed, self._stop, self.listening)

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        for thread in (self._thread, self._listener):
            if thread is not None:
                thread.join(timeout=5)
        self._thread = self._listener = None
