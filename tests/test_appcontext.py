"""The application context: one per app, nothing shared between two (artifact store, audit key), the advisory index
kept until an import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ringfence.adapters.api.app import create_app
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.appcontext import AppContext
from ringfence.config import Settings
from ringfence.errors import UnavailableError
from ringfence.services import audit, supply_chain
from ringfence.services.context import Actor
from tests.api_support import Api
from tests.conftest import FakeClock
from tests.supply_support import release


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


def test_the_audit_key_travels_with_the_database_not_the_process(db: Database, db_url: str, clock: FakeClock,
                                                                 operator: Actor) -> None:
    """Two Database objects on one database: only the one given the key writes keyed entries; the other is refused."""
    keyed = Database(db_url)
    try:
        audit.use_audit_key(keyed, b"k" * 32, clock=clock)
        assert keyed.audit_key == b"k" * 32 and db.audit_key is None
        with keyed.transaction() as conn:
            audit_store.append(conn, at=clock(), actor="alice", action="test.keyed", target="t")
        with pytest.raises(UnavailableError, match="no audit key"), db.transaction() as conn:
            audit_store.append(conn, at=clock(), actor="bob", action="test.unkeyed", target="t")
        assert audit.verify(keyed).ok and audit.verify(keyed).keyed
    finally:
        keyed.dispose()


def test_each_app_starts_rollouts_with_its_own_artifact_store(api: Api, db: Database, db_url: str, clock: FakeClock,
                                                              tmp_path: Path) -> None:
    """The content contract reads the content from the starting app's store, even after another app was built.

    (The artifact-store registry this replaced was keyed by database URL: the app built last won, so the
    first app's start read the second one's empty store and the content gate blocked it.)
    """
    create_app(Settings(database_url=db_url, data_dir=tmp_path / "other", reconcile_interval_seconds=0), db=db,
               clock=clock)
    hosts = [{"id": f"w{i}", "hostname": f"w{i}", "tenant": "acme", "os_family": "windows",
              "agents": [{"vendor": "CrowdStrike", "product": "falcon-sensor", "version": "7.10",
                          "kernel_mode": True}]} for i in range(2)]
    assert api.call("POST", "/v1/inventory", role="operator", json={"hosts": hosts}).status_code == 200
    schema = {"type": "object", "properties": {"field_1": {"type": "string"}}, "additionalProperties": False}
    assert release(api, "falcon-sensor", "7.10", kind="agent",
                   content_schema=json.dumps(schema).encode()).status_code == 201
    assert release(api, "channel-file", "292", kind="content", for_agent="falcon-sensor",
                   files=[("C-292.json", json.dumps({"field_1": "x"}).encode())]).status_code == 201
    started = api.call("POST", "/v1/rollouts", role="operator", json={"release": "channel-file@292", "start": True})
    assert started.status_code == 201, started.text
    content = next(g for g in started.json()["gates"] if g["gate"] == "content")
    assert content["verdict"] == "passed", content
