"""Gate v2 counts only what the database holds in full (services/rollouts.tick's ``complete_through``).

A report stamps its server arrival time and waits in that server's buffer until the next flush; the gate
counts events in ``(since, now]`` and the next tick starts at this tick's end.  Counting up to ``now`` lost
every crash that arrived before a tick but was written after it (another server's buffer, or a report that
came between the reconciler's flush and the tick): the 20-agent end-to-end test's bad release was never
halted because its canaries' crash reports kept falling into that gap.
"""

from __future__ import annotations

from pathlib import Path

from ringfence.adapters.api.reconciler import SETTLE
from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.services import rollouts
from ringfence.services.health import HealthIngest, HealthReport
from tests.conftest import FakeClock
from tests.rollout_harness import Fleet, make_hosts, start


def _crashes(db: Database, rid: str) -> int:
    ledger = rollouts.get_rollout(db, rid).status.gate_ledger
    return sum(row.treated_events for row in ledger if row.signal == "crashed")


def test_a_crash_written_after_a_tick_that_it_arrived_before_is_counted_by_the_next(
        db: Database, clock: FakeClock, tmp_path: Path) -> None:
    fleet = Fleet(db, clock, make_hosts(60), ArtifactStore(tmp_path / "artifacts"))
    rid = start(fleet, fleet.release("291"))
    fleet.run(rid, minutes=3)  # healthy heartbeats through the leader's own ingest: the canaries are exposed
    exposed = sorted(fleet.exposed(rid))
    assert exposed and _crashes(db, rid) == 0
    other = HealthIngest(db, clock, max_per_minute=10_000)  # a second server's buffer

    def leader_pass() -> None:  # Reconciler.run_once: flush its own buffer, tick up to what is complete
        for h in fleet.hosts:
            if h.id not in exposed:
                fleet.ingest.submit(h.id, HealthReport(host_id=h.id, at=clock(), versions={fleet.product: "290"},
                                                       committed=(fleet.product,)))
        fleet.ingest.flush()
        assert fleet.ingest.complete_through is not None
        rollouts.tick_all(db, clock=clock, complete_through=fleet.ingest.complete_through - SETTLE)

    clock.advance(seconds=10)
    for h in exposed:  # the canaries' crash reports reach the other server
        other.submit(h, HealthReport(host_id=h, at=clock(), events=(("crashed", rid, clock()),)))
    clock.advance(seconds=1)
    leader_pass()  # the leader ticks before the other server has written them
    clock.advance(seconds=1)
    assert other.flush() == len(exposed)  # written now, after that tick
    clock.advance(seconds=30)
    leader_pass()
    assert _crashes(db, rid) == len(exposed)


def test_the_flush_mark_is_later_than_every_arrival_it_wrote(db: Database, clock: FakeClock) -> None:
    ingest = HealthIngest(db, clock)
    assert ingest.complete_through is None
    assert ingest.flush() == 0 and ingest.complete_through == clock()
    clock.advance(seconds=5)
    assert ingest.complete_through < clock()
