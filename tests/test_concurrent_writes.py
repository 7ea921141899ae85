"""Requests that write the same key at once: the loser gets 409 (retry), never a 500 (issue 14, item 10).

schemathesis once saw one 500 in about 19,000 requests that a same-seed rerun did not reproduce.
``PUT /v1/gate-policy`` stored the policy as select, delete, insert of row 1: on PostgreSQL (READ COMMITTED)
two PUTs at once both inserted row 1 and the second failed on the primary key, a 500 (52 of 80 in a
four-thread loop).  It is an upsert now, and any unique violation left in a check-then-insert answers 409.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import supply_chain as supply_store
from ringfence.adapters.db.tables import AuditHeadRow, GatePolicyRow
from ringfence.domain.access import Role
from ringfence.errors import ConflictError
from ringfence.services import release_gates
from ringfence.services.context import Actor
from tests.conftest import FakeClock

POLICY = (Path(__file__).resolve().parents[1] / "examples/release-gates/default.yaml").read_text()
ADMIN = Actor(name="admin", role=Role.ADMIN)


def _at_once(threads: int, work: object) -> list[BaseException]:
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            work()  # type: ignore[operator]
        except BaseException as e:
            errors.append(e)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    return errors


def test_gate_policies_applied_at_once_all_succeed_and_count_their_versions(db: Database, clock: FakeClock) -> None:
    for _ in range(5):
        with db.transaction() as conn:
            conn.execute(delete(GatePolicyRow))  # the race is widest on an empty table: both insert
        errors = _at_once(4, lambda: release_gates.apply_gate_policy(db, POLICY, actor=ADMIN, clock=clock))
        assert errors == [], errors
        with db.transaction() as conn:  # every PUT counted: versions 1 to 4
            assert conn.execute(select(GatePolicyRow.version)).scalar_one() == 4


def test_advisory_generation_bumped_at_once_from_an_emptied_table_counts_every_bump(db: Database,
                                                                                    clock: FakeClock) -> None:
    from ringfence.adapters.db.tables import VulnGenerationRow

    for _ in range(5):
        with db.transaction() as conn:
            conn.execute(delete(VulnGenerationRow))

        def bump() -> None:
            with db.transaction() as conn:
                supply_store.bump_generation(conn, clock())

        assert _at_once(4, bump) == []
        with db.transaction() as conn:
            first = supply_store.generation(conn)
            supply_store.bump_generation(conn, clock())
            assert supply_store.generation(conn) == first + 1


def test_a_unique_violation_is_a_conflict_to_retry_not_a_server_error(db: Database) -> None:
    with pytest.raises(ConflictError, match="reload and retry"), db.transaction() as conn:
        conn.execute(insert(AuditHeadRow).values(id=1, seq=0, hash="0" * 64))  # row 1 exists (the chain's head)
