"""Failed credential checks are throttled per source address and per credential id: 429 with Retry-After.

Every credential the API accepts (operator tokens ``rf_…``, host credentials ``rfh_…``, enrolment
tokens ``rfe_…``) arrives as ``Authorization: Bearer …``.  :class:`AuthThrottle`, an ASGI
middleware, watches what each request is answered: a 401 (no valid credential: a wrong or unknown
secret) counts one failure against the request's source address and against the credential's id
(its first 12 characters, the prefix operators see in listings; never the whole secret) *from that
source*.  A source, or a credential id from a source, with ``limit`` failures in the last ``window``
is refused with 429 and ``Retry-After`` (seconds until its oldest failure leaves the window) before
its credential is even looked up.  Successful requests do not count.

The keys are what the sender controls.  A credential id is counted per source so that someone who
knows a token's prefix (it is shown in listings) cannot lock everyone else out of that token by
sending wrong secrets with it; a 256-bit secret is not guessed by spreading attempts over many
addresses.  A credential whose secret is right but which may not be used (an enrolment token used up,
expired or revoked) is answered 403 by its route and not counted at all: a fleet enrolling behind one
address with a shared token that ran out is told why, and the agents whose enrolment succeeds, or whose
reports carry their own credentials, go on from that address.  The counts live in the server process
(each process of a multi-instance deployment throttles on its own), bounded in the number of keys they
track.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict, deque
from datetime import datetime, timedelta

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ringfence.services.context import Clock

__all__ = ["AuthThrottle", "FailureThrottle", "credential_id"]

_ID_LENGTH = 12


def credential_id(authorization: str) -> str:
    """The id of the bearer credential in an ``Authorization`` header ("" when there is none)."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return token.strip()[:_ID_LENGTH]


class FailureThrottle:
    """Failures per key in a sliding window; thread-safe; at most ``max_keys`` keys remembered."""

    def __init__(self, clock: Clock, *, per_source: int, per_credential: int,
                 window: timedelta = timedelta(minutes=1), max_keys: int = 100_000) -> None:
        self.clock = clock
        self.limits = {"source": per_source, "credential": per_credential}
        self.window = window
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._failures: OrderedDict[tuple[str, str], deque[datetime]] = OrderedDict()

    def _recent(self, key: tuple[str, str], now: datetime) -> deque[datetime] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, keys: list[tuple[str, str]]) -> tuple[float, str] | None:
        """Seconds until the first blocked key may try again, and which it is; None when none is blocked."""
        now = self.clock()
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if times is not None and len(times) >= self.limits[key[0]]:
                    return (times[0] + self.window - now).total_seconds(), key[0]
        return None

    def fail(self, keys: list[tuple[str, str]]) -> None:
        """Count one failure against each key."""
        now = self.clock()
        with self._lock:
            for key in keys:
                times = self._recent(key, now) or deque()
                times.append(now)
                self._failures[key] = times
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)


class AuthThrottle:
    """Refuse sources and credential ids with too many recent 401s (429, Retry-After); count new 401s."""

    def __init__(self, app: ASGIApp, *, throttle: FailureThrottle) -> None:
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        headers = dict(scope.get("headers") or [])
        source = str(client[0]) if client else ""
        keys = [("source", source)]
        cid = credential_id(headers.get(b"authorization", b"").decode("latin-1"))
        if cid:
            keys.append(("credential", f"{source} {cid}"))  # per source: a known prefix locks out only its sender
        blocked = self.throttle.retry_after(keys)
        if blocked is not None:
            seconds, which = blocked
            await _too_many(scope, send, max(1, math.ceil(seconds)), which)
            return
        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and int(message["status"]) == 401:
                self.throttle.fail(keys)
            await send(message)

        await self.app(scope, receive, watch)


async def _too_many(scope: Scope, send: Send, retry_after: int, which: str) -> None:
    what = "this address" if which == "source" else "this credential"
    body = json.dumps({"type": "urn:ringfence:problem:too-many-requests", "title": "Too many requests",
                       "status": 429, "instance": scope.get("path", ""),
                       "detail": f"too many failed credential checks from {what}; try again in {retry_after} s"
                       }).encode("utf-8")
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/problem+json"), (b"retry-after", str(retry_after).encode()),
                            (b"content-length", str(len(body)).encode("ascii"))]})
    await send({"type": "http.response.body", "body": body})
