"""Tests for the fleet resilience assessment (ringfence.domain.assessment): hand-computed fleets first."""

from __future__ import annotations

import math
from functools import cache
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringfence.domain.assessment import Fleet, assess, band, hhi, selector_value, top
from ringfence.domain.assessment_model import KeyEscrow, RecoveryModel
from ringfence.domain.model import (
    DiskEncryption,
    Host,
    HostId,
    InstalledAgent,
    Inventory,
    OsFamily,
    Platform,
    RedundancyGroup,
    Service,
    ServiceId,
    TenantId,
)
from ringfence.domain.selector import compile_predicate, parse
from ringfence.errors import InputError
from ringfence.sim.fleetgen import generate_fleet

FALCON = InstalledAgent("CrowdStrike", "Falcon Sensor", "7.16", kernel_mode=True, boot_start=True)
DEFENDER = InstalledAgent("Microsoft", "Microsoft Defender for Endpoint", "4.18", kernel_mode=True, boot_start=True)
S1 = InstalledAgent("SentinelOne", "SentinelOne Agent", "24.1", kernel_mode=True, boot_start=True)
MONITOR = InstalledAgent("Datadog", "Datadog Agent", "7.58")


def host(hid: str, **kw: Any) -> Host:
    kw.setdefault("tenant", "t1")
    kw.setdefault("os_family", OsFamily.WINDOWS)
    kw.setdefault("site", "fra-1")
    return Host(id=HostId(hid), hostname=hid, **kw)


def service(sid: str, *groups: RedundancyGroup, tier: int = 2, depends_on: tuple[str, ...] = (), **kw: Any) -> Service:
    return Service(id=ServiceId(sid), name=kw.pop("name", sid), tenant=TenantId(kw.pop("tenant", "t1")), tier=tier,
                   redundancy_groups=groups, depends_on=tuple(ServiceId(d) for d in depends_on), **kw)


def group(name: str, k: int, *hosts: str) -> RedundancyGroup:
    return RedundancyGroup(name=name, min_healthy=k, hosts=tuple(HostId(h) for h in hosts))


def impact(a: Any, sid: str) -> Any:
    return next(s for s in (*a.services_down, *a.services_degraded) if s.service == sid)


# --------------------------------------------------------------------------- redundancy and dependencies


def test_group_with_exactly_min_healthy_left_is_degraded_and_below_is_down() -> None:
    hosts = [host(f"h{i}", agents=(FALCON,) if i < 2 else (DEFENDER,)) for i in range(4)]
    hosts += [host("x1", agents=(FALCON,)), host("x2", agents=(FALCON,)), host("x3", agents=(DEFENDER,))]
    fleet = Fleet(hosts, [
        service("survives", group("g", 2, "h0", "h1", "h2", "h3")),  # 2 of 4 fail, 2 = min_healthy survive
        service("falls", group("g", 2, "x1", "x2", "x3")),  # 2 of 3 fail, 1 < 2 survives
        service("untouched", group("g", 1, "h2", "h3")),
    ])
    a = assess(fleet, "agent.vendor=CrowdStrike")
    assert a.hosts_down == 4
    assert [s.service for s in a.services_down] == ["falls"]
    assert [s.service for s in a.services_degraded] == ["survives"]
    falls, survives = impact(a, "falls"), impact(a, "survives")
    assert (falls.status, falls.cause, falls.failed_groups) == ("down", "direct", ("g",))
    assert "1 of 3 survive, needs 2" in falls.detail
    assert (survives.status, survives.failed_groups) == ("degraded", ("g",))
    assert "2 of 4 survive" in survives.detail


