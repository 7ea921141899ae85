"""The demo: a generated fleet whose simulated agents live in this process and talk to the real services.

What runs (``ringfence serve --demo``, the default of ``make run``):

* :func:`~ringfence.sim.fleetgen.generate_fleet` makes about 2,000 hosts, imported through
  :func:`ringfence.services.inventory.import_inventory`;
* every host sends heartbeats and the versions it runs through the server's own
  :class:`~ringfence.services.health.HealthIngest` (the reconciler writes them before each tick);
* every demo minute each host learns what to run from the desired-state service
  (:func:`ringfence.services.desired.desired_many`, the rules of ``GET /v1/agent/desired`` for the
  whole fleet in a fixed number of queries), installs it and reports the new version;
* a good agent release (``falcon-sensor``) rolls out under the ``demo-agent`` plan, and the next
  one follows when it completes (at most :data:`MAX_GOOD_RELEASES`);
* :meth:`DemoFleet.replay` publishes ``falcon-content@291`` under the ``demo-content`` plan: every
  Windows host that installs it goes silent for good, like the boot loop of 19 July 2024;
* a silent host comes back when a recovery campaign's technician marks it ``fixed`` (the rescue removed the
  bad channel file): it boots on the content it ran before and reports again, and its own heartbeat then
  verifies it in the campaign (docs/recovery.md).  Until the rollout was rolled back it fetches the bad
  content again and goes silent again, as a real host would.

Time is a :class:`~ringfence.demo.clock.FastClock`; the demo plans have windows open every day, all
day, and no holiday freeze, so that the demo runs whenever it is started (docs/dashboard.md).
Nothing leaves the process: no sockets besides the server's loopback port.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import recovery as recovery_store
from ringfence.adapters.db.stores import rollouts as rollout_store
from ringfence.domain.access import Role
from ringfence.domain.model import Host, OsFamily
from ringfence.domain.rollout import RolloutState
from ringfence.errors import InputError, RingfenceError
from ringfence.services import inventory, rollouts
from ringfence.services.context import Actor
from ringfence.services.desired import desired_many
from ringfence.services.health import HealthIngest, HealthReport
from ringfence.sim.fleetgen import generate_fleet

__all__ = ["AGENT_PLAN", "CONTENT_PLAN", "HOSTS_2024", "MAX_GOOD_RELEASES", "DemoFleet", "DemoInfo"]

log = logging.getLogger("ringfence.demo")

#: How many Windows hosts the faulty content update of 19 July 2024 crashed (Microsoft's estimate).
HOSTS_2024 = 8_500_000
MAX_GOOD_RELEASES = 20
BOT = Actor(name="demo-release-bot", role=Role.OPERATOR, source="demo")
SENSOR, CONTENT = "falcon-sensor", "falcon-content"
BAD_VERSION = "291"
#: The artifact of the replayed release: a stand-in channel file, described for what it is.
BAD_ARTIFACT = (b"ringfence demo artifact: rapid-response content 291. Its template instance uses input field 21; "
                b"the sensor's interpreter supplies 20. Every Windows host that loads it crashes at boot.\n")

AGENT_PLAN = """
# Demo plan for the agent release: windows open all day every day, so the demo runs at any hour, and a
# baseline of 0.01 failures per host-hour (the default is 0.001), so that a good release is shown to be
# safe -- at most 2x that rate -- after tens of demo minutes instead of hours; strata with fewer than 100
# updated hosts are judged in the pooled stream (a 10-host stratum alone would need a day of demo time).
name: demo-agent
windows:
  - {days: mon-sun, start: "00:00", end: "24:00"}
freeze: {public_holidays: false}
silence_grace_minutes: 5
max_data_age_minutes: 5
gate: {min_treated_hosts: 100, baseline_rate: 0.01}
waves:
  - {name: canary, count: 20, min_bake_minutes: 15, min_observed_hosts: 20, max_rate_per_minute: 10}
  - {name: early, fraction: 0.10, min_bake_minutes: 20, min_observed_hosts: 50, max_rate_per_minute: 20}
  - {name: broad, fraction: 0.50, min_bake_minutes: 30, min_observed_hosts: 200, max_rate_per_minute: 40}
  - {name: everyone, fraction: 1.0, min_bake_minutes: 15, min_observed_hosts: 200, max_rate_per_minute: 60}
