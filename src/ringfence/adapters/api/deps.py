"""Request-scoped dependencies: the app state and the authenticated actor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.adapters.nats.stream import HealthStream
from ringfence.appcontext import AppContext
from ringfence.config import Settings
from ringfence.domain.access import Role
from ringfence.errors import AuthenticationError
from ringfence.services import tokens
from ringfence.services.context import Actor, Clock
from ringfence.services.health import HealthIngest
from ringfence.services.host_tokens import HOST_TOKEN_PREFIX, HostTokens
from ringfence.services.notify import Notifier

__all__ = ["AppState", "get_state", "notifier_of", "reason_of", "reporting_host", "require"]

_bearer = HTTPBearer(auto_error=False, description="An operator token from `ringfence token create`.")


@dataclass
class AppState:
    """What every route needs: settings, database and clock."""

    settings: Settings
    db: Database
    clock: Clock
    ingest: HealthIngest
    artifacts: ArtifactStore
    context: AppContext  # the same db, clock and artifacts, and the caches use cases share (ringfence.appcontext)
    stream: HealthStream | None = None  # health reports go through NATS JetStream (settings.ingest_nats_url)
    host_tokens: HostTokens | None = None  # signed host tokens (services/host_tokens.py), when a key is configured


def reporting_host(state: AppState, token: str) -> str:
    """The host a host token (rft_…, checked without the database) or a host credential (rfh_…) belongs to."""
    if token.startswith(HOST_TOKEN_PREFIX):
        if state.host_tokens is None:
            raise AuthenticationError("this server issues no host tokens (no host_token_key or audit key); "
                                      "send the host credential (rfh_…)")
        return state.host_tokens.verify(token)
    return state.ingest.authenticate(token)


def notifier_of(request: Request) -> Notifier | None:
    """The app's notifier (adapters/notify), so a halt, rollback or kill switch done through the API is told
    like the reconciler's own decisions; None (the services' log notifier) when the app has none."""
    notifier: Notifier | None = getattr(request.app.state, "notifier", None)
    return notifier


def get_state(request: Request) -> AppState:
    """The state the app factory stored."""
    state: AppState = request.app.state.ringfence
    return state


def require(role: Role) -> Callable[..., Actor]:
    """A dependency that authenticates the bearer token and checks its role."""

    def dependency(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Actor:
        state = get_state(request)
        source = request.client.host if request.client else ""
        actor = tokens.authenticate(state.db, creds.credentials if creds else "", source=source, clock=state.clock)
        actor.require(role, f"{request.method} {request.url.path}")
        return actor

    return dependency


def reason_of(request: Request, body_reason: str = "") -> str:
    """Why: from the body's ``reason`` or the ``X-Ringfence-Reason`` header."""
    return body_reason or request.headers.get("x-ringfence-reason", "")