def test_dependency_chain_goes_down_transitively_with_its_path() -> None:
    hosts = [host("c1", agents=(FALCON,)), host("c2", agents=(FALCON,)), host("b1"), host("b2"), host("a1"), host("a2")]
    fleet = Fleet(hosts, [
        service("A", group("g", 1, "a1", "a2"), depends_on=("B",)),
        service("B", group("g", 1, "b1", "b2"), depends_on=("C",)),
        service("C", group("g", 1, "c1", "c2")),
        service("D", group("g", 1, "a1")),
    ])
    a = assess(fleet, "agent.vendor=CrowdStrike")
    by_id = {s.service: s for s in a.services_down}
    assert set(by_id) == {"A", "B", "C"}
    assert (by_id["C"].cause, by_id["C"].via) == ("direct", ())
    assert (by_id["B"].cause, by_id["B"].via) == ("transitive", ("C",))
    assert (by_id["A"].cause, by_id["A"].via) == ("transitive", ("B", "C"))
    assert a.services_degraded == ()


def test_dependency_cycle_terminates() -> None:
    hosts = [host("a1", agents=(FALCON,)), host("b1")]
    fleet = Fleet(hosts, [service("A", group("g", 1, "a1"), depends_on=("B",)),
                          service("B", group("g", 1, "b1"), depends_on=("A",))])
    a = assess(fleet, "agent.vendor=CrowdStrike")
    assert {s.service for s in a.services_down} == {"A", "B"}
    assert math.isfinite(a.recovery.recovery_hours)


def test_group_given_by_selector() -> None:
    hosts = [host("w1", labels={"app": "web"}, agents=(FALCON,)), host("w2", labels={"app": "web"}), host("o1")]
    fleet = Fleet(hosts, [service("web", RedundancyGroup("g", 2, selector="labels.app=web"))])
    assert impact(assess(fleet, "agent.vendor=CrowdStrike"), "web").status == "down"
    with pytest.raises(InputError) as err:
        Fleet(hosts, [service("web", RedundancyGroup("g", 1, selector="colour=red"))])
    assert "service web group g" in str(err.value)


# --------------------------------------------------------------------------- concentration and exposure


def test_hhi_known_answer() -> None:
    assert hhi([0.5, 0.3, 0.2]) == pytest.approx(3800)
    assert band(3800) == "high"
    assert [band(x) for x in (1499.9, 1500, 2500, 2500.1)] == ["unconcentrated", "moderate", "moderate", "high"]
    fams = [OsFamily.WINDOWS] * 5 + [OsFamily.LINUX] * 3 + [OsFamily.MACOS] * 2
    fleet = Fleet([host(f"h{i}", os_family=f) for i, f in enumerate(fams)], [])
    c = assess(fleet, "id=h0").hhi["os_family"]
    assert c.hhi == pytest.approx(3800)
    assert round(c.effective_number, 2) == 2.63
    assert c.band == "high"
    assert c.shares == (("windows", 0.5), ("linux", 0.3), ("macos", 0.2))


def test_edr_concentration_splits_hosts_with_two_vendors_and_ignores_non_edr() -> None:
    vpn = InstalledAgent("Palo Alto Networks", "GlobalProtect", "6.2", kernel_mode=True)
    hosts = [host("a", agents=(FALCON,)), host("b", agents=(FALCON, S1)), host("c", agents=(vpn,)),
             host("d", os_family=OsFamily.MACOS, agents=(InstalledAgent("CrowdStrike", "Falcon Sensor", "7"),))]
    c = Fleet(hosts, []).concentration()["edr_vendor"]
    assert dict(c.shares) == {"CrowdStrike": 0.75, "SentinelOne": 0.25}
    assert c.hhi == pytest.approx(75.0**2 + 25.0**2)


def test_cloud_and_hypervisor_buckets() -> None:
    hosts = [host("p"), host("v", platform=Platform.VM, hardware_vendor="VMware, Inc."),
             host("c", platform=Platform.CLOUD, cloud_provider="aws", cloud_region="us-east-1")]
    conc = Fleet(hosts, []).concentration()
    assert dict(conc["cloud_region"].shares) == pytest.approx({"on-premises": 2 / 3, "aws/us-east-1": 1 / 3})
    assert dict(conc["hypervisor"].shares) == {"VMware, Inc.": 0.5, "aws": 0.5}


