"""Signed audit checkpoints outside the database: an API route, every cohort manifest of the signed channel,
and ``audit verify --against URL`` (issue 14, defect 5).

A database administrator can rewrite rows and the head together; the checkpoint's copies (in the agents'
channel metadata, at a mirror, in a file) are what such a rewrite cannot reach.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from ringfence.adapters.api.app import create_app
from ringfence.adapters.db.engine import Database
from ringfence.config import Settings
from ringfence.services import audit
from ringfence.services.tokens import ensure_admin_token
from tests.api_support import _problem
from tests.servers import Server
from tests.test_channel_support import AppFetcher, desired_of, make_channel, now_clock, tuf_client

KEY = "k" * 32


@pytest.fixture
def app_client(db: Database, db_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], Settings]]:
    clock = now_clock()  # python-tuf checks expiry on the wall clock
    settings = Settings(database_url=db_url, data_dir=tmp_path, reconcile_interval_seconds=0, audit_key=KEY)
    token = ensure_admin_token(db, clock=clock)
    assert token is not None
    make_channel(tmp_path, clock)
    with TestClient(create_app(settings, db=db, clock=clock)) as client:
        yield client, {"Authorization": f"Bearer {token}"}, settings
    db.audit_key = None  # the key lives on the Database (issue 12 step 6)


def _cut_tail(db: Database, keep: int) -> None:
    """What a database administrator can do: delete the newest entries and move the head back (straight SQL)."""
    with db.engine.begin() as conn:
        row = conn.execute(text("SELECT seq, hash FROM audit_log WHERE seq = :s"), {"s": keep}).one()
        conn.execute(text("DELETE FROM audit_log WHERE seq > :s"), {"s": keep})
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1"), {"s": row[0], "h": row[1]})


def test_the_latest_checkpoint_is_served_and_published_in_every_cohort_manifest(
        app_client: tuple[TestClient, dict[str, str], Settings], db: Database, tmp_path: Path) -> None:
    client, auth, settings = app_client
    _problem(client.get("/v1/audit/checkpoint", headers=auth), 404)
    for name in ("a", "b", "c"):  # audited actions
        assert client.post("/v1/tokens", json={"name": name, "role": "viewer"}, headers=auth).status_code == 201
    made = client.post("/v1/audit/checkpoint", headers=auth)
    assert made.status_code == 201, made.text
    doc = made.json()
    assert doc["format"] == "ringfence-audit-checkpoint/1" and doc["seq"] >= 3 and doc["signature"]
    assert client.get("/v1/audit/checkpoint", headers=auth).json() == doc
    assert client.post("/v1/channel/publish", headers=auth).status_code == 200

    _, manifest = desired_of(tuf_client(tmp_path, tmp_path / "agent", fetcher=AppFetcher(client)), "h00001")
    assert manifest["audit_checkpoint"] == doc  # an agent holds the signed head, fetched through TUF
    held = audit.parse_checkpoint(json.dumps(manifest), "cohort manifest", settings)
    assert held.seq == doc["seq"] and audit.verify(db, checkpoint=held).ok

    _cut_tail(db, doc["seq"] - 2)
    assert audit.verify(db).ok  # the cut chain is consistent by itself ...
    broken = audit.verify(db, checkpoint=held).broken
    assert broken is not None and broken.kind == "deleted"  # ... but not with the copy the agent holds


def test_a_checkpoint_changed_in_transit_is_refused(app_client: tuple[TestClient, dict[str, str], Settings]) -> None:
    client, auth, settings = app_client
    doc = client.post("/v1/audit/checkpoint", headers=auth).json()
    forged = {**doc, "seq": doc["seq"] - 1}
    with pytest.raises(Exception, match="signature does not verify"):
        audit.parse_checkpoint(json.dumps(forged), "mirror", settings)


@pytest.mark.extended  # a live server and four CLI processes (~60 s on a loaded CI machine): `make test-slow`
def test_cli_verifies_against_the_checkpoint_url(tmp_path: Path, db_url: str, db: Database) -> None:
    """`audit checkpoint`, then `audit verify --against SERVER/v1/audit/checkpoint`: 0, and 1 once the tail is cut."""
    (tmp_path / "var").mkdir()
    server = Server(tmp_path, db_url)
    try:
        server.cli("token", "create", "--name", "a", "--role", "viewer")  # entries: admin token, this one, ...
        server.cli("audit", "checkpoint")
        url = f"{server.url}/v1/audit/checkpoint"
        ok = json.loads(server.cli("audit", "verify", "--against", url, "--json").stdout)
        assert ok["ok"] and ok["checkpoint_seq"] >= 2, ok
        _cut_tail(db, ok["checkpoint_seq"] - 1)
        bad = server.cli("audit", "verify", "--against", url, check=False)
        assert bad.returncode == 1 and "deleted" in bad.stderr + bad.stdout
    finally:
        server.stop()
