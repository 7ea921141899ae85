"""The hash-chained audit log: pure chain rules, and tampering with real database rows."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.domain.audit import GENESIS, AuditEntry, entry_digest, verify_chain
from ringfence.services import audit


def _chain(n: int) -> list[AuditEntry]:
    entries = []
    prev = GENESIS
    t0 = datetime(2026, 11, 24, 9, tzinfo=UTC)
    for i in range(1, n + 1):
        e = AuditEntry(seq=i, at=t0 + timedelta(seconds=i), actor="alice", action="x.do", target=f"t/{i}",
                       source="127.0.0.1", reason="because", details={"n": i}, prev_hash=prev)
        e = replace(e, hash=entry_digest(e))
        entries.append(e)
        prev = e.hash
    return entries


def _rehash(e: AuditEntry) -> AuditEntry:
    return replace(e, hash=entry_digest(e))


CHAIN = _chain(6)
TAMPER_CASES = [
    # (name, entries, head, expected (seq, kind) or None)
    ("intact", CHAIN, (6, CHAIN[-1].hash), None),
    ("reason changed", [*CHAIN[:2], replace(CHAIN[2], reason="edited"), *CHAIN[3:]], (6, CHAIN[-1].hash), (3, "changed")),
    ("changed and rehashed", [*CHAIN[:3], _rehash(replace(CHAIN[3], actor="mallory")), *CHAIN[4:]],
     (6, CHAIN[-1].hash), (5, "changed")),
    ("middle deleted", [*CHAIN[:2], *CHAIN[3:]], (6, CHAIN[-1].hash), (3, "deleted")),
    ("tail deleted", CHAIN[:4], (6, CHAIN[-1].hash), (5, "deleted")),
    ("two swapped and renumbered", [*CHAIN[:1], _rehash(replace(CHAIN[2], seq=2)), _rehash(replace(CHAIN[1], seq=3)),
                                    *CHAIN[3:]], (6, CHAIN[-1].hash), (2, "changed")),
    ("link points back", [*CHAIN[:3], _rehash(replace(CHAIN[3], prev_hash=CHAIN[1].hash)), *CHAIN[4:]],
     (6, CHAIN[-1].hash), (4, "reordered")),
    ("first deleted", CHAIN[1:], (6, CHAIN[-1].hash), (1, "deleted")),
]


@pytest.mark.parametrize(("name", "entries", "head", "expected"), TAMPER_CASES, ids=[c[0] for c in TAMPER_CASES])
def test_verify_chain_cases(name: str, entries: list[AuditEntry], head: tuple[int, str],
                            expected: tuple[int, str] | None) -> None:
    """Each kind of tampering is reported at the entry where the chain breaks."""
    by_hash = {e.hash: e.seq for e in entries}
    _, broken = verify_chain(entries, head, by_hash.get)
    if expected is None:
        assert broken is None
    else:
        assert broken is not None, name
        assert (broken.seq, broken.kind) == expected, broken.message


def _fill(db: Database, n: int) -> None:
    t0 = datetime(2026, 11, 24, 9, 0, 0, 123456, tzinfo=UTC)
    for i in range(n):
        with db.transaction() as conn:
            audit_store.append(conn, at=t0 + timedelta(minutes=i), actor="alice", action="rollout.halt",
                               target=f"rollout/{i}", source="127.0.0.1", reason="bad release",
                               details={"wave": i, "hosts": [1, 2]})


def test_database_chain_round_trips(db: Database) -> None:
    """Entries read back from the database verify (timestamps and JSON survive the round trip)."""
    _fill(db, 5)
    result = audit.verify(db)
    assert result.ok, result.broken
    assert result.entries == 5


def test_tampered_row_is_named(db: Database) -> None:
    """A row changed directly in the database is named by verify."""
    _fill(db, 5)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 3"))
    result = audit.verify(db)
    assert result.broken is not None
    assert (result.broken.seq, result.broken.kind) == (3, "changed")


def test_deleted_row_is_named(db: Database) -> None:
    """A row deleted directly in the database is named by verify."""
    _fill(db, 5)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    result = audit.verify(db)
    assert result.broken is not None
    assert (result.broken.seq, result.broken.kind) == (2, "deleted")


def test_cli_verify_exits_nonzero_on_tampering(db: Database, db_url: str) -> None:
    """`ringfence audit verify --local` exits 0 on an intact log and 1 naming the entry after tampering."""
    _fill(db, 4)
    cmd = [sys.executable, "-m", "ringfence.cli", "audit", "verify", "--local", "--database-url", db_url]
    ok = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "intact" in ok.stdout
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"))
    bad = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "entry 2" in bad.stderr
