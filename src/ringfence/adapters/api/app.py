"""The FastAPI app factory."""

from __future__ import annotations

from fastapi import FastAPI

from ringfence import __version__
from ringfence.adapters.api.deps import AppState
from ringfence.adapters.api.metrics import install_metrics
from ringfence.adapters.api.problems import install_problem_handlers
from ringfence.adapters.api.routes import audit, inventory, system, tokens
from ringfence.adapters.db.engine import Database
from ringfence.config import Settings
from ringfence.services.context import Clock, system_clock

__all__ = ["create_app"]


def create_app(settings: Settings, *, db: Database | None = None, clock: Clock = system_clock) -> FastAPI:
    """Build the API for these settings; ``db`` and ``clock`` may be injected (tests, simulator)."""
    app = FastAPI(title="ringfence", version=__version__,
                  description="Staged, health-gated rollouts that keep one bad update from taking down a fleet. "
                              "Authenticate with `Authorization: Bearer <token>`; errors are RFC 9457 problems.")
    app.state.ringfence = AppState(settings=settings, db=db or Database(settings.database_url), clock=clock)
    install_problem_handlers(app)
    install_metrics(app)
    for module in (system, tokens, inventory, audit):
        app.include_router(module.router)
    return app