def test_tier_weighted_exposure() -> None:
    hosts = [host("t0", tier=0, agents=(FALCON,)), host("t3", tier=3, agents=(FALCON, MONITOR)),
             host("u3", tier=3, agents=(MONITOR,)), host("u1", tier=1)]
    exposure = {e.component: e for e in Fleet(hosts, []).exposure()}
    assert set(exposure) == {"CrowdStrike Falcon Sensor"}  # user-mode agents are not exposure
    e = exposure["CrowdStrike Falcon Sensor"]
    assert (e.hosts, e.share, e.kernel_mode, e.boot_start) == (2, 0.5, True, True)
    assert e.tier_weighted_share == pytest.approx((8 + 1) / (8 + 1 + 1 + 4))


# --------------------------------------------------------------------------- recovery


def test_key_readiness_escrow_records_override_host_flags() -> None:
    bl = DiskEncryption.BITLOCKER
    hosts = [
        host("a", encryption=bl, recovery_key_escrowed=True, recovery_key_verified=True),  # record says unverified
        host("b", encryption=bl),  # record says verified
        host("c", encryption=bl, recovery_key_escrowed=True, recovery_key_verified=True),  # no record: flags
        host("d", encryption=bl),  # no record, no flags
        host("e"),  # not encrypted
    ]
    escrow = {"a": KeyEscrow("a", "k1", "entra-id", verified=False), "b": KeyEscrow("b", "k2", "entra-id", verified=True)}
    flags_only = assess(Fleet(hosts, []), "tenant=t1").recovery
    assert (flags_only.encrypted_hosts, flags_only.key_readiness) == (4, 0.5)
    with_records = assess(Fleet(hosts, [], escrow), "tenant=t1").recovery
    assert with_records.key_readiness == 0.5
    assert with_records.effort_hours_by_class["reimage"] == pytest.approx(2 * 90 / 60)  # a and d
    only_a = assess(Fleet(hosts, [], escrow), "id=a").recovery
    assert only_a.key_readiness == 0.0
    assert assess(Fleet(hosts, []), "id=a").recovery.key_readiness == 1.0


def test_eta_per_site_with_given_technicians() -> None:
    hosts = [host(f"pc{i}") for i in range(3)]
    hosts += [host("srv", labels={"role": "server"}), host("vm", platform=Platform.CLOUD, site="ams-1"),
              host("oob", site="ams-1", oob_management=True)]
    fleet = Fleet(hosts, [])
    rec = assess(fleet, "tenant=t1", recovery=RecoveryModel(technicians_per_site=2)).recovery
    # fra-1: 3 PCs x 4 min + 1 server x 20 min = 32 min over 2 technicians; ams-1: 45 + 4 min over 2.
    assert rec.eta_hours_by_site == pytest.approx({"fra-1": 16 / 60, "ams-1": 24.5 / 60})
    assert rec.recovery_hours == pytest.approx(24.5 / 60)
    assert rec.effort_hours_by_class == pytest.approx({"pc": 16 / 60, "server": 20 / 60, "cloud_vm": 45 / 60, "reimage": 0})
    assert rec.hands_on_share == pytest.approx(4 / 6)
    burn = rec.burn_down_by_site["fra-1"]
    assert burn[0] == (0.0, 4)
    assert burn[-1][0] == pytest.approx(16 / 60)
    assert burn[-1][1] == 0
    assert all(a[1] >= b[1] for a, b in pairwise(burn))
    more = assess(fleet, "tenant=t1", recovery=RecoveryModel(technicians_per_site=2, technicians={"fra-1": 4})).recovery
    assert more.eta_hours_by_site["fra-1"] == pytest.approx(8 / 60)
    none = assess(fleet, "tenant=t1", recovery=RecoveryModel(technicians={"fra-1": 0})).recovery
    assert none.eta_hours_by_site["fra-1"] == math.inf


