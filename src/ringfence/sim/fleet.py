"""The vectorised fleet model: millions of hosts as numpy arrays, behind the same port as the server's store.

Hosts are drawn from a *template*: hosts made by :func:`ringfence.sim.fleetgen.generate_fleet` (filtered to
the scenario's OS families) or by the scenario's own mix of sites, builds and hardware.  Each simulated host
is one template host's attributes (stratum, time zone, country, tier, labels, tenant, disk encryption) plus
its own draws: hash bucket, online propensity, frailty, poll delay, heartbeat lag.  Everything the engine
sees goes through the real domain and the shared counting rules of :mod:`ringfence.domain.counting`:
strata (:func:`~ringfence.domain.cohorts.stratum_of`), wave placement
(:func:`~ringfence.domain.waves.assign_waves_bulk`), change windows
(:func:`~ringfence.domain.windows.window_status_many`), tenant policies
(:mod:`ringfence.domain.policies`), targeting (:mod:`ringfence.domain.targeting`), disruption budgets
(:func:`~ringfence.domain.counting.budget_ledger`, the server's ledger over the services' redundancy groups),
selectors, silence and gate counts.  ``tests/test_parity.py`` drives this fleet and the server's store with
the same hosts and events and checks they see and decide the same at every tick.

A simulated host's bucket is drawn uniformly from ``[0, BUCKETS)`` instead of hashing a name it does not
have: the salted hash is uniform, which is all the cuts rely on.

Physics per step (times are seconds since the scenario start):

* **online**: a workstation is online while its propensity is below the chance for its local time
  (day, night, weekend); a server at the server chance; the propensity rotates each local day, so a
  different set of hosts stays off each day and none is absent for ever;
* **heartbeats**: every online host that is not down reports; each local day a different share of hosts
  (the scenario's delayed share) reports 5–30 minutes late;
* **baseline**: crashes (the host reboots in 3 minutes and reports the crash) and heartbeat-loss episodes,
  each at its per-host-hour rate times the host's frailty (gamma, mean 1); shocks take a share of every host
  down at once, updated or not;
* **release**: exposure → install after the poll delay → the failure model of the host's stratum: a crash
  ``crash_after_s`` after install with ``p_crash``, and/or a crash hazard ``rate_multiplier`` × baseline from
  ``onset_hours``; a boot-looping host is silent until recovered, the others report the crash;
* **rollback**: a rolled-back host returns to its previous version at its next poll if it is up; a pending
  release crash is cancelled then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from ringfence.domain.budgets import BudgetLedger, GroupBudget, budgets_from_services
from ringfence.domain.cohorts import BUCKETS, bucket, stratum_of
from ringfence.domain.counting import (
    budget_ledger,
    count_streams,
    first_whole_window_end,
    risk_observations,
    silent_now,
    unproven,
    wave_observations,
)
from ringfence.domain.gate import Signal, StreamCounts
from ringfence.domain.model import DiskEncryption, Host, HostId, InstalledAgent, OsFamily, Platform, Service, TenantId
from ringfence.domain.policies import HOLD_DELAYED, HOLD_HELD, TenantPolicies, TenantPolicy, policy_hold
from ringfence.domain.recovery import Capacity, class_minutes, classify, dependency_tier, queue_order, schedule
from ringfence.domain.risksets import PreHistory, count_history
from ringfence.domain.rollout import Observations, Plan, WaveState
from ringfence.domain.selector import compile_predicate
from ringfence.domain.targeting import early_ring, group_members, targeted, wave_selection
from ringfence.domain.waves import assign_waves_bulk
from ringfence.domain.windows import WindowStatus, window_status_many
from ringfence.errors import InputError, shown
from ringfence.services.fleet_port import Candidates, RolloutView
from ringfence.sim.fleetgen import generate_fleet
from ringfence.sim.scenario import Scenario

__all__ = ["SimFleet", "Template", "build_template"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

_REBOOT_S = 180.0  # a crash that does not boot-loop keeps the host down this long


@dataclass(frozen=True, slots=True)
class Template:
    """The distinct kinds of host a simulated fleet is drawn from, with their weights."""

    hosts: tuple[Host, ...]
    weights: F64


def _mix_template(scenario: Scenario) -> Template:
    mix = scenario.mix
    assert mix is not None
    hosts: list[Host] = []
    weights: list[float] = []
    agent = InstalledAgent(vendor=mix.kernel_agent.split(" ")[0], product=" ".join(mix.kernel_agent.split(" ")[1:]),
                           kernel_mode=True, boot_start=True)
    n = 0
    roles = (("workstation", 1.0 - mix.server_share, mix.workstation_builds, mix.workstation_hardware),
             ("server", mix.server_share, mix.server_builds, mix.server_hardware))
    for region, tz, country, subdivision, w_site in mix.sites:
        for role, w_role, builds, hardware in roles:
            if w_role <= 0:
                continue
            for build, w_build in builds:
                for model, w_hw in hardware:
                    for canary, w_canary in ((True, mix.canary_share), (False, 1.0 - mix.canary_share)):
                        for locked, w_lock in (("escrowed", mix.bitlocker_share * mix.escrow_share),
                                               ("no-key", mix.bitlocker_share * (1 - mix.escrow_share)),
                                               ("none", 1.0 - mix.bitlocker_share)):
                            w = w_site * w_role * w_build * w_hw * w_canary * w_lock
                            if w <= 0:
                                continue
                            labels = {"role": role, "region": region, **({"canary": ""} if canary else {})}
                            hosts.append(Host(
                                id=HostId(f"t{n}"), hostname=f"{role[:2]}-{n}", tenant=TenantId("sim"),
                                os_family=OsFamily.WINDOWS, os_build=build, hardware_model=model, timezone=tz,
                                country=country, subdivision=subdivision, site=f"{region}-{tz}",
                                tier=1 if role == "server" else 3, labels=labels, agents=(agent,),
                                encryption=DiskEncryption.NONE if locked == "none" else DiskEncryption.BITLOCKER,
                                recovery_key_escrowed=locked == "escrowed", recovery_key_verified=locked == "escrowed"))
                            weights.append(w)
                            n += 1
    total = sum(weights)
    return Template(hosts=tuple(hosts), weights=np.array(weights, dtype=np.float64) / total)


def build_template(scenario: Scenario, seed: int) -> Template:
    """The scenario's template hosts: its own mix, or a generated fleet filtered to its OS families."""
    if scenario.mix is not None:
        return _mix_template(scenario)
    fleet = generate_fleet(scenario.template_hosts, seed=seed)
    families = set(scenario.os_families)
    hosts = tuple(h for h in fleet.hosts if not families or h.os_family.value in families)
    if not hosts:
        raise InputError.single("fleet.os_families", f"is {sorted(families)}",
                                expected="OS families present in the generated fleet: windows, linux, macos")
    return Template(hosts=hosts, weights=np.full(len(hosts), 1.0 / len(hosts)))


