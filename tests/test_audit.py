"""The hash-chained audit log: pure chain rules, and tampering with real database rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.cli.main import app as cli_app
from ringfence.config import Settings
from ringfence.domain.audit import GENESIS, KEYED_ACTION, AuditEntry, entry_digest, verify_chain
from ringfence.errors import InputError, UnavailableError
from ringfence.services import audit
from tests.conftest import FakeClock


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


def test_cli_verify_exits_nonzero_on_tampering(db: Database, db_url: str, tmp_path: Path) -> None:
    """`ringfence audit verify --local` exits 0 on an intact log and 1 naming the entry after tampering."""
    _fill(db, 4)
    cmd = [sys.executable, "-m", "ringfence.cli", "audit", "verify", "--local", "--database-url", db_url]
    env = {**os.environ, "RINGFENCE_DATA_DIR": str(tmp_path)}  # no audit key there: an unkeyed log
    env.pop("RINGFENCE_AUDIT_KEY", None)
    ok = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "intact" in ok.stdout
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"))
    bad = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    assert bad.returncode == 1
    assert "entry 2" in bad.stderr


# --- the keyed chain and signed checkpoints (issue 14, defect 5) --------------------------------

KEY = b"k" * 32


@pytest.fixture
def keyed(db: Database, clock: FakeClock) -> Iterator[Database]:
    """3 entries written before keys existed, then the switch-over and 4 keyed entries."""
    _fill(db, 3)
    audit.use_audit_key(db, KEY, clock=clock)
    _fill(db, 4)
    yield db
    db.audit_key = None


def _settings(db: Database, tmp_path: Path) -> Settings:
    return Settings(database_url=db.url, data_dir=tmp_path)


def _entries(db: Database) -> list[AuditEntry]:
    with db.transaction() as conn:
        return list(audit_store.iter_entries(conn))


def _store(db: Database, entries: list[AuditEntry]) -> None:
    """Write entries back as a database administrator would: rows and head, straight SQL, no key."""
    with db.engine.begin() as conn:
        for e in entries:
            conn.execute(text("DELETE FROM audit_log WHERE seq = :s"), {"s": e.seq})
            conn.execute(text("INSERT INTO audit_log (seq, at, actor, action, target, source, reason, details, "
                              "prev_hash, hash) VALUES (:seq, :at, :actor, :action, :target, :source, :reason, "
                              ":details, :prev, :hash)"),
                         {"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "target": e.target,
                          "source": e.source, "reason": e.reason, "details": json.dumps(dict(e.details)),
                          "prev": e.prev_hash, "hash": e.hash})
        last = max(entries, key=lambda e: e.seq)
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1"), {"s": last.seq, "h": last.hash})


def _edit_and_recompute(db: Database) -> None:
    """Change entry 2 and recompute every later hash and link (with the only function a DBA has: SHA-256)."""
    entries = _entries(db)
    prev = entries[0].hash
    out = []
    for original in entries[1:]:
        e = replace(original, reason="nothing happened" if original.seq == 2 else original.reason, prev_hash=prev)
        e = replace(e, hash=entry_digest(e))
        out.append(e)
        prev = e.hash
    _store(db, out)


def _forged_append(db: Database) -> None:
    last = _entries(db)[-1]
    forged = AuditEntry(seq=last.seq + 1, at=last.at + timedelta(minutes=1), actor="alice", action="rollout.approve",
                        target="rollout/9", prev_hash=last.hash)
    _store(db, [replace(forged, hash=entry_digest(forged))])


def _truncate_tail(db: Database) -> None:
    entries = _entries(db)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq > :s"), {"s": entries[-3].seq})
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1"),
                     {"s": entries[-3].seq, "h": entries[-3].hash})


def _naive_edit(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 6"))


REWRITES: list[tuple[str, Callable[[Database], None], set[str]]] = [
    ("edit and recompute later hashes", _edit_and_recompute, {"changed", "appended"}),
    ("forged append", _forged_append, {"appended"}),
    ("truncated tail", _truncate_tail, {"deleted"}),
    ("naive edit", _naive_edit, {"changed"}),
]


@pytest.mark.parametrize(("name", "rewrite", "kinds"), REWRITES, ids=[r[0] for r in REWRITES])
def test_each_rewrite_is_detected_against_a_checkpoint(keyed: Database, tmp_path: Path, clock: FakeClock,
                                                       name: str, rewrite: Callable[[Database], None],
                                                       kinds: set[str]) -> None:
    settings = _settings(keyed, tmp_path)
    path, doc = audit.write_checkpoint(keyed, settings, clock=clock)
    assert doc["seq"] == 9 and doc["keyed_from"] == 4 and path.is_file()
    _fill(keyed, 1)  # entries after the checkpoint are fine
    checkpoint = audit.read_checkpoint(path, settings)
    assert audit.verify(keyed, checkpoint=checkpoint).ok
    rewrite(keyed)
    result = audit.verify(keyed, checkpoint=checkpoint)
    assert result.broken is not None, name
    assert result.broken.kind in kinds, result.broken.message


def test_a_truncated_tail_passes_without_a_checkpoint_and_fails_with_one(keyed: Database, tmp_path: Path,
                                                                         clock: FakeClock) -> None:
    """What the checkpoint adds: cutting the tail and moving the head leaves a consistent keyed chain."""
    settings = _settings(keyed, tmp_path)
    path, _ = audit.write_checkpoint(keyed, settings, clock=clock)
    _truncate_tail(keyed)
    assert audit.verify(keyed).ok
    broken = audit.verify(keyed, checkpoint=audit.read_checkpoint(path, settings)).broken
    assert broken is not None and broken.kind == "deleted" and "8-9" in broken.message


def test_old_entries_keep_verifying_and_keyed_ones_need_the_key(keyed: Database) -> None:
    entries = _entries(keyed)
    assert [e.action for e in entries[3:5]] == [KEYED_ACTION, "audit.key.configured"]
    assert entries[3].details["unkeyed_entries"] == 3
    assert entry_digest(entries[0]) == entries[0].hash and entry_digest(entries[5], KEY) == entries[5].hash
    assert audit.verify(keyed).ok and audit.verify(keyed).keyed
    keyed.audit_key = None
    unkeyed = audit.verify(keyed).broken
    assert unkeyed is not None and unkeyed.kind == "unkeyed" and "audit key" in unkeyed.message
    wrong = audit.verify(keyed, key=b"w" * 32).broken
    assert wrong is not None and wrong.seq == 4


def test_rewriting_the_whole_log_unkeyed_is_detected_with_the_key(keyed: Database) -> None:
    """Drop the switch-over and recompute everything as an unkeyed log: the key says a keyed log was expected."""
    entries = [e for e in _entries(keyed) if e.seq < 4]
    with keyed.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq >= 4"))
        conn.execute(text("UPDATE audit_head SET seq = 3, hash = :h WHERE id = 1"), {"h": entries[-1].hash})
    broken = audit.verify(keyed).broken
    assert broken is not None and broken.kind == "unkeyed"


def test_appends_without_the_key_or_with_another_are_refused(keyed: Database) -> None:
    keyed.audit_key = None
    with pytest.raises(UnavailableError, match="no audit key"):
        _fill(keyed, 1)
    keyed.audit_key = b"w" * 32
    with pytest.raises(UnavailableError, match="not the one the chain is keyed with"):
        _fill(keyed, 1)
    keyed.audit_key = KEY
    assert audit.verify(keyed).ok  # nothing was written by the refused appends


def test_a_checkpoint_that_was_changed_or_signed_by_another_key_is_refused(keyed: Database, tmp_path: Path,
                                                                           clock: FakeClock) -> None:
    settings = _settings(keyed, tmp_path)
    path, doc = audit.write_checkpoint(keyed, settings, clock=clock)
    path.write_text(json.dumps({**doc, "seq": 3}))
    with pytest.raises(InputError, match="signature does not verify"):
        audit.read_checkpoint(path, settings)
    other = _settings(keyed, tmp_path / "other")
    path2, _ = audit.write_checkpoint(keyed, other, clock=clock)
    with pytest.raises(InputError, match="signature does not verify"):
        audit.read_checkpoint(path2, settings)


def test_no_checkpoint_signs_a_broken_chain(keyed: Database, tmp_path: Path, clock: FakeClock) -> None:
    _naive_edit(keyed)
    with pytest.raises(InputError, match="broken at entry 6"):
        audit.write_checkpoint(keyed, _settings(keyed, tmp_path), clock=clock)


def test_cli_checkpoint_and_verify_against_it(db: Database, db_url: str, tmp_path: Path) -> None:
    """`ringfence audit checkpoint` then `audit verify --against`: 0 while intact, 1 once the tail is cut."""
    env = {"RINGFENCE_DATA_DIR": str(tmp_path), "RINGFENCE_AUDIT_KEY": KEY.decode()}
    audit.use_audit_key(db, KEY, clock=FakeClock())
    _fill(db, 3)
    runner = CliRunner()
    made = runner.invoke(cli_app, ["audit", "checkpoint", "--database-url", db_url, "--json"], env=env)
    assert made.exit_code == 0, made.output
    path = json.loads(made.stdout)["path"]
    assert Path(path).parent == tmp_path / "audit-checkpoints" and (tmp_path / "audit-checkpoint.pub").is_file()
    verify = ["audit", "verify", "--against", path, "--database-url", db_url]
    ok = runner.invoke(cli_app, verify, env=env)
    assert ok.exit_code == 0, ok.output
    assert "nothing up to checkpoint 5" in ok.stdout
    _truncate_tail(db)
    bad = runner.invoke(cli_app, verify, env=env)
    assert bad.exit_code == 1 and "deleted" in bad.output
    db.audit_key = None
