"""The application context: one per app, nothing shared between two, the advisory index kept until an import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ringfence.adapters.db.engine import Database
from ringfence.appcontext import AppContext
from ringfence.config import Settings
from ringfence.services import supply_chain
from ringfence.services.context import Actor
from tests.conftest import FakeClock


def _osv(vuln_id: str, name: str) -> tuple[str, bytes]:
    record = {"schema_version": "1.6.0", "id": vuln_id, "modified": "2024-07-19T04:09:00Z",
              "affected": [{"package": {"ecosystem": "PyPI", "name": name},
                            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}]}]}
    return f"{vuln_id}.json", json.dumps(record).encode()


def test_the_advisory_index_is_kept_until_an_import_changes_it(db: Database, tmp_path: Path, clock: FakeClock,
                                                                operator: Actor) -> None:
    ctx = AppContext.build(Settings(data_dir=tmp_path), db=db, clock=clock)
    first = ctx.advisories.index()
    assert ctx.advisories.index() is first  # nothing imported: the same index, not re-read
    supply_chain.import_vulns(db, [_osv("PYSEC-2024-1", "requests")], actor=operator, clock=clock)
    second = ctx.advisories.index()
    assert second is not first and len(second) == len(first) + 1
    assert supply_chain.advisory_index(db, ctx.advisories) is second


def test_two_contexts_share_nothing(db: Database, tmp_path: Path, clock: FakeClock) -> None:
    """Two apps in one process (or one without a context at all) each build their own index and artifact store."""
    a = AppContext.build(Settings(data_dir=tmp_path / "a"), db=db, clock=clock)
    b = AppContext.build(Settings(data_dir=tmp_path / "b"), db=db, clock=clock)
    assert a.advisories.index() is not b.advisories.index()
    assert a.artifacts.root != b.artifacts.root
    assert supply_chain.advisory_index(db) is not a.advisories.index()  # no hidden process-wide cache


def test_a_cache_answers_only_for_its_own_database(db: Database, tmp_path: Path, clock: FakeClock) -> None:
    ctx = AppContext.build(Settings(data_dir=tmp_path), db=db, clock=clock)
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        with pytest.raises(ValueError, match="advisory cache"):
            supply_chain.advisory_index(other, ctx.advisories)
    finally:
        other.dispose()
