"""The browser dashboard (server-rendered Jinja2 pages, a little hand-written JavaScript, no CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ringfence.adapters.web.docs import install_docs
from ringfence.adapters.web.recovery_pages import router as recovery_router
from ringfence.adapters.web.routes import router

__all__ = ["STATIC_DIR", "install_dashboard"]

STATIC_DIR = Path(__file__).parent / "static"


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at ``/``, its static files at ``/static`` and the API docs at ``/docs`` (no CDN)."""
    install_docs(app)
    app.include_router(router)
    app.include_router(recovery_router)  # /recovery: campaigns, work orders
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
