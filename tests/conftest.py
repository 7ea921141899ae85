"""Shared fixtures.

``db`` is parametrised: every database-backed test runs on SQLite and, when
``RINGFENCE_TEST_DATABASE_URL`` is set, on that PostgreSQL too.  With the
variable set and PostgreSQL unreachable the tests *fail*; they never skip.
Each pytest session gets its own PostgreSQL schema, so concurrent runs on one
server do not collide; each test starts from empty tables.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ringfence.adapters.db.engine import Database, normalise_url
from ringfence.adapters.db.tables import Base
from ringfence.domain.access import Role
from ringfence.services.context import Actor

PG_ENV = "RINGFENCE_TEST_DATABASE_URL"
#: ../shared/data beside the repository (read-only public test data; see its README).
SHARED_DATA = Path(os.environ.get("RINGFENCE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get(PG_ENV) else [])


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh schema on the test PostgreSQL, migrated to head; dropped at the end."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.fail(f"{PG_ENV} is not set")
    base = normalise_url(base)
    schema = f"rf_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as e:
        pytest.fail(f"{PG_ENV} is set but PostgreSQL cannot be used: {e}", pytrace=False)
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"
    db = Database(url)
    db.upgrade()
    db.dispose()
    yield url
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _reset_pg(db: Database) -> None:
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        conn.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64})


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database URL for each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ringfence.db'}"
        fresh = Database(url)
        fresh.upgrade()
        fresh.dispose()
        return url
    url: str = request.getfixturevalue("pg_url")
    db = Database(url)
    _reset_pg(db)
    db.dispose()
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A Database on an empty, migrated schema (SQLite and PostgreSQL)."""
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    """A hand-moved clock at 2026-11-24 09:00 UTC."""
    return FakeClock()


@pytest.fixture
def admin() -> Actor:
    """An admin actor for service-level tests."""
    return Actor(name="test-admin", role=Role.ADMIN, source="127.0.0.1")


@pytest.fixture
def operator() -> Actor:
    """An operator actor."""
    return Actor(name="test-operator", role=Role.OPERATOR, source="127.0.0.1")


@pytest.fixture
def viewer() -> Actor:
    """A viewer actor."""
    return Actor(name="test-viewer", role=Role.VIEWER, source="127.0.0.1")


from tests.api_support import api  # noqa: E402, F401 - the `api` fixture for every API test