def test_key_escrow_and_directory_hosts_are_recovered_first() -> None:
    hosts = [host(f"pc{i}") for i in range(5)] + [host("dc1", labels={"role": "server"}), host("dc2", labels={"role": "server"})]
    fleet = Fleet(hosts, [service("t1/directory", group("dcs", 1, "dc1", "dc2"), tier=0, name="directory",
                                  rto_minutes=60, mtd_minutes=240)])
    a = assess(fleet, "tenant=t1", recovery=RecoveryModel(technicians_per_site=1))
    assert a.recovery.first == ("t1/directory",)
    # The first domain controller is back after 20 min, before any PC; so no breach of the 60 min RTO.
    assert a.recovery.rto_breaches == ()
    assert a.recovery.recovery_hours == pytest.approx((5 * 4 + 2 * 20) / 60)


def test_rto_and_mtd_breaches() -> None:
    hosts = [host(f"s{i}", labels={"role": "server"}) for i in range(4)]
    fleet = Fleet(hosts, [
        # One technician: s0 back at 20 min, s1 at 40, s2 at 60, s3 at 80 (hosts in fleet order, same tier).
        service("ok", group("g", 1, "s0", "s1"), rto_minutes=30, mtd_minutes=60),  # back at 20 min
        service("late", group("g", 2, "s0", "s1"), rto_minutes=30, mtd_minutes=60),  # back at 40 min
        service("gone", group("g", 1, "s3"), rto_minutes=30, mtd_minutes=60),  # back at 80 min
        service("dep", group("g", 1, "s0"), depends_on=("gone",), rto_minutes=30, mtd_minutes=120),  # waits for gone
    ])
    rec = assess(fleet, "tenant=t1", recovery=RecoveryModel(technicians_per_site=1)).recovery
    breaches = {b.service: (b.breaks, round(b.restore_hours * 60)) for b in rec.rto_breaches}
    assert breaches == {"late": ("rto", 40), "gone": ("mtd", 80), "dep": ("rto", 80)}


# --------------------------------------------------------------------------- SPOFs, recommendations, top


def spof_fleet() -> Fleet:
    hosts = [host(f"ci{i}", tier=0, agents=(FALCON, MONITOR), os_build="20348.1") for i in range(6)]
    hosts += [host(f"pay{i}", tier=1, agents=(FALCON if i < 2 else DEFENDER,), os_build=f"20348.{i}") for i in range(3)]
    hosts += [host(f"low{i}", tier=2, agents=(FALCON,)) for i in range(2)]
    hosts += [host(f"ws{i}", agents=(S1,)) for i in range(20)]
    return Fleet(hosts, [
        service("check-in", group("fra", 2, *[f"ci{i}" for i in range(3)]), group("ams", 2, *[f"ci{i}" for i in range(3, 6)]),
                tier=0, regulatory_function="passenger-handling"),
        service("payments", group("g", 2, "pay0", "pay1", "pay2"), tier=1),  # 2 of 3 on Falcon: fatal for k=2
        service("reports", group("g", 1, "low0", "low1"), tier=2),  # tier 2: not reported
        service("crew", group("g", 1, "ws0", "pay2"), tier=1, depends_on=("check-in",)),
    ])


def test_common_mode_spof_all_replicas_run_the_same_component() -> None:
    spofs = spof_fleet().spofs()
    by = {(s.service, s.kind, s.name): s for s in spofs}
    falcon = by[("check-in", "component", "CrowdStrike Falcon Sensor")]
    assert falcon.message == "all 6 replicas of check-in run CrowdStrike Falcon Sensor"
    assert (falcon.tier, falcon.replicas) == (0, 6)
    assert by[("check-in", "os_build", "20348.1")].message == "all 6 replicas of check-in run OS build 20348.1"
    assert ("check-in", "vendor", "CrowdStrike") not in by  # the component already names it
    assert ("check-in", "component", "Datadog Agent") not in by  # user mode
    pay = by[("payments", "component", "CrowdStrike Falcon Sensor")]
    assert pay.message.startswith("2 of 3 replicas of payments run CrowdStrike Falcon Sensor")
    assert not any(s.service in ("reports", "crew") for s in spofs)


