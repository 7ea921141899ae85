"""A realistic, deterministic synthetic fleet for the simulator and for tests.

:func:`generate_fleet` returns an :class:`~ringfence.domain.model.Inventory`
of tenants, hosts and services.  The same ``seed`` always gives the same
fleet (only :class:`random.Random` seeded with it is used; no global random
state, no wall clock: ``last_seen`` is derived from ``start``).  It is built
for scale: about 100,000 hosts per second on one core, so a million-host
fleet takes about ten seconds.

The shares below are approximate and market-like, chosen to be plausible
rather than exact; the sources are rough guides, not citations.

Tenants
    ``max(1, min(50, hosts // 2000))`` by default, named after the usual
    fictitious companies with an industry (``Contoso Bank``, ``Northwind
    Airlines``).  Host counts follow a Zipf law (exponent 1) with jitter, so
    a few tenants are large and most are small; every tenant gets at least
    ``min(10, hosts // tenants)`` hosts.  A tenant has a home region
    (Americas, EMEA, APAC) and 1 to about 12 sites, most of them in that
    region; larger tenants have more sites.

Sites
    37 sites in 31 cities of 17 countries (US in 8 states and 4 time zones,
    CA, BR, GB (England and Scotland), IE, NL, DE (HE, BY, BE), FR, CH, ES,
    SE, PL, IN, SG, JP, AU, ZA), named ``fra-1``, ``fra-2``, ``nyc-1``.
    ``country`` is ISO 3166-1 alpha-2, ``subdivision`` the ISO 3166-2 suffix
    where holidays differ by region (US states, CA provinces, GB nations,
    DE and AU states, ...), ``timezone`` an IANA name.  Each site maps to the
    nearest AWS, Azure and GCP region (``us-east-1``, ``eastus``,
    ``europe-west1``) with real zone names; Azure regions without
    availability zones give an empty ``cloud_zone``.

Roles
    Each tenant has 15-25 % servers (label ``role=server``), the rest are
    workstations (``role=workstation``).  About 1 % of hosts carry the label
    ``canary`` (value ``""``).  About 2.5 % of workstations are labelled
    ``tier=2`` and 0.3 % ``tier=1`` (check-in desks, clinical or trading
    workstations).

Operating systems (StatCounter, Lansweeper and Spiceworks surveys 2024-25,
skewed to enterprise)
    Workstations: Windows 88 % (Windows 11 24H2 45 %, 23H2 30 %, Windows 10
    22H2 20 %, 11 22H2 5 %; 85 % Enterprise, 15 % Pro; builds 26100, 22631,
    19045, 22621 with the current and two older monthly revisions), macOS
    10 % (15.1, 15.0.1, 14.7.1, 14.7, 14.6.1; builds such as ``24B83`` and
    ``23G93``), Linux 2 % (Ubuntu 24.04 and 22.04).  Servers: Windows Server
    60 % (2016 10 %, 2019 30 %, 2022 45 %, 2025 15 %; builds 14393, 17763,
    20348, 26100), Linux 40 % (Ubuntu 24.04/22.04/20.04 20/25/10 %, RHEL 9
    20 %, RHEL 8 15 %, Debian 12 10 %; ``os_build`` is the kernel release).
    Overall about 83 % Windows, 9 % Linux, 8 % macOS.  ``arch`` is
    ``arm64`` on Apple silicon, Snapdragon Surface laptops and AWS Graviton,
    otherwise ``x86_64``.

Hardware and platform (IDC/Gartner PC and server vendor shares)
    Workstations: physical Dell Latitude/OptiPlex/Precision, HP
    EliteBook/ProBook/EliteDesk, Lenovo ThinkPad/ThinkCentre, Microsoft
    Surface, Apple MacBook Pro/Air and Mac mini; about 5 % VMware Horizon
    VDI (``VMware, Inc.``/``VMware7,1``) and 2 % Azure Virtual Desktop.
    Servers: about 31 % physical (Dell PowerEdge, HPE ProLiant, Lenovo
    ThinkSystem, Cisco UCS), 48 % VMs (VMware, Hyper-V ``Microsoft
    Corporation``/``Virtual Machine``, Nutanix AHV), 21 % cloud split
    AWS/Azure/GCP about 47/35/18 (Synergy Research: ``Amazon EC2``/
    ``m5.xlarge``, ``Microsoft Corporation``/``Standard_D4s_v5``,
    ``Google``/``n2-standard-4``).

EDR (IDC and Gartner endpoint-security share 2023-24, by endpoints)
    Host shares targeted across the fleet: Microsoft Defender for Endpoint
    27 %, CrowdStrike Falcon Sensor 22 %, SentinelOne 9 %, Trellix 8 %,
    Sophos 7 %, Trend Micro 7 %, Broadcom Symantec 6 %, ESET 5 %, Palo Alto
    Cortex XDR 5 %, Broadcom Carbon Black 4 %.  Each tenant standardises on
    one primary EDR, which 85-97 % of its hosts run; primaries are dealt to
    tenants (largest first) against those targets, and the remaining hosts
    draw from what is left.  With ten tenants (20,000 hosts) CrowdStrike
    lands at 19.5-24 % over 60 seeds and Defender, which takes the tenants
    too large for any other vendor, at 25-38 %; with 50 tenants all shares
    are within a point or two of their targets.  A single tenant is a single
    draw.  A quarter of the tenants run a second vendor on 60 % of their
    servers.
    1.5 % of hosts have no EDR.  EDR agents are ``kernel_mode`` on Windows
    and Linux, and ``boot_start`` on Windows; on macOS they are system
    extensions (user mode), as Apple requires since macOS 11.  Versions are
    the vendor's current release and one or two before it.

Other agents
    A VPN/ZTNA client chosen per tenant (Zscaler Client Connector,
    GlobalProtect, Cisco Secure Client, Netskope, FortiClient) on 85 % of
    physical workstations (kernel mode on Windows); a server backup agent
    per tenant (Veeam with its kernel-mode changed-block driver, Commvault,
    Rubrik, Cohesity) on 85 % of physical servers, 20 % of VMs and 35 % of
    cloud hosts; endpoint backup (Druva inSync, CrashPlan) on 12 %
    of workstations; a monitoring agent per tenant (Datadog, Zabbix, Splunk
    Universal Forwarder, Azure Monitor Agent, Dynatrace; user mode) on 85 %
    of servers; VMware Tools on every VMware VM, Nutanix Guest Tools on AHV
    VMs and the cloud's guest agent on every cloud host.

Disk encryption and recovery
    BitLocker on 92 % of physical Windows workstations, 35 % of physical
    Windows servers, 15 % of Windows VMs and 25 % of Windows VMs in Azure
    (Azure Disk Encryption); FileVault on 95 % of Macs; LUKS on 70 % of
    physical Linux workstations, 15 % of physical Linux servers and 5 % of
    Linux VMs.  The recovery key is
    escrowed for 85 % of encrypted hosts (60 % for LUKS) and the escrow was
    verified for 70 % of those.  ``oob_management`` (iDRAC/iLO/XCC on 85 %
    of physical servers, Intel AMT on 8 % of physical workstations, the
    hypervisor console on 95 % of VMs, a serial console on 30-40 % of cloud
    hosts), ``local_admin`` (LAPS or similar, 60-92 %) and ``usb_boot``
    (virtual media on 70 % of physical servers, 25 % of PCs, 5 % of Macs,
    never in the cloud) follow the platform.  ``last_seen`` is within the
    15 minutes before ``start`` for 95.5 % of hosts, 1-30 days before for
    4 %, and ``None`` (never reported) for 0.5 %.

Services
    About one per 100 hosts of a tenant, at least three per tenant with two
    or more hosts: a tier-0 ``directory`` (Active Directory, domain
    controllers at up to three sites), a tier-0 ``key-escrow`` (BitLocker
    recovery-key escrow, depends on ``directory``), then business services
    named for the tenant's industry (``check-in``, ``payments``, ``ehr``,
    ``pos`` ...) and common ones (``email``, ``erp``, ``identity`` ...),
    with ``-2``, ``-3`` suffixes once a catalogue runs out.  Tiers: few
    tier 0; industry-critical services are mostly tier 0-1.  RTO/MTD in
    minutes by tier: 0 → 30-60/240, 1 → 120-240/720-1440, 2 → 480-1440/
    2880-4320, 3 → 2880-4320/10080.  90 % of business services depend on
    ``directory`` and 75 % on ``key-escrow``, plus up to two earlier services
    of the same tenant, so ``depends_on`` is acyclic.  Tier-0/1 services of
    a regulated kind carry a ``regulatory_function`` (``payments``,
    ``clearing``, ``patient-care`` ...).  Each service has one to three
    redundancy groups, one per site, of 2-8 servers of one OS family with
    ``1 <= min_healthy < len(hosts)`` (one OS family per service, except
    where a small tenant has to reuse servers).  Group hosts list the service in
    ``Host.services`` (a host may serve several once a site's free servers
    run out), carry ``app=<name of their first service>`` and take the most
    critical tier of what they serve; other hosts have tier 3 unless
    labelled.  Hostnames name site, kind and a number: ``ams1-ws-000123``,
    ``ams1-mac-000007``, ``fra2-sql-004``, ``nyc1-dc-001``, ``lon1-srv-012``.

Tenants with a single host have no services (a redundancy group needs two
servers).  Hosts are listed tenant by tenant, largest tenant first, servers
before workstations.  Host ids are UUID version 4 strings drawn from the
seeded generator.  Hosts with identical labels share one label mapping; treat
``Host.labels`` as read-only, as its ``Mapping`` type says.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import accumulate
from typing import Generic, TypeVar

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
    Tenant,
    TenantId,
)
from ringfence.errors import InputError, shown

__all__ = ["DEFAULT_START", "generate_fleet"]

DEFAULT_START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
"""The moment ``last_seen`` is measured back from unless ``start`` is given."""

_T = TypeVar("_T")

# Family index used by the per-family tables.
_WIN, _LNX, _MAC = 0, 1, 2
_FAMILIES = (OsFamily.WINDOWS, OsFamily.LINUX, OsFamily.MACOS)
_FAMILY_INDEX = {f: i for i, f in enumerate(_FAMILIES)}

_WS, _SRV = "workstation", "server"


@dataclass(frozen=True, slots=True)
class _Table(Generic[_T]):
    """A weighted choice: ``items[bisect(cum, random() * total)]``."""

    items: tuple[_T, ...]
    cum: tuple[float, ...]
    total: float

    @classmethod
    def of(cls, pairs: Sequence[tuple[_T, float]]) -> _Table[_T]:
        kept = [(item, w) for item, w in pairs if w > 0]
        cum = tuple(accumulate(w for _, w in kept))
        return cls(tuple(item for item, _ in kept), cum, cum[-1])

    def pick(self, random_: Callable[[], float]) -> _T:
        return self.items[bisect(self.cum, random_() * self.total)]


# --------------------------------------------------------------------------
# Sites
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Site:
    name: str
    compact: str
    country: str
    subdivision: str
    timezone: str
    region: str
    weight: float
    clouds: Mapping[str, tuple[str, tuple[str, ...]]]


_AWS_ZONES_ODD = {"ap-northeast-1": "acd", "us-west-1": "bc", "ca-central-1": "abd"}
_AZURE_NO_ZONES = {"westus", "ukwest", "canadaeast", "southindia", "australiasoutheast"}
_GCP_ZONES_ODD = {"europe-west1": "bcd", "us-east1": "bcd", "us-central1": "abcf"}

# city, country, subdivision, IANA zone, home region, weight, AWS, Azure, GCP, sites
_CITIES: tuple[tuple[str, str, str, str, str, float, str, str, str, int], ...] = (
    ("nyc", "US", "NY", "America/New_York", "amer", 6, "us-east-1", "eastus", "us-east4", 2),
    ("atl", "US", "GA", "America/New_York", "amer", 3, "us-east-1", "eastus2", "us-east1", 1),
    ("chi", "US", "IL", "America/Chicago", "amer", 4, "us-east-2", "centralus", "us-central1", 1),
    ("dfw", "US", "TX", "America/Chicago", "amer", 4, "us-east-2", "southcentralus", "us-south1", 2),
    ("den", "US", "CO", "America/Denver", "amer", 2, "us-west-2", "centralus", "us-west3", 1),
    ("phx", "US", "AZ", "America/Phoenix", "amer", 1.5, "us-west-2", "westus3", "us-west4", 1),
    ("sfo", "US", "CA", "America/Los_Angeles", "amer", 3, "us-west-1", "westus", "us-west2", 1),
    ("sea", "US", "WA", "America/Los_Angeles", "amer", 2, "us-west-2", "westus2", "us-west1", 1),
    ("tor", "CA", "ON", "America/Toronto", "amer", 2, "ca-central-1", "canadacentral",
     "northamerica-northeast2", 1),
    ("mtl", "CA", "QC", "America/Toronto", "amer", 1, "ca-central-1", "canadaeast",
     "northamerica-northeast1", 1),
    ("sao", "BR", "SP", "America/Sao_Paulo", "amer", 2, "sa-east-1", "brazilsouth",
     "southamerica-east1", 1),
    ("lon", "GB", "ENG", "Europe/London", "emea", 5, "eu-west-2", "uksouth", "europe-west2", 2),
    ("man", "GB", "ENG", "Europe/London", "emea", 1.5, "eu-west-2", "ukwest", "europe-west2", 1),
    ("edi", "GB", "SCT", "Europe/London", "emea", 1, "eu-west-2", "uksouth", "europe-west2", 1),
    ("dub", "IE", "", "Europe/Dublin", "emea", 2, "eu-west-1", "northeurope", "europe-west1", 1),
    ("ams", "NL", "", "Europe/Amsterdam", "emea", 3, "eu-west-1", "westeurope", "europe-west4", 2),
    ("fra", "DE", "HE", "Europe/Berlin", "emea", 4, "eu-central-1", "germanywestcentral",
     "europe-west3", 2),
    ("muc", "DE", "BY", "Europe/Berlin", "emea", 2, "eu-central-1", "germanywestcentral",
     "europe-west3", 1),
    ("ber", "DE", "BE", "Europe/Berlin", "emea", 1, "eu-central-1", "germanywestcentral",
     "europe-west10", 1),
    ("par", "FR", "", "Europe/Paris", "emea", 3, "eu-west-3", "francecentral", "europe-west9", 2),
    ("zrh", "CH", "ZH", "Europe/Zurich", "emea", 1.5, "eu-central-2", "switzerlandnorth",
     "europe-west6", 1),
    ("mad", "ES", "MD", "Europe/Madrid", "emea", 1.5, "eu-south-2", "spaincentral",
     "europe-southwest1", 1),
    ("sto", "SE", "", "Europe/Stockholm", "emea", 1, "eu-north-1", "swedencentral",
     "europe-north1", 1),
    ("waw", "PL", "", "Europe/Warsaw", "emea", 1, "eu-central-1", "polandcentral",
     "europe-central2", 1),
    ("jnb", "ZA", "GP", "Africa/Johannesburg", "emea", 0.7, "af-south-1", "southafricanorth",
     "africa-south1", 1),
    ("bom", "IN", "MH", "Asia/Kolkata", "apac", 2, "ap-south-1", "centralindia", "asia-south1", 1),
    ("blr", "IN", "KA", "Asia/Kolkata", "apac", 2.5, "ap-south-1", "southindia", "asia-south1", 1),
    ("sin", "SG", "", "Asia/Singapore", "apac", 2, "ap-southeast-1", "southeastasia",
     "asia-southeast1", 1),
    ("tyo", "JP", "13", "Asia/Tokyo", "apac", 2, "ap-northeast-1", "japaneast", "asia-northeast1", 1),
    ("syd", "AU", "NSW", "Australia/Sydney", "apac", 2, "ap-southeast-2", "australiaeast",
     "australia-southeast1", 1),
    ("mel", "AU", "VIC", "Australia/Melbourne", "apac", 1, "ap-southeast-4", "australiasoutheast",
     "australia-southeast2", 1),
)


def _sites() -> tuple[_Site, ...]:
    out: list[_Site] = []
    for city, country, sub, tz, region, weight, aws, azure, gcp, count in _CITIES:
        clouds = {
            "aws": (aws, tuple(aws + z for z in _AWS_ZONES_ODD.get(aws, "abc"))),
            "azure": (azure, () if azure in _AZURE_NO_ZONES else ("1", "2", "3")),
            "gcp": (gcp, tuple(f"{gcp}-{z}" for z in _GCP_ZONES_ODD.get(gcp, "abc"))),
        }
        for n in range(1, count + 1):
            # The first site of a city carries most of its weight.
            share = weight * (0.65 if n == 1 else 0.35 / (count - 1)) if count > 1 else weight
            out.append(_Site(f"{city}-{n}", f"{city}{n}", country, sub, tz, region, share, clouds))
    return tuple(out)


# --------------------------------------------------------------------------
# Operating systems and hardware
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Os:
    family: OsFamily
    name: str
    version: str
    builds: tuple[tuple[str, float], ...]
    weight: float
    arches: frozenset[str] = frozenset({"x86_64"})


_X86_ARM = frozenset({"x86_64", "arm64"})
_CURRENT_3 = (0.6, 0.28, 0.12)  # current monthly revision, one and two behind


def _builds(*builds: str) -> tuple[tuple[str, float], ...]:
    return tuple(zip(builds, _CURRENT_3[: len(builds)], strict=True))


def _windows_clients() -> list[_Os]:
    versions = (
        ("11", "24H2", _builds("26100.2314", "26100.2161", "26100.2033"), 45, _X86_ARM),
        ("11", "23H2", _builds("22631.4460", "22631.4391", "22631.4317"), 30, frozenset({"x86_64"})),
        ("11", "22H2", _builds("22621.4460", "22621.4317"), 5, frozenset({"x86_64"})),
        ("10", "22H2", _builds("19045.5131", "19045.5011", "19045.4894"), 20, frozenset({"x86_64"})),
    )
    out = []
    for major, display, builds, weight, arches in versions:
        for edition, share in (("Enterprise", 0.85), ("Pro", 0.15)):
            out.append(_Os(OsFamily.WINDOWS, f"Windows {major} {edition}", display, builds,
                           weight * share, arches))
    return out


def _windows_servers() -> list[_Os]:
    versions = (
        ("2016", "1607", _builds("14393.7515", "14393.7428"), 10),
        ("2019", "1809", _builds("17763.6532", "17763.6414", "17763.6293"), 30),
        ("2022", "21H2", _builds("20348.2849", "20348.2762", "20348.2700"), 45),
        ("2025", "24H2", _builds("26100.2314", "26100.2161"), 15),
    )
    out = []
    for year, display, builds, weight in versions:
        for edition, share in (("Datacenter", 0.6), ("Standard", 0.4)):
            out.append(_Os(OsFamily.WINDOWS, f"Windows Server {year} {edition}", display, builds,
                           weight * share))
    return out


def _linux_servers() -> list[_Os]:
    L = OsFamily.LINUX
    return [
        _Os(L, "Ubuntu", "24.04", _builds("6.8.0-49-generic", "6.8.0-48-generic", "6.8.0-45-generic"),
            20, _X86_ARM),
        _Os(L, "Ubuntu", "22.04",
            _builds("5.15.0-126-generic", "5.15.0-125-generic", "5.15.0-122-generic"), 25, _X86_ARM),
        _Os(L, "Ubuntu", "20.04", _builds("5.4.0-202-generic", "5.4.0-200-generic"), 10),
        _Os(L, "Red Hat Enterprise Linux", "9.5", _builds("5.14.0-503.14.1.el9_5.{arch}",
                                                          "5.14.0-503.11.1.el9_5.{arch}"), 12, _X86_ARM),
        _Os(L, "Red Hat Enterprise Linux", "9.4", _builds("5.14.0-427.42.1.el9_4.{arch}",
                                                          "5.14.0-427.40.1.el9_4.{arch}"), 8, _X86_ARM),
        _Os(L, "Red Hat Enterprise Linux", "8.10",
            _builds("4.18.0-553.27.1.el8_10.{arch}", "4.18.0-553.22.1.el8_10.{arch}"), 15),
        _Os(L, "Debian GNU/Linux", "12", _builds("6.1.0-27-{debarch}", "6.1.0-26-{debarch}"), 10,
            _X86_ARM),
    ]


def _linux_clients() -> list[_Os]:
    L = OsFamily.LINUX
    return [
        _Os(L, "Ubuntu", "24.04", _builds("6.8.0-49-generic", "6.8.0-48-generic"), 60),
        _Os(L, "Ubuntu", "22.04", _builds("6.8.0-48-generic", "6.5.0-45-generic"), 40),
    ]


def _macs() -> list[_Os]:
    M = OsFamily.MACOS
    return [
        _Os(M, "macOS", "15.1", (("24B83", 1.0),), 35, _X86_ARM),
        _Os(M, "macOS", "15.0.1", (("24A348", 1.0),), 15, _X86_ARM),
        _Os(M, "macOS", "14.7.1", (("23H222", 1.0),), 20, _X86_ARM),
        _Os(M, "macOS", "14.7", (("23H124", 1.0),), 10, _X86_ARM),
        _Os(M, "macOS", "14.6.1", (("23G93", 1.0),), 20, _X86_ARM),
    ]


@dataclass(frozen=True, slots=True)
class _Hardware:
    vendor: str
    model: str
    weight: float
    families: str  # letters: w(indows) l(inux) m(acos)
    platform: Platform = Platform.PHYSICAL
    provider: str = ""
    arch: str = "x86_64"


_P, _V, _C = Platform.PHYSICAL, Platform.VM, Platform.CLOUD
_DELL, _HP, _HPE, _LEN, _MS, _APPLE = "Dell Inc.", "HP", "HPE", "Lenovo", "Microsoft Corporation", "Apple Inc."
_VMW = "VMware, Inc."

_CLIENT_HARDWARE = (
    _Hardware(_DELL, "Latitude 5440", 9, "wl"),
    _Hardware(_DELL, "Latitude 7440", 6, "w"),
    _Hardware(_DELL, "Latitude 5550", 5, "w"),
    _Hardware(_DELL, "OptiPlex 7010", 6, "w"),
    _Hardware(_DELL, "Precision 5680", 2, "wl"),
    _Hardware(_HP, "HP EliteBook 840 G10 Notebook PC", 8, "w"),
    _Hardware(_HP, "HP EliteBook 840 G11 Notebook PC", 5, "w"),
    _Hardware(_HP, "HP ProBook 450 G10 Notebook PC", 5, "w"),
    _Hardware(_HP, "HP EliteDesk 800 G9 Desktop Mini PC", 5, "w"),
    _Hardware(_LEN, "ThinkPad T14 Gen 4", 9, "wl"),
    _Hardware(_LEN, "ThinkPad X1 Carbon Gen 11", 5, "w"),
    _Hardware(_LEN, "ThinkPad E14 Gen 5", 5, "w"),
    _Hardware(_LEN, "ThinkPad P16s Gen 2", 2, "wl"),
    _Hardware(_LEN, "ThinkCentre M70q Gen 4", 5, "w"),
    _Hardware(_MS, "Surface Laptop 5", 2, "w"),
    _Hardware(_MS, "Surface Laptop, 7th Edition", 2, "w", arch="arm64"),
    _Hardware(_VMW, "VMware7,1", 4.5, "wl", _V),
    _Hardware(_MS, "Standard_D4s_v5", 2, "w", _C, "azure"),
    _Hardware(_APPLE, "MacBook Pro (14-inch, M3, 2023)", 30, "m", arch="arm64"),
    _Hardware(_APPLE, "MacBook Air (13-inch, M2, 2022)", 30, "m", arch="arm64"),
    _Hardware(_APPLE, "MacBook Pro (14-inch, 2021)", 20, "m", arch="arm64"),
    _Hardware(_APPLE, "Mac mini (2023)", 5, "m", arch="arm64"),
    _Hardware(_APPLE, "MacBook Pro (16-inch, 2019)", 12, "m"),
    _Hardware(_APPLE, "iMac (Retina 5K, 27-inch, 2020)", 3, "m"),
)

_SERVER_HARDWARE = (
    _Hardware(_DELL, "PowerEdge R650", 4, "wl"),
    _Hardware(_DELL, "PowerEdge R750", 4, "wl"),
    _Hardware(_DELL, "PowerEdge R660", 3, "wl"),
    _Hardware(_DELL, "PowerEdge R760", 3, "wl"),
    _Hardware(_DELL, "PowerEdge R740", 2, "wl"),
    _Hardware(_HPE, "ProLiant DL360 Gen10", 3, "wl"),
    _Hardware(_HPE, "ProLiant DL380 Gen10 Plus", 3, "wl"),
    _Hardware(_HPE, "ProLiant DL380 Gen11", 3, "wl"),
    _Hardware(_LEN, "ThinkSystem SR650 V2", 2, "wl"),
    _Hardware(_LEN, "ThinkSystem SR630 V3", 2, "wl"),
    _Hardware("Cisco Systems Inc", "UCSC-C220-M6S", 1, "wl"),
    _Hardware(_VMW, "VMware7,1", 25, "wl", _V),
    _Hardware(_VMW, "VMware20,1", 10, "wl", _V),
    _Hardware(_MS, "Virtual Machine", 9, "wl", _V),
    _Hardware("Nutanix", "AHV", 3, "wl", _V),
    _Hardware("Amazon EC2", "m5.xlarge", 3, "wl", _C, "aws"),
    _Hardware("Amazon EC2", "m6i.2xlarge", 2, "wl", _C, "aws"),
    _Hardware("Amazon EC2", "r6i.xlarge", 1.5, "wl", _C, "aws"),
    _Hardware("Amazon EC2", "c6i.large", 1, "wl", _C, "aws"),
    _Hardware("Amazon EC2", "t3.medium", 1, "wl", _C, "aws"),
    _Hardware("Amazon EC2", "m7g.xlarge", 1.5, "l", _C, "aws", "arm64"),
    _Hardware(_MS, "Standard_D4s_v5", 3, "wl", _C, "azure"),
    _Hardware(_MS, "Standard_E8s_v5", 1.5, "wl", _C, "azure"),
    _Hardware(_MS, "Standard_D2s_v3", 1.5, "wl", _C, "azure"),
    _Hardware(_MS, "Standard_B2ms", 1, "wl", _C, "azure"),
    _Hardware("Google", "n2-standard-4", 2, "wl", _C, "gcp"),
    _Hardware("Google", "e2-standard-2", 1.2, "wl", _C, "gcp"),
    _Hardware("Google", "c3-standard-8", 0.5, "wl", _C, "gcp"),
)


# --------------------------------------------------------------------------
# Agents
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Vendor:
    """An EDR product with per-family version tables (index _WIN, _LNX, _MAC)."""

    vendor: str
    product: str
    share: float
    versions: tuple[_Table[InstalledAgent], ...]


def _edr(vendor: str, product: str, share: float, win: Sequence[str], lnx: Sequence[str],
         mac: Sequence[str]) -> _Vendor:
    tables = []
    for fam, versions in ((_WIN, win), (_LNX, lnx), (_MAC, mac)):
        agents = [
            InstalledAgent(vendor, product, v, kernel_mode=fam != _MAC, boot_start=fam == _WIN)
            for v in versions
        ]
        tables.append(_Table.of(list(zip(agents, _CURRENT_3[: len(agents)], strict=True))))
    return _Vendor(vendor, product, share, tuple(tables))


def _edr_vendors() -> tuple[_Vendor, ...]:
    return (
        _edr("Microsoft", "Microsoft Defender for Endpoint", 27,
             ("4.18.24090.11", "4.18.24080.9", "4.18.24070.5"),
             ("101.24082.0004", "101.24072.0001", "101.24062.0000"),
             ("101.24092.0004", "101.24082.0004")),
        _edr("CrowdStrike", "Falcon Sensor", 22,
             ("7.18.18907.0", "7.17.18721.0", "7.16.18613.0"),
             ("7.18.17106", "7.17.17011", "7.16.16903"),
             ("7.18.18904.0", "7.17.18705.0")),
        _edr("SentinelOne", "SentinelOne Agent", 9,
             ("24.1.4.257", "23.4.6.347", "23.3.3.264"), ("24.2.2.20", "24.1.2.6"),
             ("24.2.2.7713", "24.1.2.7444")),
        _edr("Trellix", "Trellix Endpoint Security", 8, ("10.7.0.6391", "10.7.0.5786"),
             ("10.7.18.1", "10.7.17.2"), ("10.7.9", "10.7.8")),
        _edr("Sophos", "Sophos Intercept X", 7, ("2024.2.1.1", "2024.1.2.1", "2023.2.2.1"),
             ("2024.2.0.38", "2024.1.1.4"), ("2024.2.1.1", "2024.1.2.1")),
        _edr("Trend Micro", "Trend Vision One Endpoint Security", 7, ("14.0.12932", "14.0.12737"),
             ("20.0.1-21510", "20.0.1-20250"), ("3.5.6.1", "3.5.5.3")),
        _edr("Broadcom", "Symantec Endpoint Protection", 6, ("14.3.11213.9000", "14.3.10148.8000"),
             ("14.3.3580.1100", "14.3.3384.1000"), ("14.3.11213.9000", "14.3.10148.8000")),
        _edr("ESET", "ESET Endpoint Security", 5, ("11.1.2039.2", "11.0.2044.0"),
             ("11.0.10.0", "10.2.1.0"), ("8.0.17.0", "7.5.74.0")),
        _edr("Palo Alto Networks", "Cortex XDR Agent", 5, ("8.5.1.12800", "8.4.1.11503"),
             ("8.5.0.12655", "8.4.0.11011"), ("8.5.1.12800", "8.4.1.11503")),
        _edr("Broadcom", "Carbon Black Cloud Sensor", 4, ("4.0.1.1428", "3.9.3.5"),
             ("2.15.2.2072", "2.14.0.1730"), ("3.9.2.126", "3.8.1.41")),
    )


@dataclass(frozen=True, slots=True)
class _Product:
    """A non-EDR agent a tenant standardises on, per family (None: not on that family)."""

    weight: float
    agents: tuple[InstalledAgent | None, InstalledAgent | None, InstalledAgent | None]


def _product(vendor: str, product: str, weight: float, win: str, lnx: str, mac: str, *,
             kernel_win: bool = False, kernel_lnx: bool = False) -> _Product:
    return _Product(weight, (
        InstalledAgent(vendor, product, win, kernel_mode=kernel_win) if win else None,
        InstalledAgent(vendor, product, lnx, kernel_mode=kernel_lnx) if lnx else None,
        InstalledAgent(vendor, product, mac) if mac else None,
    ))


def _vpn_products() -> _Table[_Product]:
    return _Table.of([
        (p, p.weight) for p in (
            _product("Zscaler", "Zscaler Client Connector", 35, "4.4.0.379", "3.7.1.76", "4.3.0.202",
                     kernel_win=True),
            _product("Palo Alto Networks", "GlobalProtect", 25, "6.2.4", "6.2.1", "6.2.4",
                     kernel_win=True),
            _product("Cisco", "Cisco Secure Client", 25, "5.1.6.103", "5.1.6.103", "5.1.6.103",
                     kernel_win=True),
            _product("Netskope", "Netskope Client", 10, "118.0.0.2059", "118.0.0.2059",
                     "118.0.0.2059", kernel_win=True),
            _product("Fortinet", "FortiClient", 5, "7.4.1.1736", "7.4.1.0", "7.4.1.1665",
                     kernel_win=True),
        )
    ])


def _backup_products() -> _Table[_Product]:
    return _Table.of([
        (p, p.weight) for p in (
            _product("Veeam", "Veeam Agent", 40, "6.2.0.121", "6.2.0.101", "",
                     kernel_win=True, kernel_lnx=True),
            _product("Commvault", "Commvault File System Agent", 25, "11.36.20", "11.36.20", ""),
            _product("Rubrik", "Rubrik Backup Service", 20, "9.1.2", "9.1.2", ""),
            _product("Cohesity", "Cohesity Agent", 15, "7.1.2", "7.1.2", ""),
        )
    ])


def _endpoint_backup_products() -> _Table[_Product]:
    return _Table.of([
        (p, p.weight) for p in (
            _product("Druva", "Druva inSync", 55, "7.5.3", "7.5.1", "7.5.3"),
            _product("CrashPlan", "CrashPlan", 45, "11.4.1", "11.4.1", "11.4.1"),
        )
    ])


def _monitoring_products() -> _Table[_Product]:
    return _Table.of([
        (p, p.weight) for p in (
            _product("Datadog", "Datadog Agent", 30, "7.58.2", "7.58.2", ""),
            _product("Zabbix", "Zabbix Agent 2", 20, "7.0.5", "7.0.5", ""),
            _product("Splunk", "Splunk Universal Forwarder", 20, "9.3.1", "9.3.1", ""),
            _product("Microsoft", "Azure Monitor Agent", 15, "1.31.0", "1.33.1", ""),
            _product("Dynatrace", "Dynatrace OneAgent", 15, "1.299.52", "1.299.52", ""),
        )
    ])


_VMWARE_TOOLS = (
    InstalledAgent("VMware", "VMware Tools", "12.4.5", kernel_mode=True),
    InstalledAgent("VMware", "open-vm-tools", "12.3.5"),
)
_NUTANIX_TOOLS = (
    InstalledAgent("Nutanix", "Nutanix Guest Tools", "4.1", kernel_mode=True),
    InstalledAgent("Nutanix", "Nutanix Guest Tools", "4.1"),
)
_CLOUD_AGENTS = {
    "aws": (InstalledAgent("Amazon", "Amazon SSM Agent", "3.3.987.0"),
            InstalledAgent("Amazon", "Amazon SSM Agent", "3.3.987.0")),
    "azure": (InstalledAgent("Microsoft", "Windows Azure Guest Agent", "2.7.41491.1102"),
              InstalledAgent("Microsoft", "WALinuxAgent", "2.11.1.12")),
    "gcp": (InstalledAgent("Google", "Google Guest Agent", "20240701.00"),
            InstalledAgent("Google", "Google Guest Agent", "20240701.00")),
}


# --------------------------------------------------------------------------
# Profiles: OS x hardware with the probabilities that follow from them
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Profile:
    family: OsFamily
    fam: int
    os_name: str
    os_version: str
    os_build: str
    arch: str
    vendor: str
    model: str
    platform: Platform
    provider: str
    kind: str  # hostname kind: ws, mac or srv
    encryption: DiskEncryption
    p_encrypt: float
    p_escrow: float
    p_oob: float
    p_admin: float
    p_usb: float
    p_vpn: float
    p_backup: float
    p_monitor: float
    extra: tuple[InstalledAgent, ...]


def _profile(role: str, os: _Os, build: str, hw: _Hardware) -> _Profile:
    fam = _FAMILY_INDEX[os.family]
    ws = role == _WS
    plat = hw.platform
    build = build.format(arch="x86_64" if hw.arch == "x86_64" else "aarch64",
                         debarch="amd64" if hw.arch == "x86_64" else "arm64")
    encryption = (DiskEncryption.BITLOCKER, DiskEncryption.LUKS, DiskEncryption.FILEVAULT)[fam]
    if fam == _MAC:
        p_encrypt = 0.95
    elif fam == _WIN:
        if ws:
            p_encrypt = {_P: 0.92, _V: 0.05, _C: 0.3}[plat]
        elif plat is _C:
            p_encrypt = 0.25 if hw.provider == "azure" else 0.0
        else:
            p_encrypt = 0.35 if plat is _P else 0.15
    elif ws:
        p_encrypt = 0.7 if plat is _P else 0.1
    else:
        p_encrypt = {_P: 0.15, _V: 0.05, _C: 0.05 if hw.provider == "azure" else 0.0}[plat]
    if plat is _P:
        p_oob = 0.0 if fam == _MAC else (0.08 if ws else 0.85)
        p_usb = 0.05 if fam == _MAC else (0.25 if ws else 0.7)
    elif plat is _V:
        p_oob, p_usb = 0.95, 0.9
    else:
        p_oob, p_usb = (0.3 if ws else 0.4), 0.0
    p_admin = 0.92 if not ws else {_WIN: 0.8, _LNX: 0.9, _MAC: 0.6}[fam]
    extra: tuple[InstalledAgent, ...] = ()
    if hw.vendor == _VMW:
        extra = (_VMWARE_TOOLS[0 if fam == _WIN else 1],)
    elif hw.vendor == "Nutanix":
        extra = (_NUTANIX_TOOLS[0 if fam == _WIN else 1],)
    elif hw.provider:
        extra = (_CLOUD_AGENTS[hw.provider][0 if fam == _WIN else 1],)
    if ws:
        p_vpn = 0.85 if plat is _P else 0.1
        p_backup, p_monitor = 0.12, 0.0
        kind = "mac" if fam == _MAC else "ws"
    else:
        p_vpn = 0.0
        p_backup, p_monitor = {_P: 0.85, _V: 0.2, _C: 0.35}[plat], 0.85
        kind = "srv"
    return _Profile(
        os.family, fam, os.name, os.version, build, hw.arch, hw.vendor, hw.model, plat, hw.provider,
        kind, encryption, p_encrypt, 0.6 if fam == _LNX else 0.85, p_oob, p_admin, p_usb, p_vpn,
        p_backup, p_monitor, extra,
    )


def _profiles(role: str, oses: Sequence[tuple[_Os, float]], hardware: Sequence[_Hardware]) -> _Table[_Profile]:
    """Joint OS x hardware table; ``oses`` carry the family share times the in-family weight."""
    letter = {OsFamily.WINDOWS: "w", OsFamily.LINUX: "l", OsFamily.MACOS: "m"}
    pairs: list[tuple[_Profile, float]] = []
    for os, weight in oses:
        fits = [h for h in hardware if letter[os.family] in h.families and h.arch in os.arches]
        hw_total = sum(h.weight for h in fits)
        for build, build_share in os.builds:
            for hw in fits:
                pairs.append((_profile(role, os, build, hw), weight * build_share * hw.weight / hw_total))
    return _Table.of(pairs)


def _family_weighted(oses: Sequence[_Os], share: float) -> list[tuple[_Os, float]]:
    total = sum(o.weight for o in oses)
    return [(o, share * o.weight / total) for o in oses]


@dataclass(frozen=True, slots=True)
class _Catalogue:
    sites: tuple[_Site, ...]
    clients: _Table[_Profile]
    servers: _Table[_Profile]
    servers_by_family: tuple[_Table[_Profile], _Table[_Profile]]
    edr: tuple[_Vendor, ...]
    vpn: _Table[_Product]
    backup: _Table[_Product]
    endpoint_backup: _Table[_Product]
    monitoring: _Table[_Product]


@cache
def _catalogue() -> _Catalogue:
    """The fixed tables; built once per process (pure data, no randomness)."""
    win_srv = _family_weighted(_windows_servers(), 1.0)
    lnx_srv = _family_weighted(_linux_servers(), 1.0)
    clients = (_family_weighted(_windows_clients(), 0.88) + _family_weighted(_macs(), 0.10)
               + _family_weighted(_linux_clients(), 0.02))
    mixed = [(o, w * 0.6) for o, w in win_srv] + [(o, w * 0.4) for o, w in lnx_srv]
    return _Catalogue(
        sites=_sites(),
        clients=_profiles(_WS, clients, _CLIENT_HARDWARE),
        servers=_profiles(_SRV, mixed, _SERVER_HARDWARE),
        servers_by_family=(_profiles(_SRV, win_srv, _SERVER_HARDWARE),
                           _profiles(_SRV, lnx_srv, _SERVER_HARDWARE)),
        edr=_edr_vendors(),
        vpn=_vpn_products(),
        backup=_backup_products(),
        endpoint_backup=_endpoint_backup_products(),
        monitoring=_monitoring_products(),
    )


# --------------------------------------------------------------------------
# Tenants and their services
# --------------------------------------------------------------------------

_PREFIXES = (
    "Contoso", "Fabrikam", "Northwind", "Woodgrove", "Tailspin", "Litware", "Proseware", "Adatum",
    "Alpine", "Coho", "Lamna", "Relecloud", "Trey", "Wingtip", "Lucerne", "Humongous", "Blue Yonder",
    "Wide World", "Southridge", "Consolidated", "Fourth", "Bellows", "VanArsdel", "Munson",
    "Tasmanian", "Boulder", "Cedar", "Harbor", "Graphic", "Datum",
)

# industry: (share of tenants, name suffixes, industry services)
_INDUSTRIES: dict[str, tuple[float, tuple[str, ...], tuple[str, ...]]] = {
    "bank": (15, ("Bank", "Financial"),
             ("payments", "clearing", "core-banking", "online-banking", "card-processing", "trading",
              "aml")),
    "insurance": (10, ("Insurance", "Mutual"), ("policy-admin", "claims", "underwriting", "billing")),
    "hospital": (15, ("Health", "Medical Center"),
                 ("ehr", "pacs", "lab", "pharmacy", "patient-portal", "scheduling")),
    "retail": (15, ("Retail", "Stores"), ("pos", "e-commerce", "inventory", "loyalty", "warehouse")),
    "manufacturing": (15, ("Manufacturing", "Industries"),
                      ("mes", "scada-historian", "plm", "warehouse", "quality")),
    "logistics": (8, ("Logistics", "Freight"), ("tracking", "dispatch", "warehouse", "customs", "billing")),
    "energy": (7, ("Energy", "Power & Light"),
               ("scada-historian", "outage-management", "metering", "billing")),
    "airline": (5, ("Airlines", "Air"),
                ("check-in", "boarding", "baggage", "crew-scheduling", "flight-ops", "booking",
                 "loyalty")),
    "government": (5, ("County", "City Council"), ("case-management", "citizen-portal", "tax", "licensing")),
    "university": (5, ("University", "College"), ("lms", "student-records", "research-hpc")),
}
_COMMON_SERVICES = (
    "email", "erp", "crm", "hr", "file-share", "intranet", "identity", "itsm", "print", "monitoring",
    "ci-cd", "data-warehouse", "web-portal",
)
_CRITICAL = frozenset({
    "payments", "clearing", "core-banking", "card-processing", "trading", "claims", "ehr", "pacs",
    "pharmacy", "pos", "mes", "scada-historian", "outage-management", "metering", "tracking",
    "dispatch", "check-in", "boarding", "baggage", "flight-ops", "identity", "case-management",
})
# (industry, service) -> regulatory function id, for tier-0/1 services
_REGULATORY = {
    ("bank", "payments"): "payments", ("bank", "clearing"): "clearing",
    ("bank", "core-banking"): "deposit-taking", ("bank", "card-processing"): "payments",
    ("bank", "trading"): "trading", ("bank", "aml"): "aml-screening",
    ("insurance", "claims"): "claims-handling", ("insurance", "policy-admin"): "underwriting",
    ("hospital", "ehr"): "patient-care", ("hospital", "pharmacy"): "patient-care",
    ("energy", "outage-management"): "grid-operations", ("energy", "scada-historian"): "grid-operations",
    ("airline", "flight-ops"): "flight-operations",
}
_WINDOWS_ONLY = frozenset({"directory", "key-escrow", "email", "file-share", "print", "scada-historian"})
_LINUX_ONLY = frozenset({"ci-cd", "research-hpc", "data-warehouse"})
# tier -> (RTO choices, MTD choices), minutes
_OBJECTIVES = {
    0: ((30, 60), (240,)),
    1: ((120, 240), (720, 1440)),
    2: ((480, 1440), (2880, 4320)),
    3: ((2880, 4320), (10080,)),
}
_EDR_NONE = 0.015  # hosts without any EDR
_SERVER_EDR_TENANTS = 0.25  # tenants that run a second EDR vendor on servers
_SERVER_EDR_HOSTS = 0.6  # share of those tenants' servers that run it
_VERIFIED = 0.7  # escrowed keys whose escrow was verified
_CANARY = 0.01


@dataclass(slots=True)
class _TenantPlan:
    tenant: Tenant
    industry: str
    size: int
    servers: int
    sites: _Table[int]
    p_standard: float
    vpn: _Product
    backup: _Product
    endpoint_backup: _Product
    monitoring: _Product
    edr: int = 0  # dealt by _deal_edr
    edr_server: int = -1


@dataclass(slots=True)
class _ServicePlan:
    id: ServiceId
    name: str
    tier: int
    family: int
    kind: str  # hostname kind of its servers: dc, kes, app, web, sql or db
    groups: list[tuple[str, list[int], int]] = field(default_factory=list)
    depends_on: tuple[ServiceId, ...] = ()
    regulatory: str = ""


def _weights(table: _Table[_T]) -> list[float]:
    return [b - a for a, b in zip((0.0, *table.cum), table.cum, strict=False)]


def _slug(name: str) -> str:
    out = "".join(c if c.isalnum() else "-" for c in name.lower())
    return "-".join(part for part in out.split("-") if part)


def _plan_tenants(rng: random.Random, cat: _Catalogue, hosts: int,
                  count: int) -> tuple[list[_TenantPlan], _Table[int]]:
    """The tenants, largest first, and the EDR table for hosts off their tenant's standard."""
    # Sizes: Zipf (exponent 1) with jitter, a floor, largest remainder for the rest.
    weights = [rng.uniform(0.75, 1.25) / (k + 1) for k in range(count)]
    floor = min(10, hosts // count)
    spare = hosts - floor * count
    total_w = sum(weights)
    exact = [spare * w / total_w for w in weights]
    sizes = [floor + int(e) for e in exact]
    order = sorted(range(count), key=lambda k: int(exact[k]) - exact[k])
    for k in order[: hosts - sum(sizes)]:
        sizes[k] += 1
    sizes.sort(reverse=True)

    industries = _Table.of([(name, spec[0]) for name, spec in _INDUSTRIES.items()])
    prefixes = list(_PREFIXES)
    rng.shuffle(prefixes)
    home = _Table.of([("amer", 55), ("emea", 35), ("apac", 10)])
    plans = []
    for k, size in enumerate(sizes):
        industry = industries.pick(rng.random)
        suffix = rng.choice(_INDUSTRIES[industry][1])
        cycle = k // len(prefixes)
        name = f"{prefixes[k % len(prefixes)]} {suffix}" + (f" {cycle + 1}" if cycle else "")
        region = home.pick(rng.random)
        plans.append(_TenantPlan(
            tenant=Tenant(TenantId(_slug(name)), name),
            industry=industry,
            size=size,
            servers=min(size, max(2, round(size * rng.uniform(0.15, 0.25)))),
            sites=_pick_sites(rng, cat, size, region),
            p_standard=rng.uniform(0.85, 0.97),
            vpn=cat.vpn.pick(rng.random),
            backup=cat.backup.pick(rng.random),
            endpoint_backup=cat.endpoint_backup.pick(rng.random),
            monitoring=cat.monitoring.pick(rng.random),
        ))
    return plans, _deal_edr(rng, cat, plans, hosts)


def _pick_sites(rng: random.Random, cat: _Catalogue, size: int, region: str) -> _Table[int]:
    """A tenant's sites (indexes into ``cat.sites``) weighted by their share of its hosts."""
    wanted = min(len(cat.sites), 1 + round(math.log2(max(1.0, size / 250))))
    local = [i for i, s in enumerate(cat.sites) if s.region == region]
    hq = _Table.of([(i, cat.sites[i].weight) for i in local]).pick(rng.random)
    chosen = [hq]
    # Further sites without replacement, three times likelier in the home region.
    pool = {i: s.weight * (3 if s.region == region else 1) for i, s in enumerate(cat.sites)}
    del pool[hq]
    while len(chosen) < wanted:
        pick = _Table.of(sorted(pool.items())).pick(rng.random)
        chosen.append(pick)
        del pool[pick]
    return _Table.of([(s, 3.0 if n == 0 else rng.uniform(0.4, 1.4)) for n, s in enumerate(chosen)])


def _deal_edr(rng: random.Random, cat: _Catalogue, plans: list[_TenantPlan], hosts: int) -> _Table[int]:
    """Give each tenant a primary EDR so that fleet-wide host shares approach the targets.

    Largest tenants first: a tenant goes to a vendor with room for all of it (weighted by the
    square of the room left), else to the vendor with the most room; a tenant holding most of
    the fleet draws by market share, since one tenant cannot follow a market split.  Returns
    the table that hosts off their tenant's standard draw from: the room left, plus a little of
    every vendor.
    """
    vendors = cat.edr
    total_share = sum(v.share for v in vendors)
    room = [hosts * v.share / total_share for v in vendors]
    market = _Table.of([(i, v.share) for i, v in enumerate(vendors)])
    for plan in plans:  # sorted largest first
        standard = plan.size * plan.p_standard
        fits = [(i, r) for i, r in enumerate(room) if r >= standard]
        if fits:
            plan.edr = _Table.of([(i, r * r) for i, r in fits]).pick(rng.random)
        elif plan.size > hosts / 2:
            plan.edr = market.pick(rng.random)
        else:
            plan.edr = max(range(len(room)), key=lambda i: room[i])
        room[plan.edr] -= standard
        if rng.random() < _SERVER_EDR_TENANTS:
            others = [(i, v.share) for i, v in enumerate(vendors) if i != plan.edr]
            plan.edr_server = _Table.of(others).pick(rng.random)
            moved = plan.servers * _SERVER_EDR_HOSTS * plan.p_standard
            room[plan.edr_server] -= moved
            room[plan.edr] += moved
    return _Table.of([(i, max(r, 0.0) + 0.02 * hosts * v.share / total_share)
                      for i, (r, v) in enumerate(zip(room, vendors, strict=True))])


def _plan_services(rng: random.Random, cat: _Catalogue, plan: _TenantPlan,
                   server_sites: list[int]) -> tuple[list[_ServicePlan], list[list[int]]]:
    """Services of one tenant, and for each server the indexes of the services it serves."""
    served: list[list[int]] = [[] for _ in server_sites]
    if len(server_sites) < 2:
        return [], served
    by_site: dict[int, list[int]] = {}
    for i, site in enumerate(server_sites):
        by_site.setdefault(site, []).append(i)
    free = {site: rng.sample(members, len(members)) for site, members in by_site.items()}
    family: list[int] = [-1] * len(server_sites)
    # Sites able to hold a group, most servers first (ties by site order, for determinism).
    candidates = sorted((s for s, m in by_site.items() if len(m) >= 2), key=lambda s: (-len(by_site[s]), s))

    site_names = [site.name for site in cat.sites]
    industry_names = list(_INDUSTRIES[plan.industry][2])
    common = list(_COMMON_SERVICES)
    rng.shuffle(industry_names)
    rng.shuffle(common)
    catalogue = industry_names + common
    count = max(3, round(plan.size / 100))
    names = ["directory", "key-escrow"] + [
        catalogue[k % len(catalogue)] + (f"-{k // len(catalogue) + 1}" if k >= len(catalogue) else "")
        for k in range(count - 2)
    ]
    services: list[_ServicePlan] = []
    for index, name in enumerate(names):
        base = name.rsplit("-", 1)[0] if name[-1].isdigit() else name
        if index < 2:
            tier = 0
        elif base in _CRITICAL:
            tier = rng.choices((0, 1, 2), cum_weights=(30, 80, 100))[0]
        else:
            tier = rng.choices((0, 1, 2, 3), cum_weights=(2, 20, 65, 100))[0]
        if base in _WINDOWS_ONLY:
            fam = _WIN
        elif base in _LINUX_ONLY:
            fam = _LNX
        else:
            fam = _WIN if rng.random() < 0.55 else _LNX
        kind = {"directory": "dc", "key-escrow": "kes"}.get(base) or rng.choice(("app", "web", "sql" if fam == _WIN else "db"))
        svc = _ServicePlan(ServiceId(f"{plan.tenant.id}/{name}"), name, tier, fam, kind)
        if index == 1:
            svc.depends_on = (services[0].id,)
        elif index >= 2:
            deps = []
            if rng.random() < 0.9:
                deps.append(services[0].id)
            if rng.random() < 0.75:
                deps.append(services[1].id)
            earlier = services[2:]
            extra = min(len(earlier), rng.choices((0, 1, 2), cum_weights=(50, 85, 100))[0])
            deps.extend(s.id for s in rng.sample(earlier, extra))
            svc.depends_on = tuple(deps)
        if tier <= 1:
            svc.regulatory = _REGULATORY.get((plan.industry, base), "")
        _place_groups(rng, svc, index, candidates, by_site, free, family, server_sites, site_names)
        for _, members, _ in svc.groups:
            for m in members:
                served[m].append(index)
        services.append(svc)
    return services, served


def _place_groups(rng: random.Random, svc: _ServicePlan, index: int, candidates: list[int],
                  by_site: dict[int, list[int]], free: dict[int, list[int]], family: list[int],
                  server_sites: list[int], site_names: Sequence[str]) -> None:
    """Add the redundancy groups of ``svc``: one per chosen site, free servers first."""
    if index == 0:
        n_groups, low, high = 3, 2, 3
    elif index == 1:
        n_groups, low, high = rng.randint(1, 2), 2, 2
    elif svc.tier <= 1:
        n_groups, low, high = rng.randint(2, 3), 3, 8
    else:
        n_groups, low, high = rng.randint(1, 2), 2, 5
    if candidates:
        n_groups = min(n_groups, len(candidates))
        # Directory and key escrow sit at the main sites, the rest at any of the five largest.
        sites = candidates[:n_groups] if index <= 1 else rng.sample(candidates[: max(n_groups, 5)], n_groups)
        places = [(site_names[s], by_site[s], free[s]) for s in sites]
    else:
        # No site has two servers: one group across all of them.
        everyone = list(range(len(server_sites)))
        spare = [i for i in everyone if family[i] < 0]
        places = [("all-sites", everyone, rng.sample(spare, len(spare)))]
    for group_name, members_at, free_at in places:
        size = min(rng.randint(low, high), len(members_at))
        members: list[int] = []
        while free_at and len(members) < size:
            m = free_at.pop()
            if family[m] < 0:  # a global group may have taken it already
                members.append(m)
        if len(members) < size:
            # Reuse servers of this site, those of the same OS family first.
            rest = [m for m in members_at if m not in members]
            rng.shuffle(rest)
            rest.sort(key=lambda m: family[m] != svc.family)
            members.extend(rest[: size - len(members)])
        for m in members:
            if family[m] < 0:
                family[m] = svc.family
        n = len(members)
        svc.groups.append((group_name, members, rng.randint(max(1, (n + 1) // 2), n - 1)))


# --------------------------------------------------------------------------
# Host generation
# --------------------------------------------------------------------------


def _check(hosts: object, tenants: object, start: object) -> None:
    if isinstance(hosts, bool) or not isinstance(hosts, int) or hosts < 1:
        raise InputError.single("hosts", f"must be a whole number of at least 1, got {shown(hosts)}",
                                expected="an integer >= 1")
    if tenants is not None and (isinstance(tenants, bool) or not isinstance(tenants, int)
                                or not 1 <= tenants <= hosts):
        raise InputError.single("tenants", f"must be between 1 and the number of hosts, got {shown(tenants)}",
                                expected=f"an integer from 1 to {hosts}")
    if start is not None and (not isinstance(start, datetime) or start.utcoffset() is None):
        raise InputError.single("start", f"must be a timezone-aware datetime, got {shown(start)}",
                                expected="a datetime with tzinfo, such as 2026-11-02T09:00:00+00:00")


def generate_fleet(hosts: int, seed: int = 0, *, tenants: int | None = None,
                   start: datetime | None = None) -> Inventory:
    """Generate a synthetic fleet of ``hosts`` hosts, the same for the same ``seed``.

    ``tenants`` defaults to ``max(1, min(50, hosts // 2000))`` and must lie between 1 and
    ``hosts``; ``start`` (timezone-aware, default :data:`DEFAULT_START`) is the moment
    ``last_seen`` is measured back from.  The shares and rules are in the module docstring.

    Raises :class:`~ringfence.errors.InputError` naming ``hosts``, ``tenants`` or ``start``
    when one is out of range.
    """
    _check(hosts, tenants, start)
    count = tenants if tenants is not None else max(1, min(50, hosts // 2000))
    when = DEFAULT_START if start is None else start
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
    cat = _catalogue()
    plans, off_standard = _plan_tenants(rng, cat, hosts, count)
    market = _Table.of([(cat.edr[i].versions, w) for i, w in
                        zip(off_standard.items, _weights(off_standard), strict=True)])
    recent = [when - timedelta(seconds=s) for s in range(900)]
    stale = [when - timedelta(hours=h) for h in range(24, 24 * 30)]
    out_hosts: list[Host] = []
    out_services: list[Service] = []
    counters: dict[tuple[int, str], int] = {}
    labels = {
        (role, canary, tier): {"role": role, **({"canary": ""} if canary else {}),
                               **({"tier": str(tier)} if tier < 3 else {})}
        for role in (_WS, _SRV) for canary in (False, True) for tier in (1, 2, 3)
    }
    # Millions of small objects without cycles: callers that generate big fleets pause the cyclic
    # collector around this (ringfence.runtime.collector_paused; it is process state, not ours to switch).
    for plan in plans:
        _emit_tenant(rng, cat, plan, market, out_hosts, out_services, counters, labels, recent, stale)
    return Inventory(
        tenants=tuple(p.tenant for p in plans),
        hosts=tuple(out_hosts),
        services=tuple(out_services),
    )


def _emit_tenant(rng: random.Random, cat: _Catalogue, plan: _TenantPlan,
                 market: _Table[tuple[_Table[InstalledAgent], ...]], out_hosts: list[Host],
                 out_services: list[Service], counters: dict[tuple[int, str], int],
                 labels: Mapping[tuple[str, bool, int], Mapping[str, str]],
                 recent: list[datetime], stale: list[datetime]) -> None:
    """Append one tenant's hosts (servers first) and services; the hot loop of the generator."""
    random_ = rng.random
    getrandbits = rng.getrandbits
    sites = cat.sites
    site_items, site_cum, site_total = plan.sites.items, plan.sites.cum, plan.sites.total
    server_sites = [site_items[bisect(site_cum, random_() * site_total)] for _ in range(plan.servers)]
    services, served = _plan_services(rng, cat, plan, server_sites)

    edr = cat.edr
    primary = edr[plan.edr].versions
    server_edr = edr[plan.edr_server].versions if plan.edr_server >= 0 else primary
    p_server_edr = _SERVER_EDR_HOSTS if plan.edr_server >= 0 else 0.0
    p_standard = plan.p_standard
    vpn, backup, ep_backup, monitoring = (plan.vpn.agents, plan.backup.agents,
                                          plan.endpoint_backup.agents, plan.monitoring.agents)
    tenant_id = plan.tenant.id
    none = DiskEncryption.NONE
    ids: list[HostId] = []
    n_servers = plan.servers

    for i in range(plan.size):
        server = i < n_servers
        if server:
            site_index = server_sites[i]
            mine = served[i]
            if mine:
                first = services[mine[0]]
                table = cat.servers_by_family[first.family]
                kind = first.kind
            else:
                table = cat.servers
                kind = "srv"
        else:
            site_index = site_items[bisect(site_cum, random_() * site_total)]
            mine = []
            table = cat.clients
            kind = ""
        prof = table.items[bisect(table.cum, random_() * table.total)]
        site = sites[site_index]
        fam = prof.fam

        # Identity: UUID version 4 from the seeded generator.
        bits = getrandbits(128)
        bits = (bits & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
        hx = f"{bits:032x}"
        host_id = HostId(f"{hx[:8]}-{hx[8:12]}-{hx[12:16]}-{hx[16:20]}-{hx[20:]}")
        kind = kind or prof.kind
        key = (site_index, kind)
        number = counters.get(key, 0) + 1
        counters[key] = number
        hostname = f"{site.compact}-{kind}-{number:03d}" if server else f"{site.compact}-{kind}-{number:06d}"

        # Agents: EDR first, then the tenant's other standard agents.
        agents: list[InstalledAgent] = []
        u = random_()
        if u >= _EDR_NONE:
            if u < _EDR_NONE + (1 - _EDR_NONE) * p_standard:
                versions = server_edr if server and random_() < p_server_edr else primary
            else:
                versions = market.items[bisect(market.cum, random_() * market.total)]
            vt = versions[fam]
            agents.append(vt.items[bisect(vt.cum, random_() * vt.total)])
        if prof.p_vpn and random_() < prof.p_vpn:
            agent = vpn[fam]
            if agent is not None:
                agents.append(agent)
        if random_() < prof.p_backup:
            agent = (backup if server else ep_backup)[fam]
            if agent is not None:
                agents.append(agent)
        if server and random_() < prof.p_monitor:
            agent = monitoring[fam]
            if agent is not None:
                agents.append(agent)
        if prof.extra:
            agents.extend(prof.extra)

        if prof.p_encrypt and random_() < prof.p_encrypt:
            encryption = prof.encryption
            escrowed = random_() < prof.p_escrow
            verified = escrowed and random_() < _VERIFIED
        else:
            encryption, escrowed, verified = none, False, False

        canary = random_() < _CANARY
        if mine:
            tier = min(services[k].tier for k in mine)
            host_labels: Mapping[str, str] = {"role": _SRV, "app": services[mine[0]].name}
            if canary:
                host_labels = {**host_labels, "canary": ""}
        elif server:
            tier = 3
            host_labels = labels[(_SRV, canary, 3)]
        else:
            u = random_()
            tier = 1 if u < 0.003 else 2 if u < 0.028 else 3
            host_labels = labels[(_WS, canary, tier)]

        provider = prof.provider
        if provider:
            region, zones = site.clouds[provider]
            zone = zones[int(random_() * len(zones))] if zones else ""
        else:
            region = zone = ""

        u = random_()
        if u < 0.955:
            last_seen: datetime | None = recent[int(random_() * 900)]
        elif u < 0.995:
            last_seen = stale[int(random_() * len(stale))]
        else:
            last_seen = None

        ids.append(host_id)
        out_hosts.append(Host(
            id=host_id,
            hostname=hostname,
            tenant=tenant_id,
            os_family=prof.family,
            os_name=prof.os_name,
            os_version=prof.os_version,
            os_build=prof.os_build,
            arch=prof.arch,
            hardware_vendor=prof.vendor,
            hardware_model=prof.model,
            platform=prof.platform,
            cloud_provider=provider,
            cloud_region=region,
            cloud_zone=zone,
            site=site.name,
            country=site.country,
            subdivision=site.subdivision,
            timezone=site.timezone,
            tier=tier,
            labels=host_labels,
            services=tuple(services[k].id for k in mine) if mine else (),
            agents=tuple(agents),
            encryption=encryption,
            recovery_key_escrowed=escrowed,
            recovery_key_verified=verified,
            oob_management=random_() < prof.p_oob,
            local_admin=random_() < prof.p_admin,
            usb_boot=prof.p_usb > 0 and random_() < prof.p_usb,
            last_seen=last_seen,
        ))

    for svc in services:
        rto, mtd = _OBJECTIVES[svc.tier]
        out_services.append(Service(
            id=svc.id,
            name=svc.name,
            tenant=tenant_id,
            tier=svc.tier,
            rto_minutes=rng.choice(rto),
            mtd_minutes=rng.choice(mtd),
            redundancy_groups=tuple(
                RedundancyGroup(name=name, min_healthy=k, hosts=tuple(ids[m] for m in members))
                for name, members, k in svc.groups
            ),
            depends_on=svc.depends_on,
            regulatory_function=svc.regulatory,
        ))
