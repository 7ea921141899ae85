"""The FastAPI app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ringfence import __version__
from ringfence.adapters.api.deps import AppState
from ringfence.adapters.api.metrics import install_metrics
from ringfence.adapters.api.problems import install_problem_handlers
from ringfence.adapters.api.reconciler import Reconciler
from ringfence.adapters.api.roles import RoleRoutes
from ringfence.adapters.api.routes import assessment, audit, health, inventory, rollouts, system, tokens
from ringfence.adapters.api.routes import channel as channel_routes
from ringfence.adapters.api.routes import enrolment as enrolment_routes
from ringfence.adapters.api.routes import simulate as simulate_routes
from ringfence.adapters.api.routes import supply_chain as supply_chain_routes
from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.leader import Leadership
from ringfence.adapters.web import install_dashboard
from ringfence.config import Settings
from ringfence.services.channel import ChannelPublisher, channel_dir
from ringfence.services.context import Clock, system_clock
from ringfence.services.health import HealthIngest
from ringfence.services.release_gates import configure_artifacts

__all__ = ["create_app"]


def create_app(settings: Settings, *, db: Database | None = None, clock: Clock = system_clock,
               reconcile: bool | None = None) -> FastAPI:
    """Build the API for these settings; ``db`` and ``clock`` may be injected (tests, simulator).

    The reconciler loop runs while the app is served when ``reconcile`` is true (default: when
    ``settings.reconcile_interval_seconds`` > 0).
    """
    database = db or Database(settings.database_url)
    ingest = HealthIngest(database, clock, max_per_minute=settings.health_max_per_minute)
    state = AppState(settings=settings, db=database, clock=clock, ingest=ingest,
                     artifacts=ArtifactStore(settings.data_dir / "artifacts"))
    run_loop = settings.reconcile_interval_seconds > 0 if reconcile is None else reconcile
    publisher = ChannelPublisher(database, state.artifacts, settings.data_dir, clock)
    leadership = Leadership(database, compete=settings.role in ("all", "reconciler"))
    reconciler = Reconciler(database, ingest, clock, settings.reconcile_interval_seconds or 5.0, publisher=publisher,
                            leadership=leadership)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_loop:
            reconciler.start()
        try:
            yield
        finally:
            reconciler.stop()

    app = FastAPI(title="ringfence", version=__version__, lifespan=lifespan,
                  description="Staged, health-gated rollouts that keep one bad update from taking down a fleet. "
                              "Authenticate with `Authorization: Bearer <token>`; errors are RFC 9457 problems.")
    app.state.ringfence = state
    app.state.reconciler = reconciler
    install_problem_handlers(app)
    install_metrics(app)
    configure_artifacts(database, state.artifacts)  # the content-contract gate reads content artifacts
    app.include_router(supply_chain_routes.router)  # before rollouts: /gate-override must win over /{op}
    for module in (system, tokens, inventory, audit, rollouts, health, assessment):
        app.include_router(module.router)
    app.include_router(channel_routes.router)  # signed channel: status, publish, remediation
    app.include_router(enrolment_routes.router)  # agent enrolment, facts, credential revocation
    app.include_router(simulate_routes.router)  # POST /v1/simulations (small, bounded)
    app.add_middleware(channel_routes.WakeOnChange, wake=reconciler.wake)
    app.add_middleware(channel_routes.ChannelFiles, root=channel_dir(settings.data_dir))  # outermost: /tuf/ files
    install_dashboard(app)  # the browser dashboard at / (adapters/web)
    if settings.role != "all":
        app.add_middleware(RoleRoutes, role=settings.role)  # outermost: a role answers only its own paths
    return app
