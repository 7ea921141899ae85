"""What a server answers under ``ringfence serve --role``: each role only its own paths.

- ``all`` and ``api``: everything (``api`` runs no reconciler; see :mod:`ringfence.adapters.db.leader`).
- ``ingest``: agent traffic only: the signed channel ``/tuf/``, ``/v1/health``, ``/v1/enrol`` and
  ``/v1/agent/…``, so agent-facing servers can scale apart from the operator API.
- ``reconciler``: the elected loop; over HTTP only ``/healthz``, ``/readyz`` and ``/metrics``.

Anything else gets a 404 problem that says which role serves it.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["ROLES", "RoleRoutes"]

ROLES = ("all", "api", "reconciler", "ingest")
_ALWAYS = frozenset({"/healthz", "/readyz", "/metrics"})
_AGENT = frozenset({"/v1/health", "/v1/enrol"})
_AGENT_PREFIXES = ("/tuf/", "/v1/agent/")


class RoleRoutes:
    """ASGI middleware that refuses the paths this server's role does not serve."""

    def __init__(self, app: ASGIApp, role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
        self.app = app
        self.role = role
        self.exact = _ALWAYS | _AGENT if role == "ingest" else _ALWAYS
        self.prefixes = _AGENT_PREFIXES if role == "ingest" else ()
        self.open = role in ("all", "api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if self.open or scope["type"] != "http" or path in self.exact or path.startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        serves = "the agents' paths (/tuf/, /v1/health, /v1/enrol, /v1/agent/)" if self.role == "ingest" else \
            "only /healthz, /readyz and /metrics"
        body = json.dumps({"type": "urn:ringfence:problem:not-found", "title": "Not served by this role",
                           "status": 404, "instance": path,
                           "detail": f"this server runs with --role {self.role} and serves {serves}; send {path} "
                                     "to a server with --role api or --role all"}).encode()
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
