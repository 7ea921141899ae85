"""A small in-process fleet for rollout tests: real database, real services, a clock moved by hand.

Hosts "run" in Python: each tick they send heartbeats through the real
:class:`~ringfence.services.health.HealthIngest`; a host the release breaks
stops reporting (silent) or reports a crash, as configured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.domain.access import Role
from ringfence.domain.model import Host, HostId, Inventory, OsFamily, TenantId
from ringfence.services import inventory, rollouts
from ringfence.services.context import Actor
from ringfence.services.health import HealthIngest, HealthReport
from tests.conftest import FakeClock

OPERATOR = Actor(name="olga", role=Role.OPERATOR, source="127.0.0.1")
APPROVER = Actor(name="adam", role=Role.APPROVER, source="127.0.0.1")

ALWAYS_OPEN = """
name: test-fast
windows:
  - {days: mon-sun, start: "00:00", end: "24:00"}
freeze: {public_holidays: false}
max_data_age_minutes: 10
silence_grace_minutes: 5
gate: {min_treated_hosts: 3, min_control_hosts: 5, max_streams: 16}
waves:
  - {name: canary, fraction: 0.05, min_bake_minutes: 10, min_observed_hosts: 3, max_rate_per_minute: 2}
  - {name: rest, fraction: 1.0, min_bake_minutes: 10, min_observed_hosts: 3}
"""


def make_hosts(n: int, *, builds: tuple[str, ...] = ("22631",), tenant: str = "acme",
               prefix: str = "h") -> list[Host]:
    return [Host(id=HostId(f"{prefix}{i:05d}"), hostname=f"{prefix}{i}", tenant=TenantId(tenant),
                 os_family=OsFamily.WINDOWS, os_build=builds[i % len(builds)], hardware_model="Latitude 7440",
                 timezone="Europe/Berlin", country="DE") for i in range(n)]


@dataclass
class Fleet:
    db: Database
    clock: FakeClock
    hosts: list[Host]
    artifacts: ArtifactStore
    ingest: HealthIngest = field(init=False)
    broken: Callable[[Host], bool] = lambda _h: False
    mode: str = "silent"  # how a broken host fails: "silent" or "crash"
    down: set[str] = field(default_factory=set)
    product: str = "falcon-content"
    running: dict[str, str] = field(default_factory=dict)  # host -> version it runs (reported)

    def __post_init__(self) -> None:
        self.ingest = HealthIngest(self.db, self.clock, max_per_minute=10_000)
        inventory.import_inventory(self.db, Inventory(hosts=tuple(self.hosts)), actor=OPERATOR, clock=self.clock)

    def release(self, version: str, product: str = "falcon-content") -> str:
        r = rollouts.create_release(self.db, self.artifacts, product=product, version=version, kind="content",
                                    platforms=["windows"], files=[(f"c-{version}.bin", version.encode())],
                                    actor=OPERATOR, clock=self.clock)
        return r.id

    def heartbeat(self, rollout_id: str) -> None:
        """Every host that is up reports; exposed broken hosts go silent or report a crash."""
        with self.db.transaction() as conn:
            from ringfence.adapters.db.stores import rollouts as store

            exposed = {r.host_id for r in store.rollout_host_rows(conn, rollout_id) if r.exposed_at is not None
                       and r.rolled_back_at is None}
        now = self.clock()
        new_version = rollouts.get_rollout(self.db, rollout_id).spec.release.version
        for h in self.hosts:
            if h.id in self.down:
                continue
            events: tuple[tuple[str, str, object], ...] = ()
            if h.id in exposed:
                if self.broken(h):
                    if self.mode == "silent":
                        continue
                    events = (("crashed", rollout_id, now),)
                else:
                    self.running[h.id] = new_version
            version = self.running.get(h.id, "290")
            committed = () if h.id in exposed and self.broken(h) else (self.product,)
            self.ingest.submit(h.id, HealthReport(host_id=h.id, at=now, events=events,  # type: ignore[arg-type]
                                                  versions={self.product: version}, committed=committed))
        self.ingest.flush()

    def run(self, rollout_id: str, *, minutes: int, step: int = 1, until: Callable[[str], bool] | None = None) -> str:
        """Advance the clock minute by minute: heartbeats, then a reconcile tick; return the final state."""
        state = ""
        for _ in range(0, minutes, step):
            self.heartbeat(rollout_id)
            rollouts.tick(self.db, rollout_id, clock=self.clock)
            state = rollouts.get_rollout(self.db, rollout_id).status.state.value
            if until is not None and until(state):
                return state
            self.clock.advance(minutes=step)
        return state

    def exposed(self, rollout_id: str) -> set[str]:
        from ringfence.adapters.db.stores import rollouts as store

        with self.db.transaction() as conn:
            return {r.host_id for r in store.rollout_host_rows(conn, rollout_id) if r.exposed_at is not None}


def start(fleet: Fleet, release_id: str, plan_yaml: str = ALWAYS_OPEN) -> str:
    plan, _ = rollouts.apply_plan(fleet.db, plan_yaml, actor=OPERATOR, clock=fleet.clock)
    view = rollouts.create_rollout(fleet.db, release_id=release_id, plan_name=plan.name, actor=OPERATOR,
                                   clock=fleet.clock, start=True)
    return view.spec.id


__all__ = ["ALWAYS_OPEN", "APPROVER", "OPERATOR", "Fleet", "make_hosts", "start", "timedelta"]