def test_recommendations_are_ranked_with_numbers() -> None:
    bl = DiskEncryption.BITLOCKER
    fleet = spof_fleet()
    hosts = [*fleet.hosts, *[host(f"enc{i}", encryption=bl, agents=(FALCON,)) for i in range(4)]]
    a = assess(Fleet(hosts, fleet.services), "agent.vendor=CrowdStrike")
    assert [r.rank for r in a.recommendations] == list(range(1, len(a.recommendations) + 1))
    actions = [r.action for r in a.recommendations]
    # Splitting the rings protects all four services down (8 + 4 + 4 + 2 = 18 and a little for the hosts).
    assert actions[0] == "split tenant t1's rings"
    pin = next(r for r in a.recommendations if r.action == "pin tier-0 groups of check-in to N-1")
    assert pin.numbers["impact"] == 12  # check-in (tier 0) and crew (tier 1), down only through it
    assert "escrow and verify recovery keys for 4 hosts" in actions
    assert "diversify EDR on service check-in" in actions
    assert "split tenant t1's rings" in actions
    keys = next(r for r in a.recommendations if r.action.startswith("escrow"))
    assert keys.numbers["hosts"] == 4
    assert keys.numbers["key_readiness"] == 0.0
    scores = [r.numbers["impact"] for r in a.recommendations]
    assert scores == sorted(scores, reverse=True)
    assert a.critical_functions == ("passenger-handling",)


def test_top_ranks_by_critical_services_then_hosts_and_reproduces_with_assess() -> None:
    fleet = spof_fleet()
    entries = top(fleet, 50)
    assert [e.rank for e in entries] == list(range(1, len(entries) + 1))
    first = entries[0]
    assert (first.kind, first.name, first.critical_services_down) == ("vendor", "CrowdStrike", 3)
    keys = [(-e.critical_services_down, -e.hosts_down) for e in entries]
    assert keys == sorted(keys)
    # SentinelOne has the most hosts (20) but takes no tier-0/1 service down, so it ranks below.
    s1 = next(e for e in entries if e.name == "SentinelOne")
    assert s1.hosts_down == 20
    assert s1.rank > next(e for e in entries if e.name == "20348.1").rank
    # Falcon's hosts are exactly CrowdStrike's: the component row is folded into the vendor row.
    assert not any(e.kind == "component" and e.name == "CrowdStrike Falcon Sensor" for e in entries)
    for e in entries:
        a = assess(fleet, e.selector)
        assert a.hosts_down == e.hosts_down, e
        assert len(a.services_down) == e.services_down
        assert sum(1 for s in a.services_down if s.tier <= 1) == e.critical_services_down
    assert len(top(fleet, 2)) == 2


def test_selector_values_are_quoted_when_needed() -> None:
    assert selector_value("CrowdStrike") == "CrowdStrike"
    assert selector_value("eastus") == "eastus"
    assert selector_value("Falcon Sensor") == '"Falcon Sensor"'
    assert selector_value("or") == '"or"'
    assert selector_value('a "b"') == '"a \\"b\\""'
    weird = InstalledAgent('Acme "Q" Corp', "Shield (Kernel)", "1", kernel_mode=True)
    fleet = Fleet([host("a", agents=(weird,)), host("b")], [])
    entries = top(fleet, 10)
    assert entries[0].selector.startswith('agent.vendor="Acme \\"Q\\" Corp"')
    assert assess(fleet, entries[0].selector).down_hosts == ("a",)


def test_bad_selector_names_the_unknown_field_and_lists_valid_ones() -> None:
    fleet = Fleet([host("a")], [])
    with pytest.raises(InputError) as err:
        assess(fleet, "colour=red")
    text = str(err.value)
    assert "'colour'" in text
    assert "agent.vendor" in text
    assert "os_build" in text
    assert err.value.issues[0].field == "selector"


# --------------------------------------------------------------------------- generated fleets


@cache
def generated() -> tuple[Inventory, Fleet]:
    inv = generate_fleet(5000, 1)
    return inv, Fleet(inv.hosts, inv.services)


