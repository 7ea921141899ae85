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
from pydantic import BaseModel, ConfigDict, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from ringfence.errors import AuthenticationError, FieldIssue, InputError, RingfenceError

__all__ = ["MAX_ID", "MAX_REASON", "MAX_SEQ", "MAX_TEXT", "PROBLEM_SCHEMA", "Body", "check_form_fields",
           "install_problem_handlers", "problem"]

#: Largest token id a route accepts: the ids are INTEGER columns, 32-bit on PostgreSQL (SQLite stores 64).
#: Id parameters are declared ``ge=1, le=MAX_ID`` so a larger one is a 422 on both, never an overflow.
MAX_ID = 2**31 - 1
#: Largest audit sequence number (a BIGINT column on both databases).
MAX_SEQ = 2**63 - 1
#: Longest text a JSON body field takes unless the field declares its own (shorter or longer) limit.
MAX_TEXT = 2000
#: Longest ``reason`` (it goes to the audit log).
MAX_REASON = 2000
_NUL = "contains a NUL character (\\u0000), which no text field accepts (PostgreSQL cannot store it)"


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


class Body(BaseModel):
    """Base of every JSON request body: the same limits on SQLite and PostgreSQL.

    Text is at most :data:`MAX_TEXT` characters unless the field declares its own ``max_length``, and
    no text anywhere in a field (nested lists and objects included) may hold a NUL character, which
    PostgreSQL refuses to store and SQLite would store. Both are a 422 naming the field.
    """

    model_config = ConfigDict(str_max_length=MAX_TEXT)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError(_NUL)
        return value


def check_form_fields(fields: dict[str, str], limit: int = MAX_TEXT) -> dict[str, str]:
    """The text fields of a multipart form, refused (422 naming each) when longer than ``limit`` or holding a NUL."""
    issues = [FieldIssue(field=name, message=_NUL if "\x00" in value else f"is {len(value):,} characters long",
                         location="form", expected="text without NUL characters" if "\x00" in value
                         else f"at most {limit} characters")
              for name, value in fields.items() if "\x00" in value or len(value) > limit]
    if issues:
        raise InputError("form rejected", issues)
    return fields


class _RefuseNulInUrl:
    """A NUL character in the path or the query (``%00``) is a 422 before any route sees it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = ("path" if "\x00" in scope.get("path", "")
                     else "query" if b"%00" in scope.get("query_string", b"") else "")
            if where:
                response = problem(422, "Invalid input", f"the {where} {_NUL}", scope.get("path", "").replace("\x00", ""),
                                   [{"field": where, "message": _NUL, "location": where,
                                     "expected": "text without NUL characters"}])
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

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


#: The problem document as a JSON schema (``components.schemas.Problem`` of /openapi.json).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object", "title": "Problem", "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string", "description": "urn:ringfence:problem:<kind>"},
        "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request path"},
        "errors": {"type": "array", "description": "One entry per bad field", "items": {
            "type": "object", "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"},
                           "location": {"type": "string"}, "expected": {"type": "string"}}}},
    },
}
#: The errors every operation may answer, and those of operations that take a request body.
_EVERY = {401: "No valid credential (token or host credential)", 403: "The credential's role may not do this",
          404: "Not found", 422: "Invalid input: the errors name each field and the fix",
          429: "Too many requests (see Retry-After)", 503: "Not ready yet (database or channel keys)"}
_WITH_BODY = {400: "The body cannot be read (malformed multipart or JSON)", 409: "Conflicts with the current state",
              413: "The upload is larger than max_upload_mb", 415: "Unsupported content type"}


_NO_NUL_PATTERN = "^[^\\u0000]*$"
#: Python's whitespace (what ``str.strip`` removes), spelled out so a JSON Schema regex means the same.
_SPACE = "\\t-\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
#: Text with at least one character that is not whitespace, and no NUL: declares in the OpenAPI document what
#: the services check with ``if not text.strip()`` (a reason, a name), so a blank one is not "schema-valid".
NON_BLANK_PATTERN = f"^[^\\u0000]*[^\\u0000{_SPACE}][^\\u0000]*$"


def _refuse_nul_in(node: Any, components: dict[str, Any], seen: set[str]) -> None:
    """Declare in a request schema what :class:`Body` and the form checks enforce: no text holds a NUL.

    Every string (not an enum, a constant or a binary upload) gets the NUL-free ``pattern``, every
    mapping's keys a ``propertyNames`` with it; ``$ref`` schemas are followed once each.
    """
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        ref = item.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen and name in components:
                seen.add(name)
                stack.append(components[name])
        if item.get("type") == "string" and not ({"pattern", "enum", "const"} & set(item)) \
                and item.get("format") not in ("binary", "date-time", "date"):
            item["pattern"] = _NO_NUL_PATTERN
        if item.get("type") == "object" and item.get("additionalProperties") not in (None, False):
            names = item.setdefault("propertyNames", {})  # pydantic writes one for constrained keys (no pattern)
            if isinstance(names, dict) and not ({"pattern", "enum", "const"} & set(names)):
                names["pattern"] = _NO_NUL_PATTERN
        for key, value in item.items():
            if key in ("properties", "$defs"):
                stack.extend(value.values())
            elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems"):
                stack.append(value)


def _declare_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Make every operation of an OpenAPI document list the problem responses it can give."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components, seen = schema["components"]["schemas"], set[str]()
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                for media in operation["requestBody"].get("content", {}).values():
                    _refuse_nul_in(media.get("schema"), components, seen)
    content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in ("get", "put", "post", "delete", "patch", "head", "options"):
                continue
            for param in operation.get("parameters", []):  # a NUL in the URL is refused (_RefuseNulInUrl)
                param_schema = param.get("schema", {})
                if param.get("in") in ("path", "query") and param_schema.get("type") == "string":
                    param_schema.setdefault("pattern", _NO_NUL_PATTERN)
            responses = operation.setdefault("responses", {})
            codes = {**_EVERY, **(_WITH_BODY if method in ("put", "post", "delete", "patch") else {})}
            for code, description in codes.items():
                # FastAPI's own 422 says HTTPValidationError as application/json; the handler below answers a problem.
                if str(code) not in responses or code == 422:
                    responses[str(code)] = {"description": description, "content": content}
    return schema


def install_problem_handlers(app: FastAPI) -> None:
    """Register handlers so that every error leaves as a problem document (and a NUL in the URL is one).

    The OpenAPI document lists those problem responses on every operation (:func:`_declare_problems`).
    """
    app.add_middleware(_RefuseNulInUrl)
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _declare_problems(build_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to change the document

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

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        # A document nested deeper than the parsers' own caps reached code that walks it recursively:
        # that is bad input (too deep), not a server error.
        log.warning("input nested too deeply on %s %s: %s", request.method, request.url.path, exc)
        return problem(422, "Invalid input", "the request body nests lists/objects too deeply to be read",
                       request.url.path, [{"field": "body", "message": "nests lists/objects too deeply",
                                           "location": "body", "expected": "a document nested at most 64 levels"}])

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "an unexpected error occurred; it was logged on the server",
                       request.url.path)
