"""Prometheus metrics (prometheus-client), one registry per app."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["install_metrics"]


def install_metrics(app: FastAPI) -> CollectorRegistry:
    """Count and time every request by method, route template and status; serve ``/metrics``."""
    registry = CollectorRegistry()
    requests = Counter("ringfence_http_requests_total", "HTTP requests handled",
                       ["method", "route", "status"], registry=registry)
    latency = Histogram("ringfence_http_request_seconds", "HTTP request latency", ["method", "route"],
                        registry=registry)

    @app.middleware("http")
    async def _measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        requests.labels(request.method, template, str(response.status_code)).inc()
        latency.labels(request.method, template).observe(time.perf_counter() - start)
        return response

    @app.get("/metrics", tags=["system"], summary="Prometheus metrics", include_in_schema=True, response_class=Response,
             responses={200: {"description": "Prometheus text exposition format", "content": {"text/plain": {}}}})
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return registry
