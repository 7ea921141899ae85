"""The signed channel over HTTP: static TUF files (no auth), status, publish-now and remediation scripts.

``/tuf/metadata/{name}`` and ``/tuf/targets/{path}`` are served by :class:`ChannelFiles`, a plain
ASGI middleware in front of the API (no routing, no per-request database work): the files are
public, signed and cacheable.  ``timestamp.json`` and ``root.json`` are ``no-cache``; every other
file is versioned or content-addressed and therefore ``immutable``.  Small files are kept in
memory (checked against the file's mtime for the two unversioned names).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ringfence.adapters.api.deps import AppState, get_state, reason_of, require
from ringfence.domain.access import Role
from ringfence.errors import InputError, UnavailableError
from ringfence.services import channel
from ringfence.services.context import Actor

__all__ = ["ChannelFiles", "WakeOnChange", "router"]

router = APIRouter(tags=["channel"])

_MUTABLE = frozenset({"timestamp.json", "root.json"})
_IMMUTABLE = b"public, max-age=31536000, immutable"
_NO_CACHE = b"no-cache"
_CACHE_LIMIT = 1 << 20  # files up to 1 MiB are kept in memory
_CACHE_ENTRIES = 4096


class ChannelFiles:
    """Serves ``<channel>/metadata`` and ``<channel>/targets`` under ``/tuf/``; passes everything else on."""

    def __init__(self, app: ASGIApp, root: Path) -> None:
        self.app = app
        self.metadata = root / "metadata"
        self.targets = root / "targets"
        self._cache: OrderedDict[str, tuple[int, bytes]] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/tuf/"):
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await self._send(send, 405, b'{"title": "Method not allowed", "status": 405}',
                             b"application/problem+json", b"no-store", head=False, extra=[(b"allow", b"GET, HEAD")])
            return
        head = scope["method"] == "HEAD"
        found = self._resolve(path)
        if found is None:
            detail = json.dumps({"type": "urn:ringfence:problem:not-found", "title": "Not found", "status": 404,
                                 "detail": f"no channel file at {path}", "instance": path}).encode()
            await self._send(send, 404, detail, b"application/problem+json", b"no-cache", head=head)
            return
        file, name, is_metadata = found
        body = self._read(file, name in _MUTABLE and is_metadata)
        if body is None:
            await self._send(send, 404, b'{"title": "Not found", "status": 404}', b"application/problem+json",
                             b"no-cache", head=head)
            return
        ctype = b"application/json" if is_metadata or name.endswith(".json") else b"application/octet-stream"
        cache = _NO_CACHE if is_metadata and name in _MUTABLE else _IMMUTABLE
        await self._send(send, 200, body, ctype, cache, head=head)

    def _resolve(self, path: str) -> tuple[Path, str, bool] | None:
        if path.startswith("/tuf/metadata/"):
            name = path.removeprefix("/tuf/metadata/")
            if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
                return None
            return self.metadata / name, name, True
        if path.startswith("/tuf/targets/"):
            rel = path.removeprefix("/tuf/targets/")
            parts = rel.split("/")
            if not rel or any(p in ("", ".", "..") or p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
                return None
            return self.targets.joinpath(*parts), parts[-1], False
        return None

    def _read(self, file: Path, mutable: bool) -> bytes | None:
        key = str(file)
        hit = self._cache.get(key)
        if hit is not None and not mutable:
            return hit[1]
        try:
            st = os.stat(file)
        except OSError:
            return None
        if hit is not None and hit[0] == st.st_mtime_ns:
            return hit[1]
        try:
            data = file.read_bytes()
        except OSError:
            return None
        if len(data) <= _CACHE_LIMIT:
            self._cache[key] = (st.st_mtime_ns, data)
            if len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return data

    @staticmethod
    async def _send(send: Send, status: int, body: bytes, ctype: bytes, cache: bytes, *, head: bool,
                    extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), (b"cache-control", cache),
                   *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})


class WakeOnChange:
    """Wakes the reconciler after a successful change under ``/v1/`` (halt, rollback, kill switch, policy …),
    so the channel reflects it within a second instead of at the next interval.  Health reports do not wake it."""

    def __init__(self, app: ASGIApp, wake: Callable[[], None]) -> None:
        self.app = app
        self.wake = wake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS") \
                or not scope["path"].startswith("/v1/") or scope["path"] == "/v1/health":
            await self.app(scope, receive, send)
            return
        status = 0

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, capture)
        if 200 <= status < 300:
            self.wake()


def _publisher(request: Request) -> channel.ChannelPublisher:
    publisher: channel.ChannelPublisher | None = getattr(request.app.state.reconciler, "publisher", None)
    if publisher is None:
        raise UnavailableError("this server does not publish the channel")
    return publisher


@router.get("/v1/channel/status", summary="Versions, expiry and keys of each TUF role")
def channel_status(state: AppState = Depends(get_state), _actor: Actor = Depends(require(Role.VIEWER))
                   ) -> dict[str, Any]:
    """What the channel serves now (``initialised: false`` until ``ringfence keys init``)."""
    return channel.status(state.settings.data_dir)


@router.post("/v1/channel/publish", summary="Publish desired state now (the reconciler also does after each tick)")
def channel_publish(request: Request, _actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Sign and publish the cohorts whose desired state changed, then snapshot and timestamp."""
    publisher = _publisher(request)
    result = publisher.publish()
    if result is None:
        raise UnavailableError("the channel has no keys yet; run `ringfence keys init` on the server")
    return {"changed": list(result.changed), "refreshed": list(result.refreshed),
            "snapshot_version": result.snapshot_version, "timestamp_version": result.timestamp_version}


@router.post("/v1/remediations", status_code=201, summary="Publish a signed remediation script to hosts")
async def remediation_publish(request: Request, file: Annotated[UploadFile, File(description="The script.")],
                              remediation_id: Annotated[str, Form(alias="id", min_length=1, max_length=100)],
                              selector: Annotated[str, Form(max_length=4000)] = "",
                              product: Annotated[str, Form(max_length=200)] = "",
                              reason: Annotated[str, Form(max_length=2000)] = "",
                              state: AppState = Depends(get_state),
                              actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Stored, audited, and signed into the manifests of the matching hosts' cohorts at the next publication."""
    data = await file.read(10 * 1024 * 1024 + 1)
    name = os.path.basename(file.filename or "")
    if not name:
        raise InputError.single("file", "has no file name", expected="a script file such as fix.sh")
    result = channel.publish_remediation(state.db, state.artifacts, remediation_id=remediation_id, file_name=name,
                                         script=data, selector=selector, product=product,
                                         reason=reason_of(request, reason), actor=actor, clock=state.clock)
    wake = getattr(request.app.state.reconciler, "wake", None)
    if wake is not None:
        wake()
    return result


@router.get("/v1/remediations", summary="List remediation scripts")
def remediation_list(state: AppState = Depends(get_state), actor: Actor = Depends(require(Role.VIEWER))
                     ) -> dict[str, Any]:
    """Every published remediation script with the hosts it names."""
    return {"remediations": [{**r, "created_at": r["created_at"].isoformat() if r["created_at"] else None}
                             for r in channel.list_remediations(state.db, actor=actor)]}
