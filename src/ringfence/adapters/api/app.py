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
from ringfence.adapters.api.routes import notify as notify_routes
from ringfence.adapters.api.routes import recovery as recovery_routes
from ringfence.adapters.api.routes import simulate as simulate_routes
from ringfence.adapters.api.routes import supply_chain as supply_chain_routes
from ringfence.adapters.api.throttle import AuthThrottle, FailureThrottle
from ringfence.adapters.api.uploads import BodyLimit
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.leader import Leadership
from ringfence.adapters.notify import OutboxNotifier
from ringfence.adapters.web import install_dashboard
from ringfence.appcontext import AppContext
from ringfence.config import Settings
from ringfence.services.audit import audit_key, use_audit_key
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
    context = AppContext.build(settings, db=db, clock=clock)
    database = context.db
    use_audit_key(database, audit_key(settings), clock=clock)  # keyed audit chain when a key is configured
    ingest = HealthIngest(database, clock, max_per_minute=settings.health_max_per_minute)
    state = AppState(settings=settings, db=database, clock=clock, ingest=ingest, artifacts=context.artifacts,
                     context=context)
    run_loop = settings.reconcile_interval_seconds > 0 if reconcile is None else reconcile
    publisher = ChannelPublisher(database, state.artifacts, settings.data_dir, clock)
    notifier = OutboxNotifier(database, clock)  # delivers the reconciler's halts, rollbacks and NOTIFY intents
    leadership = Leadership(database, compete=settings.role in ("all", "reconciler"))
    reconciler = Reconciler(database, ingest, clock, settings.reconcile_interval_seconds or 5.0, publisher=publisher,
                            notifier=notifier, leadership=leadership)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_loop:
            reconciler.start()
        notifier.start()
        try:
            yield
        finally:
            reconciler.stop()
            notifier.stop()

    app = FastAPI(title="ringfence", version=__version__, lifespan=lifespan, docs_url=None,  # /docs: adapters/web/docs.py
                  description="Staged, health-gated rollouts that keep one bad update from taking down a fleet. "
                              "Authenticate with `Authorization: Bearer <token>`; errors are RFC 9457 problems.")
    app.state.ringfence = state
    app.state.reconciler = reconciler
    app.state.notifier = notifier
    install_problem_handlers(app)
    install_metrics(app)
    configure_artifacts(database, state.artifacts)  # the content-contract gate reads content artifacts
    app.include_router(supply_chain_routes.router)  # before rollouts: /gate-override must win over /{op}
    for module in (system, tokens, inventory, audit, rollouts, health, assessment):
        app.include_router(module.router)
    app.include_router(channel_routes.router)  # signed channel: status, publish, remediation
    app.include_router(enrolment_routes.router)  # agent enrolment, facts, credential revocation
    app.include_router(simulate_routes.router)  # POST /v1/simulations (small, bounded)
    app.include_router(notify_routes.router)  # notification rules and the delivery log
    app.include_router(recovery_routes.router)  # /v1/recovery: campaigns, work orders, keys
    app.add_middleware(channel_routes.WakeOnChange, wake=reconciler.wake)
    app.add_middleware(channel_routes.ChannelFiles, root=channel_dir(settings.data_dir))  # outermost: /tuf/ files
    install_dashboard(app)  # the browser dashboard at / (adapters/web)
    # outermost: every request body is counted as it arrives (chunked too) and spooled to disk past 1 MiB
    app.add_middleware(BodyLimit, limit_bytes=settings.max_upload_mb * 1024 * 1024)
    # outermost of all: a source or credential id with too many recent 401s gets 429 before its body is read
    app.add_middleware(AuthThrottle, throttle=FailureThrottle(
        clock, per_source=settings.auth_failures_per_minute_per_source,
        per_credential=settings.auth_failures_per_minute_per_credential))
    if settings.role != "all":
        app.add_middleware(RoleRoutes, role=settings.role)  # outermost: a role answers only its own paths
    return app