class _Names(Sequence[str]):
    """Simulated hosts' names, made on demand: an exact fleet's own host ids, else ``sim-<index>``."""

    def __init__(self, fleet: SimFleet) -> None:
        self._fleet = fleet

    def __len__(self) -> int:
        return self._fleet.n

    def __getitem__(self, j: int) -> str:  # type: ignore[override]  # positions only, no slices
        fleet = self._fleet
        return str(fleet.template[int(fleet.tmpl[j])].id) if fleet.exact else f"sim-{j}"


class SimFleet:
    """The simulator's :class:`~ringfence.services.fleet_port.FleetView`: one rollout over numpy arrays."""

    def __init__(self, scenario: Scenario, plan: Plan, template: Template, *, hosts: int, seed: int,
                 policies: list[dict[str, Any]] | None = None, services: Sequence[Service] = (),
                 exact_salt: str = "") -> None:
        self.scenario = scenario
        self.plan = plan
        self.start = scenario.start
        rng = np.random.default_rng(seed)
        self.rng = rng
        reached = np.array(targeted(plan, scenario.platforms, template.hosts), dtype=bool)
        if not reached.any():
            raise InputError.single("policy.selector", f"{shown(plan.selector)} targets no host of the scenario",
                                    expected="a selector that matches some of the scenario's hosts")
        t_hosts = [h for h, t in zip(template.hosts, reached, strict=True) if t]
        weights = template.weights[reached] / template.weights[reached].sum()
        self.template = t_hosts
        # exact_salt: one simulated host per targeted template host, in its order, bucketed by the real salted
        # hash (the parity test's fleet); otherwise ``hosts`` hosts drawn from the template by weight.
        self.exact = bool(exact_salt)
        n = len(t_hosts) if self.exact else hosts
        self.n = n
        self.tmpl = (np.arange(n, dtype=np.int32) if self.exact
                     else rng.choice(len(t_hosts), size=n, p=weights).astype(np.int32))
        # Per template host: stratum, window key, role, tier, selectors, policy, failure model, recovery work.
        strata_of = [stratum_of(h) for h in t_hosts]
        self.strata = sorted(set(strata_of))
        s_index = {s: i for i, s in enumerate(self.strata)}
        keys = sorted({(h.timezone, h.country, h.subdivision) for h in t_hosts})
        self.keys = keys
        k_index = {k: i for i, k in enumerate(keys)}
        t_stratum = np.array([s_index[s] for s in strata_of], dtype=np.int64)
        t_key = np.array([k_index[(h.timezone, h.country, h.subdivision)] for h in t_hosts], dtype=np.int64)
        t_server = np.array([h.labels.get("role") == "server" for h in t_hosts], dtype=bool)
        self.stratum = t_stratum[self.tmpl]
        self.key = t_key[self.tmpl]
        self.online_code = (self.key * 2 + t_server[self.tmpl]).astype(np.int64)
        self.zones = [ZoneInfo(k[0]) for k in keys]
        rows = list(policies if policies is not None else scenario.tenant_policies)
        tenant_policies = TenantPolicies([{"host_group": "", "product": "*", "ring": "general", "delay_hours": 0.0,
                                           "pin": "latest", **r} for r in rows], scenario.product)
        distinct: dict[TenantPolicy, int] = {}
        t_policy = np.array([distinct.setdefault(tenant_policies.of(h), len(distinct)) for h in t_hosts],
                            dtype=np.int64) if tenant_policies else np.zeros(len(t_hosts), dtype=np.int64)
        self.policies = list(distinct) or [TenantPolicy()]
        self.has_policies = bool(tenant_policies)
        self.policy = t_policy[self.tmpl] if self.has_policies else None
        early_t = np.array(early_ring(tenant_policies, t_hosts), dtype=bool)
        t_selected = np.array(wave_selection(plan, t_hosts), dtype=bool).reshape(len(t_hosts), len(plan.waves))
        t_tier0 = np.array([h.tier == 0 for h in t_hosts], dtype=bool)
        # Outages of a named region or site: which template hosts each one takes down.
        t_outage = [np.array([compile_predicate(o.match)(h) for h in t_hosts], dtype=bool) for o in scenario.outages]
        failures = scenario.failures
        f_preds = [compile_predicate(f.match) if f.match else None for f in failures]
        self.t_failure = np.array([next((i for i, p in enumerate(f_preds) if p is None or p(h)), -1) for h in t_hosts],
                                  dtype=np.int64)
        # Recovery work per template host: the shared planner's classes and minutes.
        planner = scenario.recovery.planner()
        t_cls = classify(t_server, np.array([h.platform is Platform.CLOUD for h in t_hosts], dtype=bool),
                         np.array([h.encryption is not DiskEncryption.NONE for h in t_hosts], dtype=bool),
                         np.array([h.recovery_key_escrowed and h.recovery_key_verified for h in t_hosts], dtype=bool))
        self.t_minutes = class_minutes(t_cls, planner)
        self.t_tier = np.array([h.tier for h in t_hosts], dtype=np.int64)
        self.bucket = (np.array([bucket(exact_salt, h.id) for h in t_hosts], dtype=np.int64) if self.exact
                       else rng.integers(0, BUCKETS, size=n, dtype=np.int64))
        self.wave = assign_waves_bulk(plan, self.strata, self.stratum, self.bucket, t_tier0[self.tmpl],
                                      t_selected[self.tmpl], early_t[self.tmpl])
        # Hosts in wave order: "in reach of wave k" is then a prefix (fleet_port counts prefixes fast).
        # (An exact fleet keeps its hosts' order, as the server's store does: counts then use masks.)
        order = np.arange(n) if self.exact else np.argsort(self.wave, kind="stable")
        self.tmpl, self.stratum, self.key = self.tmpl[order], self.stratum[order], self.key[order]
        self.online_code, self.bucket, self.wave = self.online_code[order], self.bucket[order], self.wave[order]
        self.outage_hosts = [np.flatnonzero(m[self.tmpl]) for m in t_outage]
        self._outages_done: set[int] = set()
        # Per host draws.
        self.u_online = rng.random(n, dtype=np.float32)
        shape = scenario.frailty_shape
        self.frailty = rng.gamma(shape, 1.0 / shape, size=n).astype(np.float32)
        lo, hi = scenario.poll_s
        self.poll = rng.uniform(lo, hi, size=n).astype(np.float32)
        dlo, dhi = scenario.delayed_minutes
        self.lag_size = rng.uniform(dlo * 60, dhi * 60, size=n).astype(np.float32)
        self.u_lag = rng.random(n, dtype=np.float32)
        self.lag = np.zeros(n, dtype=np.float32)
        # State (seconds since the scenario start; nan = never).
        nan = np.full(n, np.nan)
        self.exposed_s: F64 = nan.copy()
        self.install_s: F64 = nan.copy()
        self.revert_s: F64 = nan.copy()
        self.rolled_back = np.zeros(n, dtype=bool)
        self.harm_s: F64 = nan.copy()
        self.harm_boot = np.zeros(n, dtype=bool)
        self.harm_hang: F64 = nan.copy()  # seconds a host the release hits hangs before it reports again
        flap = scenario.flapping
        self.flapper = (np.flatnonzero(rng.random(n) < flap.share) if flap.share > 0
                        else np.zeros(0, dtype=np.int64))
        self.flap_phase = rng.uniform(0.0, flap.period_minutes * 60.0, len(self.flapper))
        self.crashed_s: F64 = nan.copy()  # crashed because of the release
        #: The hands-on work of the last :meth:`recovery`: hosts, their recovery site codes and the start (s), so
        #: a test or benchmark can hand the same hosts to the shared planner.
        self.manual_work: tuple[I64, I64, float] | None = None
        self.boot_looped = np.zeros(n, dtype=bool)
        self.down_until: F64 = np.zeros(n)
        self.crash_t: F64 = nan.copy()
        self.crash_c: F64 = nan.copy()
        self.silent_t: F64 = nan.copy()
        self.silent_c: F64 = nan.copy()
        self._nan = nan
        base = scenario.baseline_crash_per_hour / 3600.0
        loss = scenario.heartbeat_loss_per_hour / 3600.0
        self.next_crash: F64 = rng.exponential(1.0, size=n) / np.maximum(base * self.frailty, 1e-300)
        self.next_loss: F64 = rng.exponential(1.0, size=n) / np.maximum(loss * self.frailty, 1e-300)
        # Before the start every host had reported; hosts offline at the start last reported an hour earlier.
        self.beat_s: F64 = np.where(self._online(0.0), -rng.uniform(0, scenario.heartbeat_s, size=n) - self.lag,
                                    -3600.0)
        # Gate v2 (scenario.risk_sets): going-away notices, each host's usual time away, the latest crash.
        self.notice_s: F64 = nan.copy()
        self.away_limit_s: F64 = np.full(n, scenario.away_limit_hours * 3600.0)
        self.last_crash_s: F64 = nan.copy()
        # When the server received each host's last report: a host whose reports arrive late reports on every
        # beat all the same, so only a gap in arrivals (a host that stops, or whose delay grows) is silence.
        self.seen_s: F64 = self.beat_s.copy()
        self._was_online = self._online(0.0)
        self.history: PreHistory | None = None  # each host's record before the start (warm_up), for self-control
        if scenario.sleep_notice:  # hosts asleep at the start said so before they went
            self.notice_s[~self._was_online] = self.seen_s[~self._was_online]
        self.t = 0.0
        self.started_s = 0.0
        self.windows: list[WindowStatus] = []
        self._key_index = k_index
        self._window_cache: list[WindowStatus] = [WindowStatus(open=False, reason="")] * len(keys)
        self._window_until: list[datetime | None] = [None] * len(keys)
        self._shocks_done: set[int] = set()
        self._window_ends: tuple[datetime | None, list[datetime | None]] = (None, [])
        self._missed: B | None = None
        # Disruption budgets: the services' redundancy groups resolved over the template hosts, then to the
        # simulated hosts drawn from them (named as in :class:`_Names`).
        self.names = _Names(self)
        self.budgets: list[GroupBudget] = []
        self.members = np.zeros(0, dtype=np.int64)
        if services:
            t_ids = np.array([h.id for h in t_hosts], dtype=object)
            for b in budgets_from_services(services, group_members(t_hosts)):
                sim_members = np.flatnonzero(np.isin(t_ids[self.tmpl], list(b.members)))
                self.budgets.append(replace(b, members=frozenset(self.names[int(j)] for j in sim_members)))
                self.members = np.union1d(self.members, sim_members)

    # --- physics ---------------------------------------------------------------------------------------

    def at(self, t: float) -> datetime:
        """The scenario time ``t`` seconds after its start."""
        return self.start + timedelta(seconds=t)

    def _online(self, t: float) -> B:
        o = self.scenario.online
        when = self.at(t)
        table = np.empty(len(self.keys) * 2, dtype=np.float32)
        shift = np.empty(len(self.keys) * 2, dtype=np.float32)
        lag_shift = np.empty(len(self.keys) * 2, dtype=np.float32)
        for j, zone in enumerate(self.zones):
            local = when.astimezone(zone)
            hour = local.hour + local.minute / 60
            if local.weekday() >= 5:
                ws = o.workstation_weekend
            else:
                ws = o.workstation_day if o.day_start <= hour < o.day_end else o.workstation_night
            table[2 * j] = ws
            table[2 * j + 1] = o.server
            # Each local day a different set of hosts stays off (golden-ratio rotation of the propensity),
            # so no host is absent for ever and none flaps within a day.
            shift[2 * j] = shift[2 * j + 1] = (local.toordinal() * 0.6180339887) % 1.0
            lag_shift[2 * j] = lag_shift[2 * j + 1] = (local.toordinal() * 0.4142135624) % 1.0
        day_shift = shift[self.online_code]
        u = self.u_online + day_shift
        u -= np.floor(u)
        result: B = u < table[self.online_code]
        if self.scenario.delayed_share > 0:
            # A rotating share of hosts reports late each local day (slow proxy, VPN): their beats lag.
            v = self.u_lag + lag_shift[self.online_code]
            v -= np.floor(v)
            self.lag = np.where(v < self.scenario.delayed_share, self.lag_size, 0.0).astype(np.float32)
        return result

    def warm_up(self) -> PreHistory:
        """Run the fleet's own physics (no release) over the scenario's ``lookback_hours`` before the start and
        count each host's :class:`~ringfence.domain.risksets.PreHistory` by the rollout's rules
        (:func:`~ringfence.domain.risksets.count_history`): what a server reads from its stored heartbeats.

        The fleet is started again at ``-lookback`` (first reports, crash and heartbeat-loss clocks, going-away
        notices) and stepped to the start at ``max(tick, min(15 min, grace))`` (a host that is up reports at
        every step, so steps up to the grace see the same silences); it enters the rollout in the
        state the warm-up left (hosts that went silent or to sleep in it are so at the start).  Shocks belong to
        the rollout's time (``at_hours`` ≥ 0) and do not happen in the warm-up.
        """
        sc, rng, n = self.scenario, self.rng, self.n
        grace = self.plan.silence_grace.total_seconds()
        origin = -sc.lookback_hours * 3600.0
        history = PreHistory.empty(n)
        if origin >= 0:
            self.history = history
            return history
        base = sc.baseline_crash_per_hour / 3600.0
        loss = sc.heartbeat_loss_per_hour / 3600.0
        self.next_crash = origin + rng.exponential(1.0, size=n) / np.maximum(base * self.frailty, 1e-300)
        self.next_loss = origin + rng.exponential(1.0, size=n) / np.maximum(loss * self.frailty, 1e-300)
        online = self._online(origin)
        self.beat_s = np.where(online, origin - rng.uniform(0, sc.heartbeat_s, size=n) - self.lag, origin - 3600.0)
        self.seen_s = self.beat_s.copy()
        self.down_until = np.full(n, origin)
        self.notice_s = self._nan.copy()
        self.last_crash_s = self._nan.copy()
        self._was_online = online
        if sc.sleep_notice:
            self.notice_s[~online] = self.seen_s[~online]
        self.t = origin
        step = max(sc.tick.total_seconds(), min(900.0, grace))
        t = origin
        while t < 0:
            nxt = min(0.0, t + step)
            self.advance(nxt)
            history = count_history(history, beat_s=self.seen_s, notice_s=self.notice_s, crash_s=self.last_crash_s,
                                    since_s=t, now_s=nxt, grace_s=grace)
            t = nxt
        self.history = history
        return history

    def advance(self, t: float) -> None:
        """Move the fleet to ``t`` seconds after the start: events that fell due, then heartbeats."""
        sc = self.scenario
        rng = self.rng
        # Baseline crashes: the host reboots and reports the crash (as treated or as control).
        due = np.flatnonzero(self.next_crash <= t)
        if len(due):
            when = self.next_crash[due]
            self.down_until[due] = np.maximum(self.down_until[due], when + _REBOOT_S)
            self._crash_event(due, np.maximum(when, self.t))
            base = sc.baseline_crash_per_hour / 3600.0
            self.next_crash[due] = t + rng.exponential(1.0, size=len(due)) / np.maximum(base * self.frailty[due], 1e-300)
        due = np.flatnonzero(self.next_loss <= t)
        if len(due):
            lo, hi = sc.heartbeat_loss_minutes
            self.down_until[due] = np.maximum(self.down_until[due], self.next_loss[due] + rng.uniform(lo, hi, len(due)) * 60)
            loss = sc.heartbeat_loss_per_hour / 3600.0
            self.next_loss[due] = t + rng.exponential(1.0, size=len(due)) / np.maximum(loss * self.frailty[due], 1e-300)
        for i, shock in enumerate(sc.shocks):
            at = shock.at_hours * 3600.0
            if i not in self._shocks_done and at <= t:
                self._shocks_done.add(i)
                hit = np.flatnonzero(rng.random(self.n) < shock.share)
                self.down_until[hit] = np.maximum(self.down_until[hit], at + shock.minutes * 60)
        # Rollback: hosts that are up at their next poll return to their previous version.
        with np.errstate(invalid="ignore"):
            reverting = (self.revert_s <= t) & ~np.isnan(self.harm_s) & np.isnan(self.crashed_s)
        self.harm_s[reverting & (self.harm_s > self.revert_s)] = np.nan
        # Release harm.
        with np.errstate(invalid="ignore"):
            hit = np.flatnonzero((self.harm_s <= t) & np.isnan(self.crashed_s))
        if len(hit):
            when = self.harm_s[hit]
            self.crashed_s[hit] = when
            hang = self.harm_hang[hit]
            hung = ~np.isnan(hang)
            self.down_until[hit[hung]] = np.maximum(self.down_until[hit[hung]], when[hung] + hang[hung])
            boot = self.harm_boot[hit] & ~hung
            self.boot_looped[hit[boot]] = True
            self.down_until[hit[boot]] = np.inf
            rebooted = hit[~boot & ~hung]
            self.down_until[rebooted] = np.maximum(self.down_until[rebooted], self.harm_s[rebooted] + _REBOOT_S)
            self._crash_event(rebooted, np.maximum(self.harm_s[rebooted], self.t))
        for i, (outage, idx) in enumerate(zip(sc.outages, self.outage_hosts, strict=True)):
            at = outage.at_hours * 3600.0
            if i not in self._outages_done and at <= t:
                self._outages_done.add(i)
                self.down_until[idx] = np.maximum(self.down_until[idx], at + outage.hours * 3600.0)
        online = self._online(t)
        if len(self.flapper):  # flapping hosts are down a part of every period, at their own phase
            period, down = sc.flapping.period_minutes * 60.0, sc.flapping.down_minutes * 60.0
            off = (t + self.flap_phase) % period < down
            self.down_until[self.flapper[off]] = np.maximum(self.down_until[self.flapper[off]],
                                                            t - (t + self.flap_phase[off]) % period + down)
        alive = online & (self.down_until <= t)
        if self.scenario.sleep_notice:
            # A host the online model takes offline (sleep, shutdown) while it is up says so first; a crashed,
            # boot-looping or hung host (down) says nothing.
            planned = self._was_online & ~online & (self.down_until <= t)
            self.notice_s[planned] = self.seen_s[planned]
        self._was_online = online
        self.seen_s[alive & (t - self.lag > self.beat_s)] = t
        np.maximum(self.beat_s, t - self.lag, out=self.beat_s, where=alive)
        self.t = t

    def _crash_event(self, idx: I64, when: F64) -> None:
        """A reported crash: under the rollout if the host is updated, else not tied to it (after the start)."""
        treated = ~np.isnan(self.exposed_s[idx]) & ~self.rolled_back[idx]
        control = ~treated & (when >= self.started_s)
        self.last_crash_s[idx] = np.fmax(self.last_crash_s[idx], when)
        self.crash_t[idx[treated]] = np.fmin(self.crash_t[idx[treated]], when[treated])
        self.crash_c[idx[control]] = np.fmin(self.crash_c[idx[control]], when[control])

    # --- the FleetView port --------------------------------------------------------------------------------

    def _silent(self, view: RolloutView, now: datetime) -> tuple[B, B]:
        t = (now - self.start).total_seconds()
        control = np.isnan(self.exposed_s)  # every simulated host reported before the rollout started
        return silent_now(exposed_s=self.exposed_s, rolled_back=self.rolled_back, control=control,
                          beat_s=self.beat_s, now_s=t, grace_s=view.spec.plan.silence_grace.total_seconds())

    def record_silence(self, view: RolloutView, now: datetime) -> int:
        """Record hosts silent now as silence events, the first time each is seen (as the server does).

        A host away with a going-away notice sent at or after its last report (arrival) is censored, not silent:
        it is skipped, as the server's store skips it and as gate v2 counts it (docs/gate.md).
        """
        t = (now - self.start).total_seconds()
        self.started_s = ((view.status.started_at or now) - self.start).total_seconds()
        s_treated, s_control = self._silent(view, now)
        with np.errstate(invalid="ignore"):
            away = self.notice_s >= self.seen_s  # nan (no notice) compares False
        s_treated, s_control = s_treated & ~away, s_control & ~away
        new_t = s_treated & np.isnan(self.silent_t)
        new_c = s_control & np.isnan(self.silent_c)
        self.silent_t[new_t] = t
        self.silent_c[new_c] = t
        return int(np.count_nonzero(new_t) + np.count_nonzero(new_c))

    def observe(self, view: RolloutView, now: datetime) -> tuple[Observations, Candidates]:
        """The engine's observations and the eligible hosts, counted by the shared rules of
        ringfence.domain.counting (writes no event)."""
        spec, status = view.spec, view.status
        t = (now - self.start).total_seconds()
        self.started_s = ((status.started_at or now) - self.start).total_seconds()
        grace = spec.plan.silence_grace.total_seconds()
        self.windows = self._window_statuses(spec.plan, now)
        ledger = self._ledger(view, t)
        held = delayed = np.zeros(self.n, dtype=bool)
        if self.policy is not None:
            started = status.started_at or now
            holds = [policy_hold(p, spec.release.version, started, now) for p in self.policies]
            held = np.array([h == HOLD_HELD for h in holds], dtype=bool)[self.policy]
            delayed = np.array([h == HOLD_DELAYED for h in holds], dtype=bool)[self.policy]
        with np.errstate(invalid="ignore"):
            runs = (self.install_s <= t) & ~(self.revert_s <= t)
        counts = wave_observations(
            waves=len(spec.plan.waves), wave=self.wave, exposed_s=self.exposed_s, rolled_back=self.rolled_back,
            held=held, delayed=delayed, key=self.key, windows=self.windows, beat_s=self.beat_s, runs_release=runs,
            now_s=t, grace_s=grace, name_of=self._hostname, budget_ok=None if ledger is None else (
                lambda idx: np.array([ledger.can_expose(self.names[int(j)])[0] for j in idx], dtype=bool)),
            missed_key=self._missed_keys(view, now))
        self._missed = counts.missed
        control = np.isnan(self.exposed_s)  # every simulated host reported before the rollout started
        treated = ~control & ~self.rolled_back
        streams: list[StreamCounts] = [] if self.scenario.risk_sets else count_streams(
            strata=self.strata, stratum=self.stratum, treated=treated, control=control, exposed_s=self.exposed_s,
            treated_first_s={Signal.CRASHED: self.crash_t, Signal.SILENT: self.silent_t},
            control_first_s={Signal.CRASHED: self.crash_c, Signal.SILENT: self.silent_c},
            started_s=self.started_s, now_s=t, min_treated=spec.plan.gate.min_treated_hosts)
        observations = Observations(waves=counts.waves, streams=tuple(streams), health_as_of=now,
                                    rolled_back_pending=counts.rolled_back_pending,
                                    rolled_back_confirmed=counts.rolled_back_confirmed,
                                    rolled_back_silent=counts.rolled_back_silent,
                                    rolled_back_unheard=counts.rolled_back_unheard)
        if self.scenario.risk_sets:
            observations = self._risk(view, observations, held, t, grace)
        return observations, Candidates(at=now, eligible=counts.eligible, wave=self.wave, bucket=self.bucket,
                                        hosts=self.names, budget=ledger)

    def _risk(self, view: RolloutView, obs: Observations, held: B, t: float, grace: float) -> Observations:
        """Gate v2's observations (risk sets since the last committed tick), by the shared rules."""
        spec, status = view.spec, view.status
        since = status.gate_as_of or status.started_at or self.at(t)
        k = min(status.wave, len(spec.plan.waves) - 1)
        risk = risk_observations(
            strata=self.strata, stratum=self.stratum, in_scope=np.ones(self.n, dtype=bool), wave=self.wave,
            current_wave=k, held=held, exposed_s=self.exposed_s, rolled_back=self.rolled_back, beat_s=self.seen_s,
            notice_s=self.notice_s, away_limit_s=self.away_limit_s, crash_s=self.last_crash_s,
            since_s=min(t, (since - self.start).total_seconds()), now_s=t, grace_s=grace,
            min_bake_s=spec.plan.waves[k].min_bake.total_seconds(), required=spec.plan.gate.required_signals,
            history=self.history, ledger=status.gate_ledger, self_control_ratio=spec.plan.gate.self_control_ratio,
            missed=self._missed)
        return replace(obs, streams=(), risk=risk.ticks, risk_as_of=self.at(t), strata=risk.strata,
                       in_flight=risk.in_flight, proven=risk.proven)

    def _missed_keys(self, view: RolloutView, now: datetime) -> B:
        """Per window key: whether it had one whole change window since the current wave opened (the ends are
        computed once per wave opening)."""
        status, plan = view.status, view.spec.plan
        k = min(status.wave, len(plan.waves) - 1)
        opened = status.waves[k].opened_at if status.waves else None
        if opened is None:
            return np.zeros(len(self.keys), dtype=bool)
        if self._window_ends[0] != opened:
            self._window_ends = (opened, first_whole_window_end(plan.windows, plan.freeze, self.keys, opened))
        return np.array([e is not None and now >= e for e in self._window_ends[1]], dtype=bool)

    def _hostname(self, j: int) -> str:
        return self.template[int(self.tmpl[j])].hostname if self.exact else f"sim-{j}"

    def _ledger(self, view: RolloutView, t: float) -> BudgetLedger | None:
        """The disruption-budget ledger now, by the shared rules (None: the plan or the fleet has no budgets)."""
        plan, status = view.spec.plan, view.status
        if not plan.disruption_budgets or not self.budgets:
            return None
        m = self.members
        mine = unproven(exposed_s=self.exposed_s[m], rolled_back=self.rolled_back[m], wave=self.wave[m],
                        passed=[k for k, w in enumerate(status.waves) if w.state is WaveState.PASSED],
                        min_bake_s=[w.min_bake.total_seconds() for w in plan.waves], now_s=t)
        beats = {self.names[int(j)]: float(self.beat_s[j]) for j in m if not np.isnan(self.beat_s[j])}
        return budget_ledger(self.budgets, exposed=[self.names[int(j)] for j in m[mine]], member_beat_s=beats,
                             now_s=t, grace_s=plan.silence_grace.total_seconds())

    # --- scripted events (the parity test drives the fleet with these instead of the physics) -------------

    def heartbeat(self, idx: I64, t: float) -> None:
        """These hosts report at ``t``."""
        self.beat_s[idx] = np.fmax(self.beat_s[idx], t)
        self.seen_s[idx] = np.fmax(self.seen_s[idx], t)

    def crash(self, idx: I64, t: float) -> None:
        """These hosts report a crash at ``t`` (under the rollout if updated, else not tied to it)."""
        self._crash_event(idx, np.full(len(idx), t))

    def _window_statuses(self, plan: Plan, now: datetime) -> list[WindowStatus]:
        """Each key's window status, re-evaluated when it changes (or its reason's clock is 30 min old)."""
        stale = [k for j, k in enumerate(self.keys) if self._window_until[j] is None
                 or now >= self._window_until[j]]  # type: ignore[operator]
        if stale:
            fresh = window_status_many(plan.windows, plan.freeze, stale, now)
            for k in stale:
                j = self._key_index[k]
                w = fresh[k]
                self._window_cache[j] = w
                change = w.closes_at if w.open else w.next_open
                self._window_until[j] = min(change, now + timedelta(minutes=30)) if change else now + timedelta(minutes=30)
        return list(self._window_cache)

    def expose(self, view: RolloutView, candidates: Candidates, hosts: int, now: datetime) -> int:
        """Expose up to ``hosts`` of the candidates (best first): they install at their next poll."""
        chosen = candidates.choose(hosts)
        t = (now - self.start).total_seconds()
        self.exposed_s[chosen] = t
        install = t + self.poll[chosen].astype(np.float64)
        self.install_s[chosen] = install
        self._draw_harm(chosen, install)
        return len(chosen)

    def _draw_harm(self, idx: I64, install: F64) -> None:
        rng = self.rng
        model = self.t_failure[self.tmpl[idx]]
        base = self.scenario.baseline_crash_per_hour / 3600.0
        for fi, f in enumerate(self.scenario.failures):
            mine = model == fi
            sel = idx[mine]
            if not len(sel):
                continue
            start = install[mine]
            harm = np.full(len(sel), np.nan)
            if f.p_crash > 0:
                hit = rng.random(len(sel)) < f.p_crash
                lo, hi = f.crash_after_s
                harm = np.where(hit, start + rng.uniform(lo, hi, len(sel)), np.nan)
            if f.rate_multiplier > 1.0 and base > 0:
                rate = (f.rate_multiplier - 1.0) * base * self.frailty[sel]
                late = start + f.onset_hours * 3600.0 + rng.exponential(1.0, len(sel)) / rate
                harm = np.fmin(harm, late)
            self.harm_s[sel] = harm
            self.harm_boot[sel] = rng.random(len(sel)) < f.boot_loop
            if f.hang > 0:
                lo, hi = f.hang_hours
                self.harm_hang[sel] = np.where(rng.random(len(sel)) < f.hang, rng.uniform(lo, hi, len(sel)) * 3600.0,
                                               np.nan)

    def roll_back(self, view: RolloutView, now: datetime) -> int:
        """Every exposed host goes back to its previous version at its next poll."""
        t = (now - self.start).total_seconds()
        new = ~np.isnan(self.exposed_s) & ~self.rolled_back
        self.rolled_back |= new
        self.revert_s[new] = t + self.poll[new]
        return int(np.count_nonzero(new))

    # --- results --------------------------------------------------------------------------------------

    def at_risk(self) -> bool:
        """Whether any host runs the release unproven (exposed, not rolled back, not yet past the bake)."""
        return bool(np.any(~np.isnan(self.exposed_s) & ~self.rolled_back))

    def next_window(self) -> float | None:
        """Seconds since the start at which the next closed change window opens (None if none is closed)."""
        opens = [w.next_open for w in self.windows if not w.open and w.next_open is not None]
        return (min(opens) - self.start).total_seconds() if opens else None

    def recovery(self, withdrawn_s: float | None, noticed_s: float | None) -> tuple[F64, int]:
        """When each release-crashed host is back (nan: never crashed) and how many needed hands.

        Boot-looped hosts self-heal (by rebooting once the release is withdrawn) with their failure model's
        chance; the rest wait for a technician of their site from ``noticed_s``, in the shared planner's queue
        order (:func:`ringfence.domain.recovery.queue_order`) with its minutes per host class.
        """
        rng = self.rng
        rec = self.scenario.recovery
        back = np.full(self.n, np.nan)
        crashed = ~np.isnan(self.crashed_s)
        back[crashed & ~self.boot_looped] = self.crashed_s[crashed & ~self.boot_looped] + np.where(
            np.isnan(self.harm_hang), _REBOOT_S, self.harm_hang)[crashed & ~self.boot_looped]  # a hang ends by itself
        looped = np.flatnonzero(self.boot_looped)
        if not len(looped):
            return back, 0
        model = self.t_failure[self.tmpl[looped]]
        heal_share = np.array([f.self_heal for f in self.scenario.failures] + [0.0])[model]
        heal_hours = np.array([f.self_heal_hours for f in self.scenario.failures] + [0.0])[model]
        healed = (rng.random(len(looped)) < heal_share) & (withdrawn_s is not None)
        if withdrawn_s is not None:
            start = np.maximum(self.crashed_s[looped], withdrawn_s)
            back[looped[healed]] = (start + rng.random(len(looped)) * heal_hours * 3600.0)[healed]
        manual = looped[~healed]
        if len(manual):
            begin = noticed_s if noticed_s is not None else float(np.nanmin(self.crashed_s))
            begin += rec.start_after_hours * 3600.0
            per_key = np.bincount(self.key, minlength=len(self.keys))
            sites = np.maximum(1, np.ceil(per_key / rec.hosts_per_site)).astype(np.int64)
            sub = (rng.random(len(manual)) * sites[self.key[manual]]).astype(np.int64)
            site = np.unique(self.key[manual] * int(sites.max()) + sub, return_inverse=True)[1].astype(np.int64)
            # The shared planner: queue order (dependency tier, host tier, shortest job, host index), the site's
            # technicians as one pool from `begin`, nobody fixed before it crashed.
            minutes = self.t_minutes[self.tmpl[manual]]
            order = queue_order(site, np.full(len(manual), dependency_tier("", 3), np.int64),
                                self.t_tier[self.tmpl[manual]], minutes, manual)
            n_sites = int(site.max()) + 1 if len(site) else 0
            done_h = schedule(site, minutes, order, [Capacity(rec.technicians)] * n_sites, start_hours=begin / 3600.0,
                              ready_hours=self.crashed_s[manual] / 3600.0)
            back[manual] = done_h * 3600.0
            self.manual_work = (manual, site, begin)
        return back, len(manual)
