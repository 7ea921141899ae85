"""A small HTTP client for the ringfence API, used by the CLI.

Problem documents from the server come back as the matching
:class:`~ringfence.errors.RingfenceError`, with every field issue, so the CLI
prints the server's words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from ringfence.errors import (
    AuthenticationError,
    ConflictError,
    FieldIssue,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    RingfenceError,
    UnavailableError,
)

__all__ = ["ApiClient", "client_from_options"]

_BY_STATUS: dict[int, type[RingfenceError]] = {401: AuthenticationError, 403: PermissionDeniedError,
                                               404: NotFoundError, 409: ConflictError, 503: UnavailableError}


class ApiClient:
    """Calls the API with a bearer token; raises RingfenceError for problems."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 600.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request; return the decoded JSON body."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise UnavailableError(f"cannot reach the ringfence server at {self.base_url} ({e}); start it with "
                                   "`ringfence serve` (or `make run`) or set RINGFENCE_SERVER_URL") from e
        if response.is_success:
            return response.json() if response.content else None
        raise _error(response)

    def get_text(self, path: str, **params: Any) -> str:
        """GET a text body (CSV, HTML) with query parameters."""
        try:
            response = self._http.get(path, params={k: v for k, v in params.items() if v is not None})
        except httpx.TransportError as e:
            raise UnavailableError(f"cannot reach the ringfence server at {self.base_url} ({e})") from e
        if response.is_success:
            return response.text
        raise _error(response)

    def get(self, path: str, **params: Any) -> Any:
        """GET with query parameters (None values are left out)."""
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, json: Any = None, headers: dict[str, str] | None = None) -> Any:
        """POST a JSON body."""
        return self.request("POST", path, json=json, headers=headers)

    def upload(self, path: str, files: list[Path], reason: str = "") -> Any:
        """POST files as multipart/form-data (field ``files``)."""
        handles = [f.open("rb") for f in files]
        try:
            parts = [("files", (f.name, h, "application/octet-stream")) for f, h in zip(files, handles, strict=True)]
            return self.request("POST", path, files=parts, data={"reason": reason})
        finally:
            for h in handles:
                h.close()


def _error(response: httpx.Response) -> RingfenceError:
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:500]}
    detail = str(body.get("detail") or body.get("title") or f"HTTP {response.status_code}")
    if response.status_code in (400, 413, 415, 422):
        issues = [FieldIssue(field=str(e.get("field", "")), message=str(e.get("message", "")),
                             location=str(e.get("location", "")), expected=str(e.get("expected", "")))
                  for e in body.get("errors", []) if isinstance(e, dict)]
        err = InputError("", issues)
        err.message = err.headline = detail
        if issues:  # the server's detail repeats the issues; keep its first sentence as the headline
            err.headline = detail.split(": ", 1)[0]
        err.args = (detail,)
        return err
    cls = _BY_STATUS.get(response.status_code, RingfenceError)
    return cls(detail)


def client_from_options(config: Path | None, server: str | None, token: str | None) -> ApiClient:
    """The client for the CLI's ``--config``/``--server``/``--token`` (or their RINGFENCE_* variables)."""
    from ringfence.config import load_settings  # noqa: PLC0415 - settings are built at the entry point

    settings = load_settings(config, server_url=server, token=token)
    if not settings.token:
        raise InputError.single("token", "is not set",
                                expected="--token or RINGFENCE_TOKEN (the admin token is printed on the server's "
                                         "first start; create more with `ringfence token create`)")
    return ApiClient(settings.server_url, settings.token)
