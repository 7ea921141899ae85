"""The FastAPI app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

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
from ringfence.adapters.nats.stream import HealthStream, StreamConsumer
from ringfence.adapters.notify import OutboxNotifier
from ringfence.adapters.web import install_dashboard
from ringfence.adapters.yamlfile import DEFAULT_LIMITS as YAML_LIMITS
from ringfence.appcontext import AppContext
from ringfence.config import Settings
from ringfence.services.audit import audit_key, checkpoint_folder, use_audit_key
from ringfence.services.channel import ChannelPublisher, channel_dir
from ringfence.services.context import Clock, system_clock
from ringfence.services.health import HealthIngest
from ringfence.services.host_tokens import HostTokens
from ringfence.services.ingest_stream import StreamIngest

__all__ = ["create_app"]


def create_app(settings: Settings, *, db: Database | None = None, clock: Clock = system_clock,
               reconcile: bool | None = None) -> FastAPI:
    """Build the API for these settings; ``db`` and ``clock`` may be injected (tests, simulator).

    The reconciler loop runs while the app is served when ``reconcile`` is true (default: when
    ``settings.reconcile_interval_seconds`` > 0).
    """
    context = AppContext.build(settings, db=db, clock=clock)
    database = context.db
    key = audit_key(settings)
    use_audit_key(database, key, clock=clock)  # keyed audit chain when a key is configured
    token_key = settings.host_token_key.encode() if settings.host_token_key else key
    host_tokens = HostTokens(database, clock, token_key, ttl=timedelta(seconds=settings.host_token_ttl_seconds)) \
        if token_key else None
    ingest = HealthIngest(database, clock, max_per_minute=settings.health_max_per_minute)
    stream = HealthStream(settings.ingest_nats_url, stream=settings.ingest_nats_stream) \
        if settings.ingest_nats_url and settings.role != "reconciler" else None
    state = AppState(settings=settings, db=database, clock=clock, ingest=ingest, artifacts=context.artifacts,
                     context=context, stream=stream, host_tokens=host_tokens)
    consumer: StreamConsumer | None = None
    if settings.ingest_nats_url and settings.role in ("ingest", "all"):  # these roles write streamed reports
        consumer = StreamConsumer(settings.ingest_nats_url, StreamIngest(
            database, clock, max_per_minute=settings.health_max_per_minute).handle, stream=settings.ingest_nats_stream,
            ack_wait=settings.ingest_nats_ack_wait_seconds)
    run_loop = settings.reconcile_interval_seconds > 0 if reconcile is None else reconcile
    publisher = ChannelPublisher(database, state.artifacts, settings.data_dir, clock,
                                 checkpoint_dir=checkpoint_folder(settings),  # agents get the audit checkpoint
                                 inventory=context.inventory)  # one inventory cache for publisher and reconciler
    notifier = OutboxNotifier(database, clock)  # delivers the reconciler's halts, rollbacks and NOTIFY intents
    leadership = Leadership(database, compete=settings.role in ("all", "reconciler"))
    reconciler = Reconciler(database, ingest, clock, settings.reconcile_interval_seconds or 5.0, publisher=publisher,
                            notifier=notifier, leadership=leadership, inventory=context.inventory)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_loop:
            reconciler.start()
        notifier.start()
        if host_tokens is not None:
            host_tokens.start()
        if consumer is not None:
            consumer.start()
        try:
            yield
        finally:
            if consumer is not None:
                consumer.stop()
            if stream is not None:
                stream.close()
            reconciler.stop()
            notifier.stop()
            if host_tokens is not None:
                host_tokens.stop()

    app = FastAPI(title="ringfence", version=__version__, lifespan=lifespan, docs_url=None,  # /docs: adapters/web/docs.py
                  description="Staged, health-gated rollouts that keep one bad update from taking down a fleet. "
                              "Authenticate with `Authorization: Bearer <token>`; errors are RFC 9457 problems.")
    app.state.ringfence = state
    app.state.reconciler = reconciler
    app.state.notifier = notifier
    app.state.stream_consumer = consumer
    install_problem_handlers(app)
    install_metrics(app)
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
    yaml_cap = (YAML_LIMITS.max_bytes, f"a YAML document of at most {YAML_LIMITS.max_bytes // (1024 * 1024)} MiB")
    app.add_middleware(BodyLimit, limit_bytes=settings.max_upload_mb * 1024 * 1024, route_limits={
        ("PUT", "/v1/plans"): yaml_cap, ("PUT", "/v1/gate-policy"): yaml_cap, ("PUT", "/v1/notify/rules"): yaml_cap})
    # outermost of all: a source or credential id with too many recent 401s gets 429 before its body is read
    app.add_middleware(AuthThrottle, throttle=FailureThrottle(
        clock, per_source=settings.auth_failures_per_minute_per_source,
        per_credential=settings.auth_failures_per_minute_per_credential))
    if settings.role != "all":
        app.add_middleware(RoleRoutes, role=settings.role)  # outermost: a role answers only its own paths
    return app
