"""Tests for the synthetic fleet generator (ringfence.sim.fleetgen)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from graphlib import CycleError, TopologicalSorter
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringfence.domain.model import DiskEncryption, Host, Inventory, OsFamily, Platform, Service
from ringfence.errors import InputError
from ringfence.sim import fleetgen
from ringfence.sim.fleetgen import DEFAULT_START, generate_fleet

EDR_PREFIXES = ("Microsoft Defender", "Falcon", "SentinelOne", "Trellix", "Sophos", "Trend", "Symantec",
                "ESET", "Cortex", "Carbon Black")
FAMILY_OF_ENCRYPTION = {
    DiskEncryption.BITLOCKER: OsFamily.WINDOWS,
    DiskEncryption.FILEVAULT: OsFamily.MACOS,
    DiskEncryption.LUKS: OsFamily.LINUX,
}


@cache
def valid_zone(name: str) -> bool:
    ZoneInfo(name)  # raises for an unknown zone
    return True


def check_invariants(inv: Inventory, start: datetime = DEFAULT_START) -> None:
    """Everything that must hold for any generated fleet."""
    tenants = {t.id for t in inv.tenants}
    hosts = {h.id: h for h in inv.hosts}
    services = {s.id: s for s in inv.services}
    assert len(tenants) == len(inv.tenants)
    assert len(hosts) == len(inv.hosts)
    assert len(services) == len(inv.services)
    assert len({h.hostname for h in inv.hosts}) == len(inv.hosts)
    assert len({t.name for t in inv.tenants}) == len(inv.tenants)

    members: dict[str, set[str]] = {}
    for svc in inv.services:
        assert svc.tenant in tenants
        assert 0 <= svc.tier <= 3
        assert svc.rto_minutes is not None
        assert svc.mtd_minutes is not None
        assert 0 < svc.rto_minutes < svc.mtd_minutes
        if svc.tier == 0:
            assert svc.rto_minutes <= 60
            assert svc.mtd_minutes == 240
        if svc.regulatory_function:
            assert svc.tier <= 1
        assert 1 <= len(svc.redundancy_groups) <= 3
        assert len({g.name for g in svc.redundancy_groups}) == len(svc.redundancy_groups)
        for group in svc.redundancy_groups:
            assert 2 <= len(group.hosts) <= 8
            assert len(set(group.hosts)) == len(group.hosts)
            assert 1 <= group.min_healthy < len(group.hosts)
            assert not group.selector
            for host_id in group.hosts:
                host = hosts[host_id]
                assert host.tenant == svc.tenant
                assert host.labels["role"] == "server"
                assert svc.id in host.services
                members.setdefault(host_id, set()).add(svc.id)
        for dep in svc.depends_on:
            assert services[dep].tenant == svc.tenant
            assert dep != svc.id
    try:
        tuple(TopologicalSorter({s.id: s.depends_on for s in inv.services}).static_order())
    except CycleError:  # pragma: no cover - the failure message is the point
        pytest.fail("depends_on has a cycle")

    sizes = Counter(h.tenant for h in inv.hosts)
    assert set(sizes) == tenants
    for tenant in tenants:
        if sizes[tenant] >= 2:
            for name in ("directory", "key-escrow"):
                svc = services[f"{tenant}/{name}"]
                assert svc.tier == 0
                assert svc.name == name

    for host in inv.hosts:
        check_host(host, members.get(host.id, set()), services, start)


def check_host(host: Host, member_of: set[str], services: dict[str, Service], start: datetime) -> None:
    assert set(host.services) == member_of
    assert len(host.services) == len(set(host.services))
    assert host.labels["role"] in ("server", "workstation")
    if host.services:
        assert host.labels["app"] == services[host.services[0]].name
        assert host.tier == min(services[s].tier for s in host.services)
    else:
        assert "app" not in host.labels
        assert host.tier == int(host.labels.get("tier", "3"))
    if "canary" in host.labels:
        assert host.labels["canary"] == ""
    assert uuid.UUID(host.id).version == 4
    assert str(uuid.UUID(host.id)) == host.id
    assert host.os_name
    assert host.os_version
    assert host.os_build
    assert host.arch in ("x86_64", "arm64")
    assert host.site
    assert host.hostname.startswith(host.site.replace("-", "") + "-")
    assert len(host.country) == 2
    assert host.country.isupper()
    assert valid_zone(host.timezone)
    if host.platform is Platform.CLOUD:
        assert host.cloud_provider in ("aws", "azure", "gcp")
        assert host.cloud_region
        if host.cloud_provider != "azure":
            assert host.cloud_zone.startswith(host.cloud_region)
    else:
        assert (host.cloud_provider, host.cloud_region, host.cloud_zone) == ("", "", "")
    if host.encryption is DiskEncryption.NONE:
        assert not host.recovery_key_escrowed
    else:
        assert FAMILY_OF_ENCRYPTION[host.encryption] is host.os_family
    if host.recovery_key_verified:
        assert host.recovery_key_escrowed
    if host.os_family is OsFamily.MACOS:
        assert host.hardware_vendor == "Apple Inc."
        assert host.labels["role"] == "workstation"
    assert host.last_seen is None or host.last_seen <= start
    for agent in host.agents:
        assert agent.vendor
        assert agent.product
        assert agent.version
        if agent.boot_start:
            assert agent.kernel_mode
            assert host.os_family is OsFamily.WINDOWS


# ---------------------------------------------------------------- input


@pytest.mark.parametrize("hosts", [0, -5, True, 2.5, "100", None])
def test_bad_hosts_is_an_input_error_naming_hosts(hosts: object) -> None:
    with pytest.raises(InputError) as caught:
        generate_fleet(hosts)  # type: ignore[arg-type]  # the wrong type is the point
    assert [issue.field for issue in caught.value.issues] == ["hosts"]
    assert caught.value.issues[0].expected


@pytest.mark.parametrize("tenants", [0, 11, -1])
def test_bad_tenants_is_an_input_error(tenants: int) -> None:
    with pytest.raises(InputError) as caught:
        generate_fleet(10, tenants=tenants)
    assert caught.value.issues[0].field == "tenants"


def test_naive_start_is_an_input_error() -> None:
    with pytest.raises(InputError) as caught:
        generate_fleet(10, start=datetime(2026, 1, 1))
    assert caught.value.issues[0].field == "start"


def test_public_names() -> None:
    assert fleetgen.__all__ == ["DEFAULT_START", "generate_fleet"]


# ---------------------------------------------------------------- determinism


def test_same_seed_same_fleet() -> None:
    assert generate_fleet(3000, seed=7) == generate_fleet(3000, seed=7)


def test_different_seed_different_fleet() -> None:
    a, b = generate_fleet(300, seed=1), generate_fleet(300, seed=2)
    assert a != b
    assert {h.id for h in a.hosts}.isdisjoint(h.id for h in b.hosts)


def test_last_seen_is_measured_from_start() -> None:
    start = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    inv = generate_fleet(2000, seed=3, start=start)
    seen = [h.last_seen for h in inv.hosts if h.last_seen is not None]
    assert all(start - timedelta(days=30) <= t <= start for t in seen)
    recent = sum(start - t <= timedelta(minutes=15) for t in seen)
    assert recent / len(inv.hosts) > 0.9


def test_tenant_count() -> None:
    assert len(generate_fleet(1999).tenants) == 1
    assert len(generate_fleet(4000).tenants) == 2
    assert len(generate_fleet(50, tenants=50).tenants) == 50


# ---------------------------------------------------------------- a 20,000-host fleet


@pytest.fixture(scope="module")
def fleet() -> Inventory:
    return generate_fleet(20_000, seed=0)


def share(inv: Inventory, predicate: Callable[[Host], bool]) -> float:
    return sum(1 for h in inv.hosts if predicate(h)) / len(inv.hosts)


def test_fleet_invariants(fleet: Inventory) -> None:
    assert len(fleet.hosts) == 20_000
    check_invariants(fleet)


def test_tenants_are_skewed(fleet: Inventory) -> None:
    sizes = sorted(Counter(h.tenant for h in fleet.hosts).values(), reverse=True)
    assert len(sizes) == 10
    assert sizes[0] > 3 * sizes[-1]
    assert sizes[0] / 20_000 > 0.2


@pytest.mark.parametrize(
    ("name", "predicate", "low", "high"),
    [
        ("windows", lambda h: h.os_family is OsFamily.WINDOWS, 0.78, 0.88),
        ("linux", lambda h: h.os_family is OsFamily.LINUX, 0.05, 0.14),
        ("macos", lambda h: h.os_family is OsFamily.MACOS, 0.05, 0.11),
        ("servers", lambda h: h.labels["role"] == "server", 0.15, 0.25),
        ("canary", lambda h: "canary" in h.labels, 0.005, 0.015),
        ("crowdstrike", lambda h: any(a.vendor == "CrowdStrike" for a in h.agents), 0.18, 0.27),
        ("defender", lambda h: any(a.product == "Microsoft Defender for Endpoint" for a in h.agents), 0.2, 0.4),
        ("no edr", lambda h: not any(a.product.startswith(EDR_PREFIXES) for a in h.agents), 0.005, 0.03),
        ("bitlocker", lambda h: h.encryption is DiskEncryption.BITLOCKER, 0.55, 0.75),
        ("cloud", lambda h: h.platform is Platform.CLOUD, 0.02, 0.1),
        ("tier 0", lambda h: h.tier == 0, 0.001, 0.05),
        ("tier 3", lambda h: h.tier == 3, 0.8, 0.97),
        ("windows 11 24H2", lambda h: h.os_version == "24H2" and h.os_build.startswith("26100"), 0.25, 0.45),
        ("windows 10 22H2", lambda h: h.os_build.startswith("19045."), 0.1, 0.2),
        ("never seen", lambda h: h.last_seen is None, 0.001, 0.01),
    ],
)
def test_shares(fleet: Inventory, name: str, predicate: Callable[[Host], bool], low: float, high: float) -> None:
    assert low <= share(fleet, predicate) <= high, name


def test_key_escrow_is_partial(fleet: Inventory) -> None:
    encrypted = [h for h in fleet.hosts if h.encryption is DiskEncryption.BITLOCKER]
    escrowed = [h for h in encrypted if h.recovery_key_escrowed]
    verified = [h for h in escrowed if h.recovery_key_verified]
    assert 0.8 <= len(escrowed) / len(encrypted) <= 0.9
    assert 0.65 <= len(verified) / len(escrowed) <= 0.75


def test_edr_is_kernel_mode_and_boot_start_on_windows(fleet: Inventory) -> None:
    for host in fleet.hosts:
        edr = [a for a in host.agents if a.product.startswith(EDR_PREFIXES)]
        assert len(edr) <= 1
        for agent in edr:
            assert agent.kernel_mode is (host.os_family is not OsFamily.MACOS)
            assert agent.boot_start is (host.os_family is OsFamily.WINDOWS)


def test_tenants_standardise_on_one_edr(fleet: Inventory) -> None:
    by_tenant: dict[str, Counter[str]] = {}
    for host in fleet.hosts:
        for agent in host.agents:
            if agent.product.startswith(EDR_PREFIXES):
                by_tenant.setdefault(host.tenant, Counter())[agent.product] += 1
    for counts in by_tenant.values():
        assert counts.most_common(1)[0][1] / counts.total() > 0.6


def test_vms_and_cloud_hosts_carry_their_guest_tools(fleet: Inventory) -> None:
    vmware = [h for h in fleet.hosts if h.hardware_vendor == "VMware, Inc."]
    assert vmware
    assert all(any(a.vendor == "VMware" for a in h.agents) for h in vmware)
    assert all(h.platform is Platform.VM for h in vmware)
    cloud = [h for h in fleet.hosts if h.platform is Platform.CLOUD]
    assert {h.cloud_provider for h in cloud} == {"aws", "azure", "gcp"}
    assert {h.hardware_vendor for h in cloud} >= {"Amazon EC2", "Google"}


def test_physical_servers_mostly_have_oob(fleet: Inventory) -> None:
    physical = [h for h in fleet.hosts if h.platform is Platform.PHYSICAL and h.labels["role"] == "server"]
    assert 0.75 <= sum(h.oob_management for h in physical) / len(physical) <= 0.95


def test_sites_span_countries_and_time_zones(fleet: Inventory) -> None:
    assert len({h.country for h in fleet.hosts}) >= 5
    assert len({h.timezone for h in fleet.hosts}) >= 5
    assert all(h.subdivision for h in fleet.hosts if h.country in ("US", "DE", "AU", "CA"))


def test_services(fleet: Inventory) -> None:
    assert 150 <= len(fleet.services) <= 250
    assert sum(s.tier == 0 for s in fleet.services) < len(fleet.services) / 3
    assert any(s.regulatory_function for s in fleet.services) or not any(
        s.name in ("payments", "ehr", "clearing") for s in fleet.services
    )
    others = [s for s in fleet.services if s.name not in ("directory", "key-escrow")]
    on_directory = sum(f"{s.tenant}/directory" in s.depends_on for s in others)
    assert on_directory / len(others) > 0.8
    serving = [h for h in fleet.hosts if h.services]
    assert all(h.labels["role"] == "server" for h in serving)
    assert sum(len(h.services) > 1 for h in serving) / len(serving) < 0.2


def test_hostnames(fleet: Inventory) -> None:
    names = {h.hostname.split("-")[1] for h in fleet.hosts}
    assert {"ws", "mac", "dc", "kes", "srv"} <= names
    dc = [h for h in fleet.hosts if h.hostname.split("-")[1] == "dc"]
    assert all(h.os_family is OsFamily.WINDOWS and h.labels["app"] == "directory" for h in dc)


# ---------------------------------------------------------------- small fleets, any seed


@settings(max_examples=40, deadline=None)
@given(data=st.data(), hosts=st.integers(min_value=1, max_value=400), seed=st.integers(min_value=0, max_value=2**64))
def test_invariants_hold_for_any_small_fleet(data: st.DataObject, hosts: int, seed: int) -> None:
    tenants = data.draw(st.none() | st.integers(min_value=1, max_value=min(hosts, 8)), label="tenants")
    inv = generate_fleet(hosts, seed, tenants=tenants)
    assert len(inv.hosts) == hosts
    assert len(inv.tenants) == (tenants or 1)
    check_invariants(inv)
