"""The words every part of ringfence shares (DESIGN §6), as frozen dataclasses.

These are plain values: no database identity, no I/O.  Table classes in
:mod:`ringfence.adapters.db.tables` are kept separate and converted by the
stores.  Changes are made with :func:`dataclasses.replace`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NewType

__all__ = [
    "DiskEncryption",
    "Host",
    "HostId",
    "InstalledAgent",
    "Inventory",
    "OsFamily",
    "Platform",
    "RedundancyGroup",
    "Service",
    "ServiceId",
    "Tenant",
    "TenantId",
]

TenantId = NewType("TenantId", str)
HostId = NewType("HostId", str)
ServiceId = NewType("ServiceId", str)


class OsFamily(StrEnum):
    """Operating-system family, the first component of a host's stratum."""

    WINDOWS = "windows"
    LINUX = "linux"
    MACOS = "macos"
    OTHER = "other"


class Platform(StrEnum):
    """Where the host runs."""

    PHYSICAL = "physical"
    VM = "vm"
    CLOUD = "cloud"


class DiskEncryption(StrEnum):
    """Full-disk encryption of the system volume."""

    NONE = "none"
    BITLOCKER = "bitlocker"
    FILEVAULT = "filevault"
    LUKS = "luks"


@dataclass(frozen=True, slots=True)
class InstalledAgent:
    """Third-party software installed on a host that an update could break.

    ``kernel_mode`` marks software with a kernel driver or module;
    ``boot_start`` marks a driver that loads during boot (the 2024 failure
    mode: a boot-start driver that crashes makes the host boot-loop).
    """

    vendor: str
    product: str
    version: str = ""
    kernel_mode: bool = False
    boot_start: bool = False


@dataclass(frozen=True, slots=True)
class Tenant:
    """A customer organisation; owns hosts, services and policies."""

    id: TenantId
    name: str = ""


@dataclass(frozen=True, slots=True)
class Host:
    """One managed endpoint or server.

    ``id`` is stable across re-imports (osquery ``system_info.uuid``).
    ``tier`` is the criticality tier: 0 is most critical, 3 least.
    ``country`` is ISO 3166-1 alpha-2 and ``subdivision`` the ISO 3166-2
    suffix (``"BY"`` for Bavaria), both used for holiday calendars;
    ``timezone`` is an IANA name.  The recovery key itself is never stored,
    only whether it is escrowed and whether the escrow was verified.
    """

    id: HostId
    hostname: str
    tenant: TenantId
    os_family: OsFamily
    os_name: str = ""
    os_version: str = ""
    os_build: str = ""
    arch: str = "x86_64"
    hardware_vendor: str = ""
    hardware_model: str = ""
    platform: Platform = Platform.PHYSICAL
    cloud_provider: str = ""
    cloud_region: str = ""
    cloud_zone: str = ""
    site: str = ""
    country: str = ""
    subdivision: str = ""
    timezone: str = "UTC"
    tier: int = 3
    labels: Mapping[str, str] = field(default_factory=dict)
    services: tuple[ServiceId, ...] = ()
    agents: tuple[InstalledAgent, ...] = ()
    encryption: DiskEncryption = DiskEncryption.NONE
    recovery_key_escrowed: bool = False
    recovery_key_verified: bool = False
    oob_management: bool = False
    local_admin: bool = False
    usb_boot: bool = False
    last_seen: datetime | None = None

    @property
    def kernel_agents(self) -> tuple[InstalledAgent, ...]:
        """The installed agents that run in kernel mode."""
        return tuple(a for a in self.agents if a.kernel_mode)


@dataclass(frozen=True, slots=True)
class RedundancyGroup:
    """``min_healthy`` of the group's hosts must survive for the service to stay up.

    Members are given either as explicit ``hosts`` or as a ``selector``
    expression over the inventory (see :mod:`ringfence.domain.selector`).
    """

    name: str
    min_healthy: int
    hosts: tuple[HostId, ...] = ()
    selector: str = ""


@dataclass(frozen=True, slots=True)
class Service:
    """A business service with its recovery objectives and redundancy."""

    id: ServiceId
    name: str
    tenant: TenantId
    tier: int = 3
    rto_minutes: int | None = None
    mtd_minutes: int | None = None
    redundancy_groups: tuple[RedundancyGroup, ...] = ()
    depends_on: tuple[ServiceId, ...] = ()
    regulatory_function: str = ""


@dataclass(frozen=True, slots=True)
class Inventory:
    """A batch of inventory records, as read from files or generated."""

    tenants: tuple[Tenant, ...] = ()
    hosts: tuple[Host, ...] = ()
    services: tuple[Service, ...] = ()
