"""The ``api`` fixture: a TestClient on the app with a token per role (shared by the API tests via conftest)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ringfence.adapters.api.app import create_app
from ringfence.adapters.db.engine import Database
from ringfence.config import Settings
from ringfence.domain.access import Role
from ringfence.services.context import Actor
from ringfence.services.tokens import create_token, ensure_admin_token
from tests.conftest import FakeClock

__all__ = ["Api", "_problem", "api"]


class Api:
    """A TestClient plus tokens for each role."""

    def __init__(self, client: TestClient, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens

    def call(self, method: str, path: str, role: str = "admin", **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if role:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return self.client.request(method, path, headers=headers, **kwargs)


@pytest.fixture
def api(db: Database, db_url: str, clock: FakeClock, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(database_url=db_url, data_dir=tmp_path, reconcile_interval_seconds=0)
    admin_token = ensure_admin_token(db, clock=clock)
    assert admin_token is not None
    tokens = {"admin": admin_token}
    boot = Actor(name="admin", role=Role.ADMIN)
    for role in ("viewer", "operator", "approver"):
        tokens[role], _ = create_token(db, name=f"{role}-1", role=role, actor=boot, clock=clock)
    app = create_app(settings, db=db, clock=clock)
    with TestClient(app, client=("127.0.0.9", 5000)) as client:
        yield Api(client, tokens)


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("urn:ringfence:problem:") and body["title"]
    return body