"""

CONTENT_PLAN = """
# Demo plan for rapid-response content: a canary first, a rate limit, a bake and the gate.
name: demo-content
windows:
  - {days: mon-sun, start: "00:00", end: "24:00"}
freeze: {public_holidays: false}
silence_grace_minutes: 5
max_data_age_minutes: 5
gate: {min_treated_hosts: 10}
waves:
  - {name: canary, count: 20, min_bake_minutes: 15, min_observed_hosts: 10, max_rate_per_minute: 6}
  - {name: early, fraction: 0.10, min_bake_minutes: 20, min_observed_hosts: 50, max_rate_per_minute: 30}
  - {name: everyone, fraction: 1.0, min_bake_minutes: 15, min_observed_hosts: 200, max_rate_per_minute: 100}
"""


@dataclass(frozen=True, slots=True)
class DemoInfo:
    """What the dashboard shows about the demo."""

    speed: float
    hosts: int
    silent: int
    replay_rollout: str | None
    replay_at: datetime | None
    hosts_2024: int = HOSTS_2024


@dataclass
class _Host:
    id: str
    windows: bool
    versions: dict[str, str]
    dead: bool = False
    changed: bool = True  # versions to report with the next heartbeat


@dataclass
class DemoFleet:
    """A bounded fleet of simulated agents driven by a background thread (see the module docstring)."""

    db: Database
    ingest: HealthIngest
    artifacts: ArtifactStore
    clock: Any  # FastClock or any Clock
    speed: float = 60.0
    host_count: int = 2000
    seed: int = 7
    hosts: dict[str, _Host] = field(default_factory=dict)
    inventory: list[Host] = field(default_factory=list)
    replay_rollout: str | None = None
    replay_at: datetime | None = None
    good_releases: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    # --- setup ------------------------------------------------------------------------------

    def setup(self) -> None:
        """Import the fleet, apply the demo plans, report once from every host and start the good release."""
        if not 10 <= self.host_count <= 5000:
            raise InputError.single("demo_hosts", f"is {self.host_count}", expected="10 … 5,000 hosts")
        now = self.clock()
        inv = generate_fleet(self.host_count, self.seed, start=now)
        self.inventory = list(inv.hosts)
        inventory.import_inventory(self.db, inv, actor=BOT, clock=self.clock, sources=("demo",),
                                   reason="demo fleet")
        for h in inv.hosts:
            windows = h.os_family is OsFamily.WINDOWS
            versions = {SENSOR: "7.16.18605"} | ({CONTENT: "290"} if windows else {})
            self.hosts[h.id] = _Host(id=h.id, windows=windows, versions=versions)
        for source in (AGENT_PLAN, CONTENT_PLAN):
            rollouts.apply_plan(self.db, source, actor=BOT, clock=self.clock, reason="demo plans")
        for product, version, kind, platforms in ((SENSOR, "7.16.18605", "agent", ["windows", "linux", "macos"]),
                                                  (CONTENT, "290", "content", ["windows"])):
            rollouts.create_release(self.db, self.artifacts, product=product, version=version, kind=kind,
                                    platforms=platforms, files=[(f"{product}-{version}.bin",
                                                                 f"demo {product} {version}\n".encode())],
                                    actor=BOT, clock=self.clock, reason="what the demo fleet runs today")
        self._heartbeats()
        self.ingest.flush()
        self._next_good_release()

    def _next_good_release(self) -> str | None:
        if self.good_releases >= MAX_GOOD_RELEASES:
            return None
        self.good_releases += 1
        version = f"7.{16 + self.good_releases}.{18605 + self.good_releases}"
        rollouts.create_release(self.db, self.artifacts, product=SENSOR, version=version, kind="agent",
                                platforms=["windows", "linux", "macos"],
                                files=[(f"{SENSOR}-{version}.bin", f"demo {SENSOR} {version}\n".encode())],
                                actor=BOT, clock=self.clock, reason="demo: the next good agent release")
        view = rollouts.create_rollout(self.db, release_id=f"{SENSOR}@{version}", plan_name="demo-agent",
                                       actor=BOT, clock=self.clock, start=True, artifacts=self.artifacts,
                                       reason="demo: a good release progressing")
        return view.spec.id

    # --- the replay -------------------------------------------------------------------------

    def replay(self, actor: Actor) -> str:
        """Publish the faulty content release and start its rollout as ``actor``; return the rollout id.

        Idempotent: once a replay started, later calls return its rollout; a replay the services refused
        (the kill switch is engaged, a release gate failed) can be tried again.
        """
        with self._lock:
            if self.replay_rollout is not None:
                return self.replay_rollout
            release_id = f"{CONTENT}@{BAD_VERSION}"
            with self.db.transaction() as conn:
                exists = rollout_store.get_release(conn, release_id) is not None
            if not exists:  # a replay refused earlier (e.g. by the kill switch) left the release: reuse it
                rollouts.create_release(
                    self.db, self.artifacts, product=CONTENT, version=BAD_VERSION, kind="content",
                    platforms=["windows"], files=[("C-00000291-00000000-00000032.sys", BAD_ARTIFACT)], actor=actor,
                    clock=self.clock, reason="demo: replay of 19 July 2024 (channel file 291)")
            view = rollouts.create_rollout(self.db, release_id=release_id, plan_name="demo-content", actor=actor,
                                           clock=self.clock, start=True, artifacts=self.artifacts,
                                           reason="demo: replay of 19 July 2024 through the gate")
            self.replay_rollout = view.spec.id
            self.replay_at = self.clock()
            return view.spec.id

    def info(self) -> DemoInfo:
        """Speed, size, silent hosts and the replay's rollout."""
        return DemoInfo(speed=self.speed, hosts=len(self.hosts), silent=sum(1 for h in self.hosts.values() if h.dead),
                        replay_rollout=self.replay_rollout, replay_at=self.replay_at)

    # --- one step of every agent ------------------------------------------------------------

    def step(self) -> None:
        """Every agent asks for its desired state, installs what changed and reports (one demo minute)."""
        self._recover()
        self._converge()
        self._heartbeats()
        self._maybe_next_release()

    def _converge(self) -> None:
        with self.db.transaction() as conn:
            wanted = desired_many(conn, self.inventory, all_hosts=True)
        for host_id, products in wanted.items():
            host = self.hosts.get(host_id)
            if host is None or host.dead:
                continue
            for product, want in products.items():
                if not want.directive or not want.version or host.versions.get(product, want.version) == want.version:
                    continue  # nothing decided, already there, or a product this host does not run
                host.versions[product] = want.version
                host.changed = True
                if product == CONTENT and want.version == BAD_VERSION and host.windows:
                    host.dead = True  # loads the content, crashes, reboots, crashes: never reports again
                    break

    def _recover(self) -> None:
        """Silent hosts that a recovery campaign marked fixed boot again on the content they ran before."""
        with self.db.transaction() as conn:
            fixed = {h.host_id for c in recovery_store.list_campaigns(conn) if c.state == "open"
                     for h in recovery_store.hosts(conn, c.id) if h.state == "fixed"}
        for host_id in fixed:
            host = self.hosts.get(host_id)
            if host is None or not host.dead:
                continue
            host.dead = False
            host.versions[CONTENT] = "290"  # the rescue deleted channel file 291; the host runs what it ran before
            host.changed = True

    def _heartbeats(self) -> None:
        now = self.clock()
        for host in self.hosts.values():
            if host.dead:
                continue
            report = HealthReport(host_id=host.id, at=now, versions=dict(host.versions) if host.changed else {},
                                  committed=tuple(host.versions) if host.changed else ())
            try:
                self.ingest.submit(host.id, report)
            except RingfenceError as e:  # a rate-limited report is dropped, as a real agent's would be
                log.debug("demo host %s: report refused: %s", host.id, e)
                continue
            host.changed = False

    def _maybe_next_release(self) -> None:
        with self.db.transaction() as conn:
            rows = rollout_store.list_rollout_rows(conn, product=SENSOR)
        if rows and all(r.state in (RolloutState.COMPLETED.value, RolloutState.ABORTED.value,
                                    RolloutState.ROLLED_BACK.value) for r in rows):
            self._next_good_release()

    # --- the background thread --------------------------------------------------------------

    def _period(self) -> float:
        """Real seconds between steps: one demo minute, but at least half a second."""
        return max(0.5, 60.0 / self.speed)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # the demo must keep running; the error is logged
                log.exception("demo step failed")
            self._stop.wait(self._period())

    def start(self) -> None:
        """Run the agents in a daemon thread until :meth:`stop`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ringfence-demo", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the agents."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

