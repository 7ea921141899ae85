"""The API docs at ``/docs`` with Swagger UI served from an installed package, never from a CDN.

FastAPI's default ``/docs`` page loads Swagger UI from a CDN, so it is blank on a machine without internet
(an air-gapped control plane is the normal case here).  Following FastAPI's "self-hosting JavaScript and CSS
for docs" recipe, the page is built with :func:`fastapi.openapi.docs.get_swagger_ui_html` pointing at the
Swagger UI 5 files shipped inside the ``fastapi-offline`` package (used for its files only).  The app must be
created with ``docs_url=None`` so this route is the only ``/docs``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_URL", "install_docs"]

ASSETS_URL = "/docs/assets"


def _assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (Swagger UI) and its assets from the package."""
    app.mount(ASSETS_URL, StaticFiles(directory=_assets_dir()), name="docs-assets")
    redirect = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} — API",
                                   oauth2_redirect_url=redirect, swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS_URL}/swagger-ui.css", swagger_favicon_url="/favicon.ico")

    @app.get(redirect, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
