"""The shared recovery planner (ringfence.domain.recovery and assessment.plan_recovery): hand-computed cases."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from ringfence.domain.assessment import Fleet, assess, plan_recovery
from ringfence.domain.model import DiskEncryption, Host, HostId, OsFamily, Platform, RedundancyGroup, Service, ServiceId, TenantId
from ringfence.domain.recovery import (
    Capacity,
    Lane,
    RecoveryModel,
    Shift,
    build_capacity,
    burn_down,
    dependency_tier,
    model_from_mapping,
    queue_order,
    runbooks_from_mapping,
    schedule,
)
from ringfence.domain.selector import compile_predicate, parse
from ringfence.errors import InputError
from ringfence.sim.fleetgen import generate_fleet

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "recovery"
BL = DiskEncryption.BITLOCKER


def host(hid: str, **kw: Any) -> Host:
    kw.setdefault("tenant", "t1")
    kw.setdefault("os_family", OsFamily.WINDOWS)
    kw.setdefault("site", "fra-1")
    return Host(id=HostId(hid), hostname=hid, **kw)


def service(sid: str, *members: str, k: int = 1, tier: int = 2, **kw: Any) -> Service:
    return Service(id=ServiceId(sid), name=kw.pop("name", sid), tenant=TenantId("t1"), tier=tier,
                   redundancy_groups=(RedundancyGroup("g", k, tuple(HostId(m) for m in members)),), **kw)


def test_escrow_recommendation_counts_a_server_as_a_server() -> None:
    # The issue's bug: a key-less server unlocked was counted as a 4-minute PC, not a 20-minute server.
    hosts = [host("srv", labels={"role": "server"}, encryption=BL), host("pc", encryption=BL),
             host("vm", platform=Platform.CLOUD, encryption=BL)]
    a = assess(Fleet(hosts, []), "tenant=t1")
    keys = next(r for r in a.recommendations if r.action.startswith("escrow"))
    # (90 - 20) + (90 - 4) + (90 - 45) minutes saved.
    assert keys.numbers["technician_hours_saved"] == pytest.approx(round((70 + 86 + 45) / 60, 1))


def test_queue_order_is_explicit_and_ends_with_the_host_id() -> None:
    # Same site, tier and minutes: the host id decides, not the order the hosts were listed in.
    hosts = [host("b"), host("c"), host("a")]
    plan = plan_recovery(Fleet(hosts, []), np.arange(3), RecoveryModel(technicians_per_site=1))
    done = dict(zip([hosts[i].id for i in plan.host_index.tolist()], plan.done_hours.tolist(), strict=True))
    assert done == pytest.approx({"a": 4 / 60, "b": 8 / 60, "c": 12 / 60})
    # Dependency tier beats host tier beats shortest job.
    order = queue_order(np.zeros(4, np.int64), np.array([4, 4, 2, 4]), np.array([3, 0, 3, 3]),
                        np.array([4.0, 20.0, 90.0, 1.0]), np.array(["w", "x", "y", "z"]))
    assert order.tolist() == [2, 1, 3, 0]


def test_dependency_tiers_directory_dns_key_escrow_tier0_rest() -> None:
    assert [dependency_tier(n, t) for n, t in [("directory", 2), ("DNS-2", 2), ("key-escrow", 1), ("payments", 0),
                                               ("payments", 1)]] == [0, 1, 2, 3, 4]
    hosts = [host("pc"), host("dns1", labels={"role": "server"}), host("dc1", labels={"role": "server"})]
    fleet = Fleet(hosts, [service("dir", "dc1", name="directory"), service("dns", "dns1", name="dns")])
    plan = plan_recovery(fleet, np.arange(3), RecoveryModel(technicians_per_site=1))
    done = dict(zip([hosts[i].id for i in plan.host_index.tolist()], plan.done_hours.tolist(), strict=True))
    assert done["dc1"] < done["dns1"] < done["pc"]
    assert plan.eta_hours_by_service == pytest.approx({"dir": 20 / 60, "dns": 40 / 60})


def test_shifts_follow_the_site_time_zone() -> None:
    # One technician 09:00-17:00 local in New York (UTC-4 in July); the plan starts 12:00 UTC = 08:00 local.
    model = RecoveryModel(default_shifts=(Shift(time(9), 8.0, 1),))
    start = datetime(2024, 7, 19, 12, 0, tzinfo=UTC)
    cap = build_capacity(model, "nyc", "America/New_York", start, 600.0)
    # Nothing in the first hour, 60 minutes by 14:00 UTC, 480 by 21:00 UTC, then nothing until the next day.
    assert cap.at(1.0) == 0.0
    assert cap.at(3.0) == pytest.approx(120.0)
    assert cap.at(9.0) == pytest.approx(480.0)
    assert cap.at(20.0) == pytest.approx(480.0)
    done = cap.when(np.array([30.0, 480.0, 540.0]))
    assert done.tolist() == pytest.approx([1.5, 9.0, 26.0])  # next shift 09:00 local = hour 25, plus 60 min
    hosts = [host(f"pc{i}", site="nyc", timezone="America/New_York") for i in range(3)]
    plan = plan_recovery(Fleet(hosts, []), np.arange(3), model, start=start)
    assert plan.eta_hours_by_site["nyc"] == pytest.approx(1 + 12 / 60)
    assert plan.waves[0].hosts == 3
    with pytest.raises(InputError) as e:
        plan_recovery(Fleet(hosts, []), np.arange(3), model)
    assert e.value.issues[0].field == "start"


def test_automated_lanes_run_in_batches_without_technicians() -> None:
    books = runbooks_from_mapping({"runbooks": [
        {"name": "cloud", "match": "platform=cloud", "path": "cloud_rescue", "minutes": 120,
         "automated": {"concurrency": 2, "cap_minutes": 90}, "steps": [{"name": "r", "executor": "cloud", "provider": "azure"}]},
    ]})
    hosts = [host(f"vm{i}", platform=Platform.CLOUD) for i in range(5)] + [host("pc")]
    plan = plan_recovery(Fleet(hosts, []), np.arange(6), RecoveryModel(technicians_per_site=0), books)
    done = dict(zip([hosts[i].id for i in plan.host_index.tolist()], plan.done_hours.tolist(), strict=True))
    # Batches of two, 90 minutes each (capped): 1.5 h, 3 h, 4.5 h; the PC waits for technicians that do not exist.
    assert [done[f"vm{i}"] for i in range(5)] == pytest.approx([1.5, 1.5, 3.0, 3.0, 4.5])
    assert done["pc"] == np.inf


def test_many_lanes_in_one_pass_equal_each_lane_alone() -> None:
    """The vectorised lanes (thousands of them, e.g. one per site) equal running each lane by itself."""
    rng = np.random.default_rng(5)
    n = 3000
    lanes = [Lane(f"l{i}", int(rng.integers(0, 5)), float(rng.integers(10, 90))) for i in range(40)]
    lane = rng.integers(-1, len(lanes), n).astype(np.int64)
    minutes = rng.uniform(1, 120, n)
    site = np.zeros(n, np.int64)
    order = rng.permutation(n).astype(np.int64)
    done = schedule(site, minutes, order, [Capacity(0)], lane=lane, lanes=lanes, start_hours=2.0)
    for li, ln in enumerate(lanes):
        sel = order[lane[order] == li]
        if ln.concurrency <= 0:
            assert np.all(np.isinf(done[sel]))
            continue
        t = 2.0
        for b in range(0, len(sel), ln.concurrency):
            t += float(np.minimum(minutes[sel[b:b + ln.concurrency]], ln.cap_minutes).max()) / 60.0
            assert done[sel[b:b + ln.concurrency]] == pytest.approx(t)
    assert np.all(np.isinf(done[lane < 0]))  # no technicians


def test_burn_down_counts_hosts_not_yet_done() -> None:
    d = np.array([0.5, 1.0, 2.0, np.inf, np.nan, 3.0])
    g = np.array([0, 0, 0, 1, 1, 1])
    assert burn_down(d, g, 2, np.array([0.0, 1.0, 2.5, 3.0])).tolist() == [[3, 1, 0, 0], [3, 3, 3, 2]]


def test_ready_and_start_hours() -> None:
    done = schedule(np.zeros(2, np.int64), np.array([60.0, 60.0]), np.array([0, 1]), [Capacity(1)], start_hours=1.0,
                    ready_hours=np.array([0.0, 5.0]))
    assert done.tolist() == [2.0, 5.0]


def test_critical_path_names_the_dependency_and_the_host() -> None:
    hosts = [host("s0", labels={"role": "server"}), host("s1", labels={"role": "server"})]
    fleet = Fleet(hosts, [service("db", "s1"), service("app", "s0", depends_on=(ServiceId("db"),), rto_minutes=30)])
    plan = plan_recovery(fleet, np.arange(2), RecoveryModel(technicians_per_site=1))
    assert plan.critical_path[0].startswith("app back at 0.67 h: waits for db")
    assert "s1" in plan.critical_path[1]
    assert [b.service for b in plan.rto_breaches] == ["app"]


def test_example_runbooks_are_valid() -> None:
    books = runbooks_from_mapping(yaml.safe_load((EXAMPLES / "default.yaml").read_text()))
    assert [b.path.value for b in books][-1] == "site_visit"


@pytest.mark.parametrize(("doc", "field"), [
    ({"runbooks": [{"name": "x", "path": "teleport", "steps": [{"name": "s", "executor": "manual"}]}]}, "runbooks[0].path"),
    ({"runbooks": [{"name": "x", "path": "reimage", "match": "colour=red", "steps": [{"name": "s", "executor": "manual"}]}]},
     "runbooks[0].match"),
    ({"runbooks": [{"name": "x", "path": "redfish", "steps": [{"name": "s", "executor": "redfish", "action": "smash"}]}]},
     "runbooks[0].steps[0].action"),
    ({"runbooks": [{"name": "x", "path": "redfish", "steps": [], "minuets": 3}]}, "runbooks[0].minuets"),
    ({"runbooks": [{"name": "x", "path": "reimage", "automated": {"concurrency": 0},
                    "steps": [{"name": "s", "executor": "manual"}]}]}, "runbooks[0].automated.concurrency"),
    ({"runbook": []}, "runbooks"),
])
def test_bad_runbooks_name_the_field(doc: Any, field: str) -> None:
    with pytest.raises(InputError) as e:
        runbooks_from_mapping(doc)
    assert field in [i.field for i in e.value.issues]


def test_model_from_mapping() -> None:
    m = model_from_mapping({"pc_minutes": 5, "shifts": {"fra-1": [{"start": "08:00", "hours": 8, "technicians": 3,
                                                                    "days": [0, 1, 2, 3, 4]}]}})
    assert m.pc_minutes == 5.0
    assert m.shifts["fra-1"][0] == Shift(time(8), 8.0, 3, frozenset(range(5)))
    with pytest.raises(InputError) as e:
        model_from_mapping({"pc_minutes": -1, "shifts": {"x": [{"start": "25:00", "hours": 8, "technicians": 1}]}})
    assert {i.field for i in e.value.issues} == {"pc_minutes", "shifts.x[0].start"}


def test_simulator_uses_the_same_minutes_as_the_planner() -> None:
    from ringfence.sim.scenario import scenario_from_mapping  # the simulator is heavy to import

    sc = scenario_from_mapping({"name": "x", "recovery": {"workstation_minutes": 5, "no_key_minutes": 60}})
    model = sc.recovery.planner()
    assert (model.pc_minutes, model.server_minutes, model.reimage_minutes) == (5.0, 20.0, 65.0)


def test_replan_from_the_previous_plan_equals_a_fresh_plan() -> None:
    hosts = [host(f"h{i:02d}", site=f"s{i % 3}", labels={"role": "server"} if i % 4 == 0 else {},
                  encryption=BL if i % 5 == 0 else DiskEncryption.NONE) for i in range(40)]
    fleet = Fleet(hosts, [])
    first = plan_recovery(fleet, np.arange(40), RecoveryModel(technicians_per_site=1))
    left = np.arange(40)[np.arange(40) % 7 != 0]
    fresh = plan_recovery(fleet, left, RecoveryModel(technicians_per_site=1), start_hours=0.5)
    again = plan_recovery(fleet, left, RecoveryModel(technicians_per_site=1), start_hours=0.5, previous=first)
    assert again.done_hours.tolist() == pytest.approx(fresh.done_hours.tolist())
    assert again.eta_hours_by_site == pytest.approx(fresh.eta_hours_by_site)


@pytest.mark.parametrize("expr", [
    "oob_management=true", "recovery_key_verified=true", "recovery_key_escrowed=false", "encryption!=none",
    "platform=cloud and cloud.provider=azure", "cloud.region=eastus", "hardware_vendor~Dell*", "os_build=19045.5131",
    "tier<=1", "site=nyc-2", "tenant!=acme", "os_family=windows",
])
def test_runbook_selectors_on_profile_fields_agree_with_the_predicate(expr: str) -> None:
    """Selectors on fields of the host profile are evaluated per profile; the answer is the predicate's."""
    inv = generate_fleet(3000, 2)
    fleet = Fleet(inv.hosts, inv.services)
    pred = compile_predicate(parse(expr))
    want = np.fromiter((pred(h) for h in inv.hosts), bool, len(inv.hosts))
    assert np.array_equal(fleet.mask(expr), want)
    assert 0 < want.sum() < len(want) or expr in ("os_family=windows", "tenant!=acme")  # a real split


