"""Request bodies are counted as they arrive and spooled to disk: ``max_upload_mb`` holds for every route.

A ``Content-Length`` header is only a claim, and a chunked request has none.  :class:`BodyLimit` is
an ASGI middleware that reads each request body before the app sees it: it counts the bytes as
they arrive and answers ``413`` (an RFC 9457 problem) the moment they pass the limit, without
reading the rest; a body larger than ``spool_bytes`` goes to a temporary file rather than memory.
The app then reads the body from the spool in chunks, as if it came from the client, so every
route, multipart or raw, is covered without being told.  The spool is deleted when the request ends.

Routes whose body is one document with a smaller cap of its own (a plan, a gate policy, notification
rules: YAML of at most 32 MiB) are named in ``route_limits``: their bodies are refused as they arrive
past that cap, so a body within ``max_upload_mb`` but far beyond what the route can take is neither
spooled whole nor read into memory by the route.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit"]

_CHUNK = 64 * 1024


class BodyLimit:
    """Refuse request bodies over ``limit_bytes`` with 413; spool bodies over ``spool_bytes`` to disk."""

    def __init__(self, app: ASGIApp, *, limit_bytes: int, spool_bytes: int = 1024 * 1024,
                 route_limits: Mapping[tuple[str, str], tuple[int, str]] | None = None) -> None:
        self.app = app
        self.limit = limit_bytes
        self.spool_bytes = spool_bytes
        #: (method, path) -> (bytes, what the cap is): routes that take one document with a cap of its own.
        self.route_limits = dict(route_limits or {})

    async def _too_large(self, scope: Scope, send: Send, detail: str) -> None:
        body = json.dumps({"type": "urn:ringfence:problem:too-large", "title": "Request too large", "status": 413,
                           "detail": detail, "instance": scope.get("path", "")}).encode("utf-8")
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(body)).encode("ascii")), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    def _limit_text(self, limit: int, why: str) -> str:
        return f"the limit is {limit:,} bytes ({why})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit, why = self.limit, f"max_upload_mb = {self.limit // (1024 * 1024)}"
        route = self.route_limits.get((str(scope.get("method", "")), str(scope.get("path", ""))))
        if route is not None and route[0] < limit:
            limit, why = route
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, send, f"the request body is {int(declared):,} bytes; "
                                               f"{self._limit_text(limit, why)}")
            return
        with tempfile.SpooledTemporaryFile(max_size=self.spool_bytes, prefix="ringfence-body-") as spool:
            size = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":  # the client went away: nothing to serve
                    return
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    await self._too_large(scope, send, f"the request body passed {limit:,} bytes "
                                                       f"as it arrived; {self._limit_text(limit, why)}")
                    return
                spool.write(chunk)
                if not message.get("more_body", False):
                    break
            spool.seek(0)
            await self.app(scope, _replay(spool, size, receive), send)


def _replay(spool: Any, size: int, receive: Receive) -> Receive:
    """A ``receive`` that hands out the spooled body in chunks, then defers to the client's."""
    left = size

    async def replay() -> Message:
        nonlocal left
        if left < 0:
            return await receive()  # body done: disconnects and the like come from the client
        chunk = spool.read(min(_CHUNK, left)) if left else b""
        left -= len(chunk)
        more = left > 0
        if not more:
            left = -1
        return {"type": "http.request", "body": chunk, "more_body": more}

    return replay