def test_smoke_on_a_generated_fleet() -> None:
    inv, fleet = generated()
    a = assess(fleet, "agent.vendor=CrowdStrike")
    direct = sum(1 for h in inv.hosts if any(x.vendor.lower() == "crowdstrike" for x in h.agents))
    assert a.hosts_down == direct == len(a.down_hosts) > 0
    assert a.hosts_total == len(inv.hosts)
    assert 0 <= a.hosts_down_share <= 1
    ids = {s.id for s in inv.services}
    assert {s.service for s in a.services_down} <= ids
    assert {s.service for s in a.services_degraded} <= ids
    assert not {s.service for s in a.services_down} & {s.service for s in a.services_degraded}
    assert sum(a.blast_radius["tenant"].values()) == a.hosts_down == sum(a.blast_radius["tier"].values())
    for c in a.hhi.values():
        assert 0 <= c.hhi <= 10_000
        assert all(0 <= s <= 1 for _, s in c.shares)
        assert sum(s for _, s in c.shares) == pytest.approx(1) or not c.shares
    for e in a.exposure:
        assert 0 <= e.share <= 1
        assert 0 <= e.tier_weighted_share <= 1
    r = a.recovery
    assert 0 <= r.key_readiness <= 1
    assert 0 <= r.hands_on_share <= 1
    assert r.recovery_hours == max(r.eta_hours_by_site.values())
    assert sum(n for (_, n), *_ in (b for b in r.burn_down_by_site.values())) == a.hosts_down
    assert r.first  # directory and key escrow of the CrowdStrike tenants
    assert a.recommendations
    assert a.as_json()["hosts_down"] == a.hosts_down
    # Spofs on a generated fleet include "all replicas run" cases.
    assert any(s.message.startswith("all ") for s in a.spofs)


SELECTORS = [
    "agent.vendor=CrowdStrike", "os_family=windows", "os_family=linux", "tier<=1", "site=fra-1",
    "cloud.provider=aws", "platform=vm", "label=canary", "labels.role=server", "agent.kernel_mode=true",
    "encryption=bitlocker", "recovery_key_verified=true", "hostname~*-srv-*", "agent.vendor=Microsoft",
    "country in (DE, FR)", "service~*directory", "agent.vendor=VMware and agent.kernel_mode=true",
]


def combined(draw: st.DrawFn) -> str:
    atoms = draw(st.lists(st.sampled_from(SELECTORS), min_size=1, max_size=3))
    ops = draw(st.lists(st.sampled_from([" and ", " or ", " and not "]), min_size=len(atoms) - 1, max_size=len(atoms) - 1))
    out = atoms[0]
    for op, atom in zip(ops, atoms[1:], strict=True):
        out += op + atom
    return out


scenarios = st.composite(combined)


@settings(max_examples=30, deadline=None)
@given(scenarios())
def test_vectorised_selector_agrees_with_the_predicate(expr: str) -> None:
    inv, fleet = generated()
    pred = compile_predicate(parse(expr))
    assert np.array_equal(fleet.mask(expr), np.fromiter((pred(h) for h in inv.hosts), bool, len(inv.hosts)))


@settings(max_examples=25, deadline=None)
@given(scenarios(), scenarios())
def test_failure_is_monotone_under_or(s: str, t: str) -> None:
    _, fleet = generated()
    a, both = assess(fleet, s), assess(fleet, f"({s}) or ({t})")
    assert set(a.down_hosts) <= set(both.down_hosts)
    assert {x.service for x in a.services_down} <= {x.service for x in both.services_down}
    hit = {x.service for x in (*both.services_down, *both.services_degraded)}
    assert {x.service for x in a.services_degraded} <= hit


def test_top_on_a_generated_fleet_reproduces_with_assess() -> None:
    _, fleet = generated()
    entries = top(fleet, 8)
    assert len(entries) == 8
    for e in entries:
        a = assess(fleet, e.selector)
        assert (a.hosts_down, len(a.services_down)) == (e.hosts_down, e.services_down), e
