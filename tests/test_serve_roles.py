"""``ringfence serve --role`` and ``--workers``: what each role answers, and what is refused before start."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ringfence.adapters.api.app import create_app
from ringfence.adapters.api.asgi import check
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.leader import Leadership
from ringfence.config import Settings, load_settings
from ringfence.errors import InputError

CASES = [  # (role, path, expected status)
    ("reconciler", "/readyz", 200),
    ("reconciler", "/v1/whoami", 404),
    ("reconciler", "/tuf/metadata/timestamp.json", 404),
    ("ingest", "/readyz", 200),
    ("ingest", "/v1/health", 422),  # served (no body), not refused by the role
    ("ingest", "/v1/rollouts", 404),
    ("ingest", "/v1/enrolment-tokens", 404),  # an operator route, though it starts like /v1/enrol
    ("api", "/v1/whoami", 401),
    ("all", "/v1/whoami", 401),
]


@pytest.mark.parametrize("role", sorted({c[0] for c in CASES}))
def test_role_serves_only_its_paths(db: Database, db_url: str, tmp_path: Path, role: str) -> None:
    settings = Settings(database_url=db_url, data_dir=tmp_path, reconcile_interval_seconds=0, role=role)
    with TestClient(create_app(settings, db=db)) as client:
        for _, path, status in (c for c in CASES if c[0] == role):
            answer = client.post(path) if path == "/v1/health" else client.get(path)
            assert answer.status_code == status, (path, answer.text)
            if status == 404:
                assert f"--role {role}" in answer.json()["detail"]


def test_bad_role_and_workers_are_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(InputError) as bad:
        load_settings(role="leader")
    assert bad.value.issues[0].field == "role"
    sqlite = Settings(database_url=f"sqlite:///{tmp_path}/x.db", workers=2)
    with pytest.raises(InputError) as refused:
        check(sqlite, demo=False)
    assert refused.value.issues[0].field == "workers" and "postgresql" in refused.value.issues[0].expected
    check(Settings(database_url="postgresql+psycopg://u@127.0.0.1/db", workers=2), demo=False)


def test_leadership_roles(db: Database) -> None:
    """Roles api/ingest never lead; one competitor leads; on PostgreSQL a second one waits until release."""
    assert Leadership(db, compete=False).try_lead() is False
    first, second = Leadership(db), Leadership(db)
    try:
        assert first.try_lead() is True
        assert first.try_lead() is True  # still ours
        if not db.is_sqlite:
            assert second.try_lead() is False
            first.release()
            assert second.try_lead() is True
            assert first.try_lead() is False
    finally:
        first.release()
        second.release()