def _waves_one_group_at_a_time(site: Any, done: Any, names: list[str], capacity: list[Capacity], lane: Any,
                               lanes: list[Lane]) -> list[tuple[str, str, int, float, float, int]]:
    """The waves rule written plainly, group by group (the oracle for the vectorised :func:`waves`)."""
    out = []
    groups: dict[tuple[str, str], list[float]] = {}
    for i in np.flatnonzero(np.isfinite(done)).tolist():
        g = ("", lanes[lane[i]].name) if lane[i] >= 0 else (names[site[i]], "")
        groups.setdefault(g, []).append(float(done[i]))
    for (s, ln), times in groups.items():
        bounds = capacity[names.index(s)].day_start if s else None
        by: dict[int, list[float]] = {}
        for t in sorted(times):
            k = int(np.searchsorted(bounds, t, side="right") - 1) if bounds is not None else int(t // 24)
            by.setdefault(k, []).append(t)
        for k, ts in by.items():
            begin = float(bounds[max(k, 0)]) if bounds is not None else k * 24.0
            out.append((s, ln, k, begin, max(ts), len(ts)))
    return sorted(out, key=lambda w: (w[3], w[0], w[1]))


def test_waves_in_one_pass_equal_the_rule_group_by_group() -> None:
    from ringfence.domain.recovery import waves

    rng = np.random.default_rng(11)
    start = datetime(2024, 7, 19, 4, 9, tzinfo=UTC)
    model = RecoveryModel(default_shifts=(Shift(time(8), 8.0, 2), Shift(time(20), 6.0, 1)))
    zones = ["Europe/Berlin", "America/New_York", "Asia/Tokyo"]
    names = [f"s{i}" for i in range(9)]
    cache: dict[tuple[object, ...], Capacity] = {}
    capacity = [build_capacity(model, nm, zones[i % 3], start, 5000.0, cache) if i % 4 else Capacity(3)
                for i, nm in enumerate(names)]
    n = 4000
    site = rng.integers(0, len(names), n).astype(np.int64)
    lanes = [Lane("redfish", 5, 60.0), Lane("azure", 10, 90.0)]
    lane = np.where(rng.random(n) < 0.2, rng.integers(0, 2, n), -1).astype(np.int64)
    done = rng.uniform(0, 200, n)
    done[rng.random(n) < 0.05] = np.inf
    got = [(w.site, w.lane, w.index, w.start_hours, w.end_hours, w.hosts)
           for w in waves(site, done, names, capacity, lane=lane, lanes=lanes)]
    assert got == _waves_one_group_at_a_time(site, done, names, capacity, lane, lanes)
    assert len(got) > 100
