"""The one recovery model and planner (DESIGN §3 C5, §4 Recovery): pure, numpy, no I/O, no clock.

The assessment (:mod:`ringfence.domain.assessment`), the simulator (:meth:`ringfence.sim.fleet.SimFleet.recovery`)
and recovery campaigns (:mod:`ringfence.services.recovery`) all take their recovery figures from here, so
``ringfence assess``, ``ringfence simulate`` and ``ringfence recovery plan`` cannot disagree on the same hosts
with the same model.  Every default and its source is in docs/recovery.md.

Rules:

* **Host class** (:func:`classify`): a cloud VM (``platform=cloud``) is ``cloud_vm``; otherwise a server
  (label ``role=server``, or tier ≤ 2 with services) is ``server``; otherwise ``pc``.  An encrypted disk
  without an escrowed *and verified* key makes the host ``reimage`` whatever it is.  Minutes per class come
  from :class:`RecoveryModel`; a runbook (:class:`Runbook`) may override the minutes of the hosts it matches.
  The what-if "every key usable" is the same function with ``key_ready`` true: a server stays a 20-minute
  server (it is never counted as a 4-minute PC or a cloud VM).
* **Queue order** (:func:`queue_order`), explicit and total, within each site (and within each automated
  lane): dependency tier first (0 directory, 1 DNS, 2 key escrow, 3 hosts of tier-0 services, 4 the rest —
  :func:`dependency_tier`), then the host's criticality tier (0 first), then shortest job first, then the
  **host id** (lexicographic) as the final tie-break, so the order never depends on the order hosts were
  listed in.
* **Hands-on capacity**: each site's technicians work as one pool.  Without shifts the pool works round the
  clock (``technicians_per_site``, or the per-site override).  With shifts, each shift (local start time in the
  site's own IANA time zone, length, technicians, week days) adds capacity during its hours only; a host is
  done when the pool's cumulative technician-minutes since the start reach the cumulative work queued before
  and including it (a fluid schedule: exact for one technician, and for a pool the time the last
  technician-minute of that host's work is spent).  A site with no capacity never finishes (``inf``).
* **Automated lanes** (runbooks with ``automated``) do not use technicians: a lane runs its hosts in batches of
  ``concurrency`` (in queue order), a batch taking its longest host's minutes capped at ``cap_minutes``; lanes
  are fleet-wide (one per runbook).
* A host is never done before it is ready (``ready_hours``: the simulator's crash time) nor before the
  campaign starts (``start_hours``).
* A **service** is back when every group it lost members from has ``min_healthy`` members back and every
  service it depends on is back (dependency cycles are back together); its **critical path** is the chain of
  the causes that set that time (a dependency, or the k-th host of a group).
* **Waves**: the hosts of one site (or lane) done within one shift (round the clock: one calendar day in the
  each 24 hours since the start); each wave has its start, end and host count.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from ringfence.domain.selector import parse as parse_selector
from ringfence.errors import FieldIssue, InputError, shown

__all__ = [
    "CLASSES",
    "CLOUD_VM",
    "DEPENDENCY_TIERS",
    "PC",
    "REIMAGE",
    "SERVER",
    "Automation",
    "Capacity",
    "CriticalStep",
    "Lane",
    "RecoveryModel",
    "RecoveryPath",
    "Runbook",
    "RunbookStep",
    "Shift",
    "Wave",
    "build_capacity",
    "burn_down",
    "class_minutes",
    "classify",
    "dependency_tier",
    "model_from_mapping",
    "queue_order",
    "restore_times",
    "runbooks_from_mapping",
    "runs",
    "schedule",
    "waves",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Host classes for the minutes per host (indices into :data:`CLASSES`).
CLASSES: tuple[str, ...] = ("pc", "server", "cloud_vm", "reimage")
PC, SERVER, CLOUD_VM, REIMAGE = range(4)

#: Dependency tiers, recovered in this order at every site: names of services (or names with a ``-N`` suffix).
DEPENDENCY_TIERS: tuple[tuple[str, ...], ...] = (("directory",), ("dns",), ("key-escrow",))
_TIER0_SERVICES = len(DEPENDENCY_TIERS)  # 3: hosts of tier-0 services
_REST = _TIER0_SERVICES + 1  # 4

#: Longest plan horizon with shifts (technicians who never cover the work leave hosts at ``inf``).
_MAX_HORIZON_HOURS = 24 * 366 * 3


class RecoveryPath(StrEnum):
    """How a host is brought back (chosen by the first runbook that matches it)."""

    REMEDIATION = "remediation"  # still boots: the signed remediation already in the channel
    CLOUD_RESCUE = "cloud_rescue"  # cloud VM: the provider's rescue tooling (az vm repair, EC2Rescue, gce-rescue)
    REDFISH = "redfish"  # server with a BMC: virtual media boot of a rescue image, one-time boot override, reset
    KEY_UNLOCK = "key_unlock"  # PC with an escrowed, verified key: WinPE/USB with the key scanned as a QR code
    REIMAGE = "reimage"  # encrypted without a usable key
    SITE_VISIT = "site_visit"  # kiosk / POS / anything else by hand at the site


# ------------------------------------------------------------------ the model


@dataclass(frozen=True, slots=True)
class Shift:
    """``technicians`` working ``hours`` from ``start`` (local time of the site) on ``days`` (0 = Monday)."""

    start: time
    hours: float
    technicians: int
    days: frozenset[int] = frozenset(range(7))


@dataclass(frozen=True, slots=True)
class RecoveryModel:
    """Hands-on recovery effort per host class in minutes, technicians per site and their shifts.

    Defaults (sources in docs/recovery.md): a PC with its BitLocker key scanned as a barcode 3–5 min (4); a
    server ≈ 20 min; a cloud VM by detaching and repairing its OS disk 30–60 min (45); a host whose encrypted
    disk has no usable escrowed key is reimaged, 1–2 h (90).  Without shifts a site's technicians work round
    the clock; ``shifts`` (per site) and ``default_shifts`` (every other site) limit them to their hours.
    """

    pc_minutes: float = 4.0
    server_minutes: float = 20.0
    cloud_vm_minutes: float = 45.0
    reimage_minutes: float = 90.0
    technicians_per_site: int = 2
    technicians: Mapping[str, int] = field(default_factory=dict)  # per-site overrides (round the clock)
    default_shifts: tuple[Shift, ...] = ()
    shifts: Mapping[str, tuple[Shift, ...]] = field(default_factory=dict)  # per-site shifts

    def minutes(self) -> FloatArray:
        """Minutes per class, in the order of :data:`CLASSES`."""
        return np.asarray([self.pc_minutes, self.server_minutes, self.cloud_vm_minutes, self.reimage_minutes],
                          np.float64)


@dataclass(frozen=True, slots=True)
class Automation:
    """An automated path: ``concurrency`` hosts at once, none longer than ``cap_minutes``."""

    concurrency: int
    cap_minutes: float
    executor: str  # "ansible" | "redfish" | "cloud" | "command"


@dataclass(frozen=True, slots=True)
class RunbookStep:
    """One step of a runbook: a playbook, a Redfish action, a cloud command, a command or a manual step."""

    name: str
    executor: str  # "ansible" | "redfish" | "cloud" | "command" | "manual"
    playbook: str = ""
    action: str = ""  # redfish: insert_media | boot_once | reset; cloud: repair
    image: str = ""  # redfish virtual media URL
    command: tuple[str, ...] = ()
    provider: str = ""  # cloud: azure | aws | gcp


@dataclass(frozen=True, slots=True)
class Runbook:
    """Hosts matching ``match`` (a selector) take ``path``; ``minutes`` overrides the class minutes."""

    name: str
    match: str
    path: RecoveryPath
    steps: tuple[RunbookStep, ...]
    minutes: float | None = None
    automated: Automation | None = None
    needs_key: bool = False
    description: str = ""


# ------------------------------------------------------------------ classification and order


def classify(server: BoolArray, cloud: BoolArray, encrypted: BoolArray, key_ready: BoolArray) -> IntArray:
    """Host class per host (see the module rules); ``key_ready`` all true gives the "keys usable" what-if."""
    cls = np.full(len(server), PC, np.int64)
    cls[server] = SERVER
    cls[cloud] = CLOUD_VM
    cls[encrypted & ~key_ready] = REIMAGE
    return cls


def class_minutes(cls: IntArray, model: RecoveryModel) -> FloatArray:
    """Minutes of hands-on work per host of class ``cls``."""
    return model.minutes()[cls]


def dependency_tier(name: str, tier: int) -> int:
    """0 directory, 1 DNS, 2 key escrow (by service name, or name with a ``-N`` suffix), 3 tier 0, 4 the rest."""
    base = re.sub(r"-\d+$", "", name.strip().lower())
    for i, names in enumerate(DEPENDENCY_TIERS):
        if base in names:
            return i
    return _TIER0_SERVICES if tier == 0 else _REST


def queue_order(site: IntArray, dep_tier: IntArray, host_tier: IntArray, minutes: FloatArray,
                host_id: npt.NDArray[Any]) -> IntArray:
    """Positions in queue order: site, dependency tier, host tier, shortest job, host id (see the rules)."""
    return np.lexsort((host_id, minutes, host_tier, dep_tier, site)).astype(np.int64)


# ------------------------------------------------------------------ capacity


@dataclass(frozen=True, slots=True)
class Capacity:
    """A site's technicians: round the clock (``curve`` None) or cumulative technician-minutes per hour."""

    technicians: int
    curve: FloatArray | None = None  # curve[h] = technician-minutes from hour 0 to hour h
    day_start: FloatArray | None = None  # hour offsets at which each wave (shift or local day) starts

    def at(self, hours: float) -> float:
        """Technician-minutes available from hour 0 to ``hours``."""
        if self.curve is None:
            return self.technicians * 60.0 * max(0.0, hours)
        h = min(max(0.0, hours), len(self.curve) - 1.0)
        lo = int(h)
        if lo >= len(self.curve) - 1:
            return float(self.curve[-1])
        return float(self.curve[lo] + (self.curve[lo + 1] - self.curve[lo]) * (h - lo))

    def when(self, work: FloatArray) -> FloatArray:
        """Hours at which the cumulative technician-minutes reach ``work`` (inf when never)."""
        if self.curve is None:
            if self.technicians <= 0:
                return np.full(len(work), math.inf)
            return work / (self.technicians * 60.0)
        c = self.curve
        h = np.searchsorted(c, work, side="left")
        out = np.full(len(work), math.inf)
        ok = h < len(c)
        hh = h[ok]
        prev = np.maximum(hh - 1, 0)
        span = c[hh] - c[prev]
        frac = np.where(span > 0, (work[ok] - c[prev]) / np.where(span > 0, span, 1.0), 0.0)
        out[ok] = np.where(hh == 0, 0.0, prev + frac)
        return out


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def build_capacity(model: RecoveryModel, site: str, timezone: str, start: datetime, work_minutes: float,
                   cache: dict[tuple[object, ...], Capacity] | None = None, *, from_hours: float = 0.0) -> Capacity:
    """The capacity of ``site`` from ``start`` (aware: the plan's hour 0) for ``work_minutes`` of work from hour
    ``from_hours`` on.  ``cache`` (optional) shares curves between sites with the same time zone and shifts.
    """
    shifts = model.shifts.get(site, model.default_shifts)
    if not shifts:
        return Capacity(technicians=model.technicians.get(site, model.technicians_per_site))
    per_week = sum(s.technicians * s.hours * len(s.days) for s in shifts) * 60.0
    if per_week <= 0:
        return Capacity(technicians=0, curve=np.zeros(1), day_start=np.zeros(1))
    horizon = int(min(_MAX_HORIZON_HOURS, math.ceil(from_hours) + math.ceil(work_minutes / per_week * 168.0) + 24 * 9))
    key = (timezone, shifts)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None and hit.curve is not None and len(hit.curve) > horizon:
            return hit
    tz = _zone(timezone)
    begin = start.astimezone(UTC)
    techs = np.zeros(horizon)
    firsts: set[float] = {0.0}
    day0 = (begin.astimezone(tz) - timedelta(days=1)).date()
    for s in shifts:
        for d in range(horizon // 24 + 3):
            day = day0 + timedelta(days=d)
            if day.weekday() not in s.days:
                continue
            a = (datetime.combine(day, s.start, tzinfo=tz).astimezone(UTC) - begin).total_seconds() / 3600.0
            lo, hi = max(0.0, a), min(float(horizon), a + s.hours)
            if hi <= lo:
                continue
            firsts.add(lo)
            for h in range(math.floor(lo), math.ceil(hi)):
                techs[h] += s.technicians * (min(hi, h + 1.0) - max(lo, float(h)))
    curve = np.r_[0.0, np.cumsum(techs * 60.0)]
    cap = Capacity(technicians=max(s.technicians for s in shifts), curve=curve,
                   day_start=np.asarray(sorted(firsts), np.float64))
    if cache is not None:
        cache[key] = cap
    return cap


# ------------------------------------------------------------------ the schedule


def runs(keys: npt.NDArray[Any]) -> list[tuple[int, int]]:
    """``(start, end)`` of each run of equal values in ``keys`` (sorted or grouped)."""
    if not len(keys):
        return []
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return list(zip(starts.tolist(), np.r_[starts[1:], len(keys)].tolist(), strict=True))


@dataclass(frozen=True, slots=True)
class Lane:
    """An automated lane: ``concurrency`` hosts at once, each at most ``cap_minutes``."""

    name: str
    concurrency: int
    cap_minutes: float


def schedule(site: IntArray, minutes: FloatArray, order: IntArray, capacity: Sequence[Capacity], *,
             lane: IntArray | None = None, lanes: Sequence[Lane] = (), start_hours: float = 0.0,
             ready_hours: FloatArray | None = None) -> FloatArray:
    """Hour each host is done (in input order), following ``order`` (from :func:`queue_order`).

    ``site`` indexes ``capacity``; hosts with ``lane >= 0`` go to that automated lane instead.
    """
    n = len(site)
    done = np.full(n, math.inf)
    if not n:
        return done
    on_lane = lane >= 0 if lane is not None else np.zeros(n, np.bool_)
    o = order[~on_lane[order]]
    s_site = site[o]
    work = minutes[o]
    for a, b in runs(s_site):
        cap = capacity[int(s_site[a])]
        offset = cap.at(start_hours)
        done[o[a:b]] = cap.when(offset + np.cumsum(work[a:b]))
    if lane is not None and lanes:
        _lanes_done(done, order[on_lane[order]], lane, minutes, lanes, start_hours)
    if ready_hours is not None:
        done = np.maximum(done, ready_hours)
    out: FloatArray = np.maximum(done, start_hours)
    return out


def _lanes_done(done: FloatArray, o: IntArray, lane: IntArray, minutes: FloatArray, lanes: Sequence[Lane],
                start_hours: float) -> None:
    """Set ``done`` for the lane hosts ``o`` (in queue order): per lane, batches of ``concurrency`` in that order,
    each taking its longest host (capped); one vectorised pass over every lane at once."""
    if not len(o):
        return
    s_lane = lane[o]
    k = np.argsort(s_lane, kind="stable")  # lanes contiguous, queue order kept within each
    o, s_lane = o[k], s_lane[k]
    conc = np.asarray([ln.concurrency for ln in lanes], np.int64)
    cap = np.asarray([ln.cap_minutes for ln in lanes], np.float64)
    idle = conc[s_lane] <= 0  # a lane that runs nothing never finishes its hosts
    o, s_lane = o[~idle], s_lane[~idle]
    if not len(o):
        return
    new_lane = np.r_[True, s_lane[1:] != s_lane[:-1]]
    lane_starts = np.flatnonzero(new_lane)
    rank = np.arange(len(o)) - np.repeat(lane_starts, np.diff(np.r_[lane_starts, len(o)]))
    batch = rank // conc[s_lane]
    new_batch = new_lane | np.r_[True, batch[1:] != batch[:-1]]
    b_starts = np.flatnonzero(new_batch)
    longest = np.maximum.reduceat(np.minimum(minutes[o], cap[s_lane]), b_starts)
    ends = np.cumsum(longest)
    b_new_lane = new_lane[b_starts]
    first = np.flatnonzero(b_new_lane)
    first_of = np.repeat(first, np.diff(np.r_[first, len(b_starts)]))
    ends = ends - np.where(first_of > 0, ends[np.maximum(first_of - 1, 0)], 0.0)
    done[o] = start_hours + ends[np.cumsum(new_batch) - 1] / 60.0


@dataclass(frozen=True, slots=True)
class Wave:
    """Hosts of one site (or automated lane) done within one shift or local day."""

    site: str
    lane: str  # "" for technicians
    index: int
    start_hours: float
    end_hours: float
    hosts: int


def waves(site: IntArray, done: FloatArray, site_names: Sequence[str], capacity: Sequence[Capacity],
          *, lane: IntArray | None = None, lanes: Sequence[Lane] = (), order: IntArray | None = None) -> tuple[Wave, ...]:
    """Group the hosts into waves (see the rules); never-done hosts are left out.

    ``order``, when given, must list the hosts by site (or lane) with done times not decreasing within each
    (the queue order is such an order); it saves a sort.
    """
    finite = np.isfinite(done)
    on_lane = (lane >= 0) if lane is not None else np.zeros(len(site), np.bool_)
    n_sites = len(site_names)
    group = np.where(on_lane, n_sites + (lane if lane is not None else 0), site)
    if order is not None:
        o = order[finite[order]]
    else:
        sel = np.flatnonzero(finite)
        o = sel[np.lexsort((done[sel], group[sel]))]
    g_sorted = group[o]
    t_sorted = done[o]
    # Each group's wave boundaries: its capacity's shift starts (shared between sites with the same curve),
    # or whole days since the start (round the clock, and every lane).
    key = np.floor(t_sorted / 24.0).astype(np.int64)
    begin = key * 24.0
    curves: dict[int, int] = {}
    bounds_of: list[FloatArray] = []
    which = np.full(n_sites + len(lanes), -1, np.int64)
    for g in range(n_sites):
        b = capacity[g].day_start
        if b is not None and len(b):
            which[g] = curves.setdefault(id(b), len(bounds_of))
            if which[g] == len(bounds_of):
                bounds_of.append(b)
    w_sorted = which[g_sorted]
    for bi, b in enumerate(bounds_of):
        sel = np.flatnonzero(w_sorted == bi)
        k = np.searchsorted(b, t_sorted[sel], side="right") - 1
        key[sel] = k
        begin[sel] = b[np.maximum(k, 0)]
    if not len(o):
        return ()
    new = np.r_[True, (g_sorted[1:] != g_sorted[:-1]) | (key[1:] != key[:-1])]
    first = np.flatnonzero(new)
    last = np.r_[first[1:], len(o)] - 1
    names = [*site_names, *(ln.name for ln in lanes)]
    name_rank = np.argsort(np.argsort(np.asarray(names, dtype=object), kind="stable"), kind="stable")
    g_w = g_sorted[first]
    on_site = g_w < n_sites
    # the order of the waves: start, then site name (lanes have none), then lane name (sites have none)
    site_rank = np.where(on_site, name_rank[g_w] + 1, 0)
    lane_rank = np.where(on_site, 0, name_rank[g_w] + 1)
    starts = begin[first]
    rank = np.lexsort((lane_rank, site_rank, starts))
    out = [Wave(names[g] if g < n_sites else "", "" if g < n_sites else names[g], k, st, en, n)
           for g, k, st, en, n in zip(g_w[rank].tolist(), key[first][rank].tolist(), starts[rank].tolist(),
                                      t_sorted[last][rank].tolist(), (last - first + 1)[rank].tolist(), strict=True)]
    return tuple(out)


def burn_down(done_hours: FloatArray, group: IntArray, n_groups: int, grid: FloatArray) -> IntArray:
    """Hosts of each group not yet done at each grid hour: ``out[g, j]`` counts the hosts of group ``g`` whose
    ``done_hours`` is after ``grid[j]`` (never-done hosts, ``inf`` or ``nan``, are never done).  O(n log grid)."""
    t = np.where(np.isnan(done_hours), math.inf, done_hours)
    # cell j: done after grid[j-1] and at or before grid[j]; cell len(grid): after the last grid point
    cell = np.searchsorted(grid, t, side="left")
    counts = np.bincount(group * (len(grid) + 1) + cell, minlength=n_groups * (len(grid) + 1))
    per = counts.reshape(n_groups, len(grid) + 1)
    # not done at grid[j] = hosts whose cell is above j
    out: IntArray = per[:, ::-1].cumsum(axis=1)[:, ::-1][:, 1:].astype(np.int64)
    return out


# ------------------------------------------------------------------ services


@dataclass(frozen=True, slots=True)
class CriticalStep:
    """One link of a critical path: ``service`` is back at ``hours`` because of ``cause``."""

    service: int
    hours: float
    cause: str  # "dependency" | "group"
    dependency: int = -1  # the service it waited for
    group: int = -1  # the group index whose k-th host set the time
    host: int = -1  # that host (fleet index)


def restore_times(down: Sequence[int], groups: Sequence[Sequence[int]], g_members: Sequence[IntArray],
                  g_min: IntArray, g_lost: IntArray, deps: Sequence[Sequence[int]], scc_order: Sequence[Sequence[int]],
                  done_hours: FloatArray) -> tuple[dict[int, float], dict[int, CriticalStep]]:
    """Hour each service in ``down`` is back, and the cause that set it (see the rules).

    ``scc_order`` lists the strongly connected components of the dependency graph, dependencies first.
    """
    own: dict[int, CriticalStep] = {}
    wanted = set(down)
    for k in down:
        worst = CriticalStep(k, 0.0, "group")
        for g in groups[k]:
            need = int(g_min[g])
            if need <= 0 or not g_lost[g]:
                continue
            members = g_members[g]
            times = done_hours[members]
            if need > len(times):
                worst = CriticalStep(k, math.inf, "group", group=g)
                break
            j = int(np.argpartition(times, need - 1)[need - 1])
            t = float(times[j])
            if t > worst.hours:
                worst = CriticalStep(k, t, "group", group=g, host=int(members[j]))
        own[k] = worst
    out: dict[int, float] = {}
    why: dict[int, CriticalStep] = {}
    for scc in scc_order:
        present = [k for k in scc if k in wanted]
        if not present:
            continue
        best = max((own[k] for k in present), key=lambda c: c.hours)
        for k in present:
            for d in deps[k]:
                if d in out and out[d] > best.hours:
                    best = CriticalStep(k, out[d], "dependency", dependency=d)
        for k in present:
            out[k] = best.hours
            why[k] = best if best.service == k or best.cause == "dependency" else CriticalStep(
                k, best.hours, "dependency", dependency=best.service)
    return out, why


# ------------------------------------------------------------------ runbooks and model as data

_RUNBOOK_KEYS = {"name", "match", "path", "minutes", "automated", "steps", "needs_key", "description"}
_STEP_KEYS = {"name", "executor", "playbook", "action", "image", "command", "provider"}
_AUTOMATED_KEYS = {"concurrency", "cap_minutes", "executor"}
_EXECUTORS = ("ansible", "redfish", "cloud", "command", "manual")
_REDFISH_ACTIONS = ("insert_media", "boot_once", "reset")
_PROVIDERS = ("azure", "aws", "gcp")


class _Issues:
    def __init__(self, where: str) -> None:
        self.where = where
        self.items: list[FieldIssue] = []

    def add(self, fld: str, message: str, expected: str = "") -> None:
        self.items.append(FieldIssue(field=fld, message=message, expected=expected, location=self.where))


def _number(raw: Mapping[str, Any], key: str, fld: str, issues: _Issues, *, lo: float, hi: float,
            integer: bool = False) -> Any:
    v = raw.get(key)
    if v is None:
        return None
    ok = isinstance(v, int if integer else (int, float)) and not isinstance(v, bool) and lo <= v <= hi
    if not ok:
        issues.add(fld, f"is {shown(v)}", f"{'an integer' if integer else 'a number'} from {lo:g} to {hi:g}")
        return None
    return v


def _step(raw: Any, fld: str, issues: _Issues) -> RunbookStep | None:
    if not isinstance(raw, Mapping):
        issues.add(fld, f"is {shown(raw)}", "a mapping with name and executor")
        return None
    for k in sorted(set(raw) - _STEP_KEYS):
        issues.add(f"{fld}.{k}", "is not a step setting", "one of " + ", ".join(sorted(_STEP_KEYS)))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        issues.add(f"{fld}.name", f"is {shown(name)}", "a non-empty string")
    ex = raw.get("executor")
    if ex not in _EXECUTORS:
        issues.add(f"{fld}.executor", f"is {shown(ex)}", "one of " + ", ".join(_EXECUTORS))
        return None
    playbook = raw.get("playbook", "")
    action = raw.get("action", "")
    image = raw.get("image", "")
    provider = raw.get("provider", "")
    command = raw.get("command", ())
    if ex == "ansible" and (not isinstance(playbook, str) or not playbook.endswith((".yml", ".yaml"))):
        issues.add(f"{fld}.playbook", f"is {shown(playbook)}", "a playbook file name ending in .yml or .yaml")
    if ex == "redfish":
        if action not in _REDFISH_ACTIONS:
            issues.add(f"{fld}.action", f"is {shown(action)}", "one of " + ", ".join(_REDFISH_ACTIONS))
        if action == "insert_media" and (not isinstance(image, str) or not image.startswith(("http://", "https://"))):
            issues.add(f"{fld}.image", f"is {shown(image)}", "the http(s) URL of the rescue image")
    if ex == "cloud" and provider not in _PROVIDERS:
        issues.add(f"{fld}.provider", f"is {shown(provider)}", "one of " + ", ".join(_PROVIDERS))
    if ex == "command" and (not isinstance(command, list) or not command
                            or not all(isinstance(c, str) for c in command)):
        issues.add(f"{fld}.command", f"is {shown(command)}", "a list of strings (program and arguments)")
        command = ()
    return RunbookStep(name=str(name or ""), executor=str(ex), playbook=str(playbook or ""), action=str(action or ""),
                       image=str(image or ""), command=tuple(command or ()), provider=str(provider or ""))


def _runbook(raw: Any, i: int, issues: _Issues) -> Runbook | None:
    fld = f"runbooks[{i}]"
    if not isinstance(raw, Mapping):
        issues.add(fld, f"is {shown(raw)}", "a mapping with name, match, path and steps")
        return None
    for k in sorted(set(raw) - _RUNBOOK_KEYS):
        issues.add(f"{fld}.{k}", "is not a runbook setting", "one of " + ", ".join(sorted(_RUNBOOK_KEYS)))
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", name):
        issues.add(f"{fld}.name", f"is {shown(name)}", "a lower-case name of letters, digits and - _ . (at most 63)")
    match = raw.get("match", "")
    if not isinstance(match, str):
        issues.add(f"{fld}.match", f"is {shown(match)}", "a selector string such as platform=cloud (empty: every host)")
        match = ""
    elif match.strip():
        try:
            parse_selector(match)
        except InputError as e:
            issue = e.issues[0] if e.issues else FieldIssue(fld, str(e))
            issues.add(f"{fld}.match", issue.message, issue.expected)
    path = raw.get("path")
    try:
        rpath = RecoveryPath(str(path))
    except ValueError:
        issues.add(f"{fld}.path", f"is {shown(path)}", "one of " + ", ".join(p.value for p in RecoveryPath))
        rpath = RecoveryPath.SITE_VISIT
    minutes = _number(raw, "minutes", f"{fld}.minutes", issues, lo=0.0, hi=1e5)
    auto: Automation | None = None
    araw = raw.get("automated")
    if araw is not None:
        if not isinstance(araw, Mapping):
            issues.add(f"{fld}.automated", f"is {shown(araw)}", "a mapping with concurrency and cap_minutes")
        else:
            for k in sorted(set(araw) - _AUTOMATED_KEYS):
                issues.add(f"{fld}.automated.{k}", "is not an automation setting",
                           "one of " + ", ".join(sorted(_AUTOMATED_KEYS)))
            conc = _number(araw, "concurrency", f"{fld}.automated.concurrency", issues, lo=1, hi=1e6, integer=True)
            cap = _number(araw, "cap_minutes", f"{fld}.automated.cap_minutes", issues, lo=1.0, hi=1e5)
            ex = araw.get("executor", "ansible")
            if ex not in _EXECUTORS[:4]:
                issues.add(f"{fld}.automated.executor", f"is {shown(ex)}", "one of " + ", ".join(_EXECUTORS[:4]))
            auto = Automation(concurrency=int(conc or 1), cap_minutes=float(cap or 90.0), executor=str(ex))
    steps_raw = raw.get("steps")
    steps: list[RunbookStep] = []
    if not isinstance(steps_raw, list) or not steps_raw:
        issues.add(f"{fld}.steps", f"is {shown(steps_raw)}", "a non-empty list of steps")
    else:
        for j, s in enumerate(steps_raw):
            st = _step(s, f"{fld}.steps[{j}]", issues)
            if st is not None:
                steps.append(st)
    needs_key = raw.get("needs_key", rpath is RecoveryPath.KEY_UNLOCK)
    if not isinstance(needs_key, bool):
        issues.add(f"{fld}.needs_key", f"is {shown(needs_key)}", "true or false")
        needs_key = False
    desc = raw.get("description", "")
    return Runbook(name=str(name), match=match.strip(), path=rpath, steps=tuple(steps),
                   minutes=float(minutes) if minutes is not None else None, automated=auto, needs_key=needs_key,
                   description=str(desc or ""))


def runbooks_from_mapping(raw: Any, *, where: str = "runbooks") -> tuple[Runbook, ...]:
    """Runbooks from the YAML document ``{runbooks: [...]}``; every problem at once, naming the field."""
    issues = _Issues(where)
    if not isinstance(raw, Mapping) or not isinstance(raw.get("runbooks"), list):
        issues.add("runbooks", f"is {shown(raw.get('runbooks') if isinstance(raw, Mapping) else raw)}",
                   "a top-level 'runbooks:' list (see examples/recovery/default.yaml)")
        raise InputError("invalid runbooks", issues.items)
    for k in sorted(set(raw) - {"runbooks"}):
        issues.add(k, "is not a runbook file setting", "only 'runbooks'")
    out: list[Runbook] = []
    for i, r in enumerate(raw["runbooks"]):
        rb = _runbook(r, i, issues)
        if rb is not None:
            out.append(rb)
    names = [r.name for r in out]
    for n in sorted({n for n in names if names.count(n) > 1}):
        issues.add("runbooks", f"name {shown(n)} is used twice", "unique runbook names")
    if issues.items:
        raise InputError("invalid runbooks", issues.items)
    return tuple(out)


_MODEL_KEYS = {"pc_minutes", "server_minutes", "cloud_vm_minutes", "reimage_minutes", "technicians_per_site",
               "technicians", "shifts", "default_shifts"}


def _shifts(raw: Any, fld: str, issues: _Issues) -> tuple[Shift, ...]:
    if not isinstance(raw, list):
        issues.add(fld, f"is {shown(raw)}", "a list of {start: 'HH:MM', hours, technicians, days}")
        return ()
    out: list[Shift] = []
    for i, s in enumerate(raw):
        f = f"{fld}[{i}]"
        if not isinstance(s, Mapping):
            issues.add(f, f"is {shown(s)}", "a mapping with start, hours and technicians")
            continue
        start = s.get("start")
        try:
            t = time.fromisoformat(str(start)) if isinstance(start, str) else None
        except ValueError:
            t = None
        if t is None:
            issues.add(f"{f}.start", f"is {shown(start)}", "a local time 'HH:MM'")
        hours = _number(s, "hours", f"{f}.hours", issues, lo=0.5, hi=24.0)
        techs = _number(s, "technicians", f"{f}.technicians", issues, lo=0, hi=1e5, integer=True)
        if hours is None:
            issues.add(f"{f}.hours", "is missing", "hours from 0.5 to 24")
        if techs is None:
            issues.add(f"{f}.technicians", "is missing", "an integer")
        days_raw = s.get("days", list(range(7)))
        if not isinstance(days_raw, list) or not all(isinstance(d, int) and 0 <= d <= 6 for d in days_raw):
            issues.add(f"{f}.days", f"is {shown(days_raw)}", "a list of week days 0 (Monday) to 6 (Sunday)")
            days_raw = []
        if t is not None and hours is not None and techs is not None:
            out.append(Shift(t, float(hours), int(techs), frozenset(days_raw)))
    return tuple(out)


def model_from_mapping(raw: Any, *, where: str = "recovery model", base: RecoveryModel | None = None) -> RecoveryModel:
    """A :class:`RecoveryModel` from a mapping (minutes, technicians, shifts), over ``base``'s values."""
    issues = _Issues(where)
    model = base or RecoveryModel()
    if raw is None:
        return model
    if not isinstance(raw, Mapping):
        raise InputError.single("recovery", f"is {shown(raw)}", expected="a mapping of recovery settings", location=where)
    for k in sorted(set(raw) - _MODEL_KEYS):
        issues.add(k, "is not a recovery model setting", "one of " + ", ".join(sorted(_MODEL_KEYS)))
    vals: dict[str, Any] = {}
    for k in ("pc_minutes", "server_minutes", "cloud_vm_minutes", "reimage_minutes"):
        v = _number(raw, k, k, issues, lo=0.0, hi=1e5)
        if v is not None:
            vals[k] = float(v)
    v = _number(raw, "technicians_per_site", "technicians_per_site", issues, lo=0, hi=1e6, integer=True)
    if v is not None:
        vals["technicians_per_site"] = int(v)
    techs = raw.get("technicians")
    if techs is not None:
        if not isinstance(techs, Mapping) or not all(
                isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in techs.values()):
            issues.add("technicians", f"is {shown(techs)}", "a mapping of site to a number of technicians (≥ 0)")
        else:
            vals["technicians"] = {str(k): int(c) for k, c in techs.items()}
    if raw.get("default_shifts") is not None:
        vals["default_shifts"] = _shifts(raw["default_shifts"], "default_shifts", issues)
    shifts = raw.get("shifts")
    if shifts is not None:
        if not isinstance(shifts, Mapping):
            issues.add("shifts", f"is {shown(shifts)}", "a mapping of site to a list of shifts")
        else:
            vals["shifts"] = {str(k): _shifts(v, f"shifts.{k}", issues) for k, v in shifts.items()}
    if issues.items:
        raise InputError("invalid recovery model", issues.items)
    from dataclasses import replace  # noqa: PLC0415 - local: keeps the import list of the module short
    return replace(model, **vals)
