"""Every error as an RFC 9457 problem document (``application/problem+json``).

The ``type`` of each problem is a URN naming its kind
(``urn:ringfence:problem:invalid-input``); ``errors`` lists one object per bad
field with ``field``, ``message``, ``location`` and ``expected``.  Bad input
never yields a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ringfence.errors import AuthenticationError, InputError, RingfenceError

__all__ = ["install_problem_handlers", "problem"]

log = logging.getLogger("ringfence.api")

_SLUGS = {400: "bad-request", 401: "authentication-required", 403: "permission-denied", 404: "not-found",
          405: "method-not-allowed", 409: "conflict", 413: "too-large", 415: "unsupported-media-type",
          422: "invalid-input", 429: "too-many-requests", 500: "internal-error", 503: "unavailable"}


def problem(status: int, title: str, detail: str, instance: str, errors: list[dict[str, str]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    """Build one problem response."""
    body: dict[str, Any] = {"type": f"urn:ringfence:problem:{_SLUGS.get(status, 'error')}", "title": title,
                            "status": status, "detail": detail, "instance": instance}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or "body"


def install_problem_handlers(app: FastAPI) -> None:
    """Register handlers so that every error leaves as a problem document."""

    @app.exception_handler(RingfenceError)
    async def _ringfence(request: Request, exc: RingfenceError) -> JSONResponse:
        errors = [i.as_dict() for i in exc.issues] if isinstance(exc, InputError) else None
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
        return problem(exc.status, exc.title, exc.message, request.url.path, errors, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            where = err.get("loc", ())
            location = str(where[0]) if where else ""
            errors.append({"field": _field(tuple(where)), "message": str(err.get("msg", "is invalid")),
                           "location": location, "expected": str(err.get("type", ""))})
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem(422, "Invalid input", detail or "the request is invalid", request.url.path, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        return problem(exc.status_code, title, str(exc.detail), request.url.path,
                       headers=dict(exc.headers) if exc.headers else None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "an unexpected error occurred; it was logged on the server",
                       request.url.path)
