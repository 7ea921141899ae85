"""Import one host's osquery results into the inventory (docs/inventory.md, "osquery results").

Input: a JSON object whose keys are query names (:data:`QUERIES`) and whose
values are exactly the arrays ``osqueryi --json "<query>"`` prints (every
column value a string), plus an optional ``"ringfence"`` object in
ringfence's own record field names (tenant, site, tier, labels, ... and
overrides of any derived field).  A directory of ``<query>.json`` files (and
``ringfence.json``) is the same document split per query.

Rules, in the order they are applied:

1. ``system_info`` and ``os_version`` are required; every other query is
   optional, and a query the host did not run is simply absent.  Keys that
   are not queries of :data:`QUERIES` are ignored.
2. The id is ``system_info.uuid`` (the SMBIOS UUID); firmware placeholder
   UUIDs that many machines share are refused unless the ``ringfence`` object
   gives an ``id``.  hostname is ``system_info.hostname`` (else
   ``computer_name``).
3. ``os_family`` comes from ``os_version.platform`` (``windows``, ``darwin``,
   a Linux distribution id, or a Linux-ish ``platform_like``); ``os_build`` is
   ``build``, for Linux without a build the ``kernel_info`` version, else the
   ``version`` text.  ``arch`` is normalised (``x86_64``, ``arm64``, ``x86``)
   from ``os_version.arch``, or ``system_info.cpu_type`` when the former only
   says ``64-bit`` (Windows).
4. The platform is ``cloud`` when EC2 or Azure instance metadata has a row
   (or the hardware is an EC2 or Google instance), ``vm`` when the hardware
   vendor or model is a hypervisor's, else ``physical``.
5. Encryption is ``bitlocker`` when ``C:`` has ``protection_status`` 1;
   ``filevault`` on macOS when a volume has ``filevault_status`` "on" (or,
   without that column, ``encrypted`` 1); ``luks`` when a volume is encrypted
   with a LUKS ``type``.
6. Agents are the :mod:`~ringfence.adapters.inventory.catalog` products seen
   in programs, packages, apps, system extensions, drivers and kernel modules,
   one per product.  A driver shared by two products goes to the one the
   host's programs name.  ``kernel_mode`` means an enabled driver or a loaded
   module; ``boot_start`` a driver whose start type is in
   :data:`BOOT_START_TYPES`.  When the driver inventory is missing (no
   ``services`` rows of driver type, as from osquery before 5.10.2) the
   catalog's ``kernel_mode_on`` / ``boot_start_on`` are assumed instead.
7. The ``ringfence`` object is laid over the derived record (its ``agents``
   are added, replacing a detected agent of the same vendor and product), and
   :func:`~ringfence.adapters.inventory.records.host_from_record` validates
   the result, so every format shares one set of rules.

Every problem becomes a :class:`~ringfence.errors.FieldIssue` located as
``"<file> <query>[row]"`` (``"<file> ringfence"`` for the overlay) with the
osquery column or ringfence field and what was expected; nothing raises.
This module does no I/O except :func:`read_osquery_dir`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ringfence.adapters import bounded_json
from ringfence.adapters.inventory import catalog
from ringfence.adapters.inventory.records import HOST_FIELDS, Issues, host_from_record, parse_agents_text
from ringfence.domain.model import Host, OsFamily
from ringfence.errors import shown

__all__ = [
    "BOOT_START_TYPES",
    "DRIVER_SERVICE_TYPES",
    "QUERIES",
    "OsqueryQuery",
    "host_from_osquery",
    "is_osquery_document",
    "read_osquery_dir",
]


@dataclass(frozen=True, slots=True)
class OsqueryQuery:
    """One query of the collection: its key in the document, its SQL and where it runs."""

    name: str
    sql: str
    platforms: tuple[str, ...]
    required: bool = False


_ALL = ("windows", "linux", "macos")

#: The queries ringfence reads, with the SQL to collect them (docs/inventory.md shows the same).
QUERIES: tuple[OsqueryQuery, ...] = (
    OsqueryQuery("system_info", "SELECT uuid, hostname, hardware_vendor, hardware_model, cpu_type, computer_name "
                 "FROM system_info;", _ALL, required=True),
    OsqueryQuery("os_version", "SELECT name, version, major, minor, patch, build, platform, platform_like, codename, "
                 "arch FROM os_version;", _ALL, required=True),
    OsqueryQuery("kernel_info", "SELECT version FROM kernel_info;", ("linux",)),
    OsqueryQuery("programs", "SELECT name, version, publisher FROM programs;", ("windows",)),
    OsqueryQuery("deb_packages", "SELECT name, version, arch, status FROM deb_packages;", ("linux",)),
    OsqueryQuery("rpm_packages", "SELECT name, version, release, arch FROM rpm_packages;", ("linux",)),
    OsqueryQuery("apps", "SELECT name, bundle_identifier, bundle_short_version, bundle_version FROM apps;", ("macos",)),
    OsqueryQuery("system_extensions", "SELECT identifier, version, state, category, team FROM system_extensions;",
                 ("macos",)),
    OsqueryQuery("services", "SELECT name, display_name, service_type, start_type, path, module_path, status "
                 "FROM services WHERE service_type IN ('KERNEL_DRIVER','FILE_SYSTEM_DRIVER');", ("windows",)),
    OsqueryQuery("kernel_modules", "SELECT name, size, used_by, status FROM kernel_modules;", ("linux",)),
    OsqueryQuery("bitlocker_info", "SELECT drive_letter, protection_status, conversion_status, encryption_method, "
                 "percentage_encrypted, lock_status FROM bitlocker_info;", ("windows",)),
    OsqueryQuery("disk_encryption", "SELECT name, uuid, encrypted, type, encryption_status FROM disk_encryption;",
                 ("linux",)),
    OsqueryQuery("disk_encryption", "SELECT name, uuid, encrypted, type, encryption_status, filevault_status "
                 "FROM disk_encryption;", ("macos",)),
    OsqueryQuery("ec2_instance_metadata", "SELECT instance_id, instance_type, region, availability_zone "
                 "FROM ec2_instance_metadata;", ("windows", "linux")),
    OsqueryQuery("azure_instance_metadata", "SELECT vm_id, vm_size, location, zone FROM azure_instance_metadata;",
                 ("windows", "linux")),
)

#: ``services.service_type`` values of drivers (osquery 5.10.2 and later list drivers in ``services``).
DRIVER_SERVICE_TYPES = frozenset({"KERNEL_DRIVER", "FILE_SYSTEM_DRIVER"})

#: Driver start types that count as ``boot_start``.  SYSTEM_START drivers are
#: loaded by the kernel during boot too, before any service or user can act: a
#: crash in one boot-loops the host exactly like a BOOT_START driver's
#: (CrowdStrike's csagent.sys is, as far as we know, registered SYSTEM_START).
BOOT_START_TYPES = frozenset({"BOOT_START", "SYSTEM_START"})

_REQUIRED = tuple(q.name for q in QUERIES if q.required)
_SQL = {q.name: q.sql for q in QUERIES}
_OVERLAY = "ringfence"
_BOOLS = frozenset({"recovery_key_escrowed", "recovery_key_verified", "oob_management", "local_admin", "usb_boot"})
_STRUCTURED = frozenset({"labels", "services", "agents", "tier", "last_seen"}) | _BOOLS

#: SMBIOS UUIDs that firmware writes when it has none of its own; many machines share them.
_PLACEHOLDER_UUIDS = frozenset({
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "03000200-0400-0500-0006-000700080009",
    "00020003-0004-0005-0006-000700080009",
})
#: Hardware strings that mean "not filled in" (Windows reports -1 when WMI fails).
_PLACEHOLDER_HARDWARE = frozenset({
    "-1", "to be filled by o.e.m.", "system manufacturer", "system product name", "default string",
    "not specified", "not applicable", "none", "o.e.m.", "oem",
})

_LINUX_IDS = frozenset({
    "ubuntu", "debian", "rhel", "centos", "fedora", "amzn", "sles", "sled", "opensuse", "opensuse-leap",
    "opensuse-tumbleweed", "arch", "gentoo", "rocky", "almalinux", "ol", "linuxmint", "pop", "kali", "alpine",
    "photon", "mariner", "azurelinux", "cos", "flatcar", "raspbian", "manjaro", "nixos", "void", "clear-linux-os",
    "rhcos", "scientific", "cloudlinux", "virtuozzo", "bottlerocket", "wolfi", "chainguard", "posix",
})
_LINUX_LIKE = frozenset({"debian", "ubuntu", "rhel", "fedora", "centos", "suse", "opensuse", "arch", "gentoo",
                         "alpine", "linux"})

_VIRTUAL_VENDORS = ("vmware", "qemu", "innotek", "virtualbox", "xen", "bochs", "parallels", "nutanix",
                    "openstack", "ovirt", "digitalocean", "hetzner", "kvm")
_VIRTUAL_MODELS = ("virtual machine", "virtualbox", "vmware", "kvm", "qemu", "hvm domu", "openstack", "virtualmac",
                   "standard pc (", "bochs", "parallels")


def is_osquery_document(doc: object) -> bool:
    """True when a JSON object has the ``system_info`` and ``os_version`` keys of an osquery document."""
    return isinstance(doc, Mapping) and "system_info" in doc and "os_version" in doc


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return bounded_json.kind_of(value)


class _Results:
    """The queries of one document, each checked once; problems go to ``issues``."""

    def __init__(self, doc: Mapping[str, Any], source: str, issues: Issues) -> None:
        self.doc = doc
        self.source = source
        self.issues = issues
        self._rows: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}

    def loc(self, query: str, row: int | None = None) -> str:
        return f"{self.source} {query}" if row is None else f"{self.source} {query}[{row}]"

    def collected(self, query: str) -> bool:
        """True when the document carries the query's rows (even none)."""
        return isinstance(self.doc.get(query), list)

    def rows(self, query: str) -> list[tuple[int, Mapping[str, Any]]]:
        """The query's rows that are objects, with their index; shape problems are recorded once."""
        if query in self._rows:
            return self._rows[query]
        out: list[tuple[int, Mapping[str, Any]]] = []
        self._rows[query] = out
        value = self.doc.get(query)
        if value is None and query not in self.doc:
            if query in _REQUIRED:
                self.issues.add(self.source, query, "is missing",
                                expected=f'the rows of "{_SQL[query]}" as printed by osqueryi --json')
            return out
        if not isinstance(value, list):
            self.issues.add(self.loc(query), query, f"is {_kind(value)}",
                            expected="an array of rows, exactly as printed by osqueryi --json")
            return out
        for i, row in enumerate(value):
            if isinstance(row, Mapping):
                out.append((i, row))
            else:
                self.issues.add(self.loc(query, i), "row", f"is {_kind(row)}",
                                expected="an object of column name to value")
        if not value and query in _REQUIRED:
            self.issues.add(self.loc(query), query, "has no rows",
                            expected=f'one row of "{_SQL[query]}"')
        return out

    def first(self, query: str) -> tuple[int, Mapping[str, Any]] | None:
        rows = self.rows(query)
        return rows[0] if rows else None

    def cell(self, query: str, index: int, row: Mapping[str, Any], column: str) -> str:
        """One column as text; osquery prints strings, numbers are accepted, anything else is a problem."""
        value = row.get(column)
        if value is None:
            return ""
        if isinstance(value, str):
            return value.strip()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        self.issues.add(self.loc(query, index), column, f"is {_kind(value)}",
                        expected="a string (osqueryi --json prints every column as a string)")
        return ""


@dataclass(slots=True)
class _Found:
    """Evidence gathered for one catalog product."""

    version: str = ""
    rank: int = sys.maxsize
    kernel: bool = False
    boot: bool = False


class _Agents:
    """Collects catalog products in the order evidence arrives; reports them in catalog order."""

    def __init__(self) -> None:
        self.found: dict[catalog.KnownAgent, _Found] = {}

    def note(self, agent: catalog.KnownAgent, version: str = "", rank: int = 0) -> _Found:
        entry = self.found.setdefault(agent, _Found())
        if version and rank < entry.rank:
            entry.version, entry.rank = version, rank
        return entry

    def pick(self, candidates: list[catalog.KnownAgent]) -> catalog.KnownAgent | None:
        """Of products sharing a driver or module, the one the host already shows; else the first."""
        for agent in candidates:
            if agent in self.found:
                return agent
        return candidates[0] if candidates else None

    def records(self) -> list[dict[str, Any]]:
        return [{"vendor": a.vendor, "product": a.product, "version": self.found[a].version,
                 "kernel_mode": self.found[a].kernel or self.found[a].boot, "boot_start": self.found[a].boot}
                for a in catalog.CATALOG if a in self.found]


def _detect_agents(r: _Results, family: OsFamily) -> list[dict[str, Any]]:
    agents = _Agents()
    for i, row in r.rows("programs"):
        name, publisher = r.cell("programs", i, row, "name"), r.cell("programs", i, row, "publisher")
        version = r.cell("programs", i, row, "version")
        for agent, rank in catalog.by_program(name, publisher):
            agents.note(agent, version, rank)
    for i, row in r.rows("deb_packages"):
        status = r.cell("deb_packages", i, row, "status")
        if status and "installed" not in status.split():
            continue  # removed, configuration files left ("deinstall ok config-files")
        for agent in catalog.by_package(r.cell("deb_packages", i, row, "name")):
            agents.note(agent, r.cell("deb_packages", i, row, "version"))
    for i, row in r.rows("rpm_packages"):
        version = r.cell("rpm_packages", i, row, "version")
        release = r.cell("rpm_packages", i, row, "release")
        for agent in catalog.by_package(r.cell("rpm_packages", i, row, "name")):
            agents.note(agent, f"{version}-{release}" if version and release else version)
    for i, row in r.rows("apps"):
        version = r.cell("apps", i, row, "bundle_short_version") or r.cell("apps", i, row, "bundle_version")
        for agent in catalog.by_bundle(r.cell("apps", i, row, "bundle_identifier")):
            agents.note(agent, version)
    for i, row in r.rows("system_extensions"):
        state = r.cell("system_extensions", i, row, "state").lower()
        if "terminated" in state or "uninstall" in state:
            continue
        for agent in catalog.by_bundle(r.cell("system_extensions", i, row, "identifier")):
            agents.note(agent, r.cell("system_extensions", i, row, "version"), rank=1)

    drivers_seen = False
    for i, row in r.rows("services"):
        if r.cell("services", i, row, "service_type").upper() not in DRIVER_SERVICE_TYPES:
            continue
        drivers_seen = True
        name = r.cell("services", i, row, "name")
        candidates = (catalog.by_driver(name, r.cell("services", i, row, "path"))
                      or catalog.by_driver(name, r.cell("services", i, row, "module_path")))
        owner = agents.pick(candidates)
        if owner is None:
            continue
        entry = agents.note(owner)
        start = r.cell("services", i, row, "start_type").upper()
        if start != "DISABLED":
            entry.kernel = True
            entry.boot = entry.boot or start in BOOT_START_TYPES
    modules_seen = r.collected("kernel_modules")
    for i, row in r.rows("kernel_modules"):
        owner = agents.pick(catalog.by_kernel_module(r.cell("kernel_modules", i, row, "name")))
        if owner is not None:
            agents.note(owner).kernel = True

    # Without a driver inventory, assume what the catalog knows (fail closed).
    seen = {OsFamily.WINDOWS: drivers_seen, OsFamily.LINUX: modules_seen}.get(family, False)
    if not seen:
        for agent, entry in agents.found.items():
            entry.kernel = entry.kernel or family in agent.kernel_mode_on
            entry.boot = entry.boot or family in agent.boot_start_on
    return agents.records()


def _os_family(platform: str, platform_like: str) -> OsFamily:
    if platform == "windows":
        return OsFamily.WINDOWS
    if platform == "darwin":
        return OsFamily.MACOS
    if platform in _LINUX_IDS or _LINUX_LIKE & set(platform_like.replace(",", " ").split()):
        return OsFamily.LINUX
    return OsFamily.OTHER


def _norm_arch(raw: str) -> str:
    value = raw.strip().lower().replace("-", "_").replace(" ", "")
    if value in {"", "unknown", "64_bit"}:  # Windows' OSArchitecture "64-bit" does not say x64 or ARM
        return ""
    if value in {"x86_64", "amd64", "x64", "x86_64h", "em64t", "intel64"}:
        return "x86_64"
    if value in {"aarch64", "arm64", "arm64e"} or (value.startswith("arm") and "64" in value):
        return "arm64"
    if value in {"x86", "i386", "i486", "i586", "i686", "32_bit"}:
        return "x86"
    return raw.strip()


def _hardware(value: str) -> str:
    return "" if value.strip().lower() in _PLACEHOLDER_HARDWARE else value.strip()


def _looks_virtual(vendor: str, model: str) -> bool:
    v, m = vendor.lower(), model.lower()
    if any(word in v for word in _VIRTUAL_VENDORS) or any(word in m for word in _VIRTUAL_MODELS):
        return True
    return "red hat" in v and ("kvm" in m or "rhev" in m)


def _cloud_from_hardware(vendor: str, model: str) -> str:
    v, m = vendor.lower(), model.lower()
    if v == "amazon ec2":
        return "aws"
    if v == "google" or m == "google compute engine":
        return "gcp"
    return ""


def _placement(r: _Results, vendor: str, model: str) -> dict[str, str]:
    for i, row in r.rows("ec2_instance_metadata"):
        region = r.cell("ec2_instance_metadata", i, row, "region")
        if region or r.cell("ec2_instance_metadata", i, row, "instance_id"):
            return {"platform": "cloud", "cloud_provider": "aws", "cloud_region": region,
                    "cloud_zone": r.cell("ec2_instance_metadata", i, row, "availability_zone")}
    for i, row in r.rows("azure_instance_metadata"):
        region = r.cell("azure_instance_metadata", i, row, "location")
        if region or r.cell("azure_instance_metadata", i, row, "vm_id"):
            return {"platform": "cloud", "cloud_provider": "azure", "cloud_region": region,
                    "cloud_zone": r.cell("azure_instance_metadata", i, row, "zone")}
    provider = _cloud_from_hardware(vendor, model)
    if provider:
        return {"platform": "cloud", "cloud_provider": provider}
    return {"platform": "vm" if _looks_virtual(vendor, model) else "physical"}


def _encryption(r: _Results, family: OsFamily) -> str:
    for i, row in r.rows("bitlocker_info"):
        letter = r.cell("bitlocker_info", i, row, "drive_letter").upper().rstrip("\\")
        if letter == "C:" and r.cell("bitlocker_info", i, row, "protection_status") == "1":
            return "bitlocker"
    rows = r.rows("disk_encryption")
    if family is OsFamily.MACOS:
        if any("filevault_status" in row for _, row in rows):
            on = any(r.cell("disk_encryption", i, row, "filevault_status").lower() == "on" for i, row in rows)
        else:
            on = any(r.cell("disk_encryption", i, row, "encrypted") == "1" for i, row in rows)
        return "filevault" if on else "none"
    for i, row in rows:
        if (r.cell("disk_encryption", i, row, "encrypted") == "1"
                and "luks" in r.cell("disk_encryption", i, row, "type").lower()):
            return "luks"
    return "none"


def _overlay(doc: Mapping[str, Any], loc: str, issues: Issues) -> dict[str, Any]:
    value = doc.get(_OVERLAY)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        issues.add(loc, _OVERLAY, f"is {_kind(value)}",
                   expected="an object of ringfence host fields (tenant, site, tier, labels, ...)")
        return {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in HOST_FIELDS:
            issues.add(loc, str(key), "is not a host field", expected="one of " + ", ".join(HOST_FIELDS))
        elif key not in _STRUCTURED and item is not None and (
                isinstance(item, bool) or not isinstance(item, str | int | float)):
            issues.add(loc, key, f"is {_kind(item)}", expected="text")
        else:
            out[key] = item
    return out


def _merge_agents(detected: list[dict[str, Any]], extra: Any, loc: str, issues: Issues) -> tuple[list[Any], int]:
    """Detected agents followed by the overlay's; returns the list and where the overlay's start."""
    if extra is None or extra == "":
        return list(detected), len(detected)
    if isinstance(extra, str):
        extra = [{"vendor": a.vendor, "product": a.product, "version": a.version,
                  "kernel_mode": a.kernel_mode, "boot_start": a.boot_start}
                 for a in parse_agents_text(extra, loc, issues)]
    if not isinstance(extra, list):
        issues.add(loc, "agents", f"is {_kind(extra)}",
                   expected="a list of agent objects or text Vendor/Product@version+kernel+boot;...")
        return list(detected), len(detected)

    def key(item: Any) -> tuple[str, str] | None:
        if not isinstance(item, Mapping):
            return None
        return str(item.get("vendor", "")).strip().lower(), str(item.get("product", "")).strip().lower()

    replaced = {key(item) for item in extra} - {None}
    kept = [a for a in detected if key(a) not in replaced]
    return kept + list(extra), len(kept)


_INDEXED = re.compile(r"^agents\[(\d+)\](.*)$")


def host_from_osquery(doc: Mapping[str, Any], *, source: str, issues: Issues) -> Host | None:
    """Convert one host's osquery results to a :class:`Host`; record problems in ``issues``.

    ``source`` names the file (or directory) in every problem's location.
    Returns ``None`` when the document has problems (they are in ``issues``).
    """
    if issues.full:
        return None
    before = len(issues.items)
    given: object = doc  # callers pass parsed JSON; check it rather than trust the annotation
    if not isinstance(given, Mapping):
        issues.add(source, "document", f"is {_kind(given)}",
                   expected="a JSON object of query name to the rows osqueryi --json prints")
        return None
    r = _Results(doc, source, issues)
    ring_loc = r.loc(_OVERLAY)
    overlay = _overlay(doc, ring_loc, issues)
    suppress: set[str] = set()  # record fields whose problem is already reported in osquery's terms

    sys_row = r.first("system_info")
    sys_loc = r.loc("system_info", sys_row[0] if sys_row else 0)
    info: dict[str, str] = {}
    if sys_row is not None:
        for column in ("uuid", "hostname", "computer_name", "hardware_vendor", "hardware_model", "cpu_type"):
            info[column] = r.cell("system_info", sys_row[0], sys_row[1], column)
        if "id" not in overlay:
            if not info["uuid"]:
                issues.add(sys_loc, "uuid", "is missing",
                           expected="the SMBIOS UUID osquery reports (run osqueryi as root), or id in the ringfence "
                                    "object")
                suppress.add("id")
            elif info["uuid"].lower() in _PLACEHOLDER_UUIDS:
                issues.add(sys_loc, "uuid", f"is {shown(info['uuid'])}, a firmware placeholder many machines share",
                           expected="a unique id: set id in the ringfence object")
                suppress.add("id")
    else:
        suppress.update({"id", "hostname"})

    os_row = r.first("os_version")
    os_loc = r.loc("os_version", os_row[0] if os_row else 0)
    osv: dict[str, str] = {}
    family = OsFamily.OTHER
    if os_row is not None:
        for column in ("name", "version", "build", "platform", "platform_like", "arch"):
            osv[column] = r.cell("os_version", os_row[0], os_row[1], column)
        if not osv["platform"] and "os_family" not in overlay:
            issues.add(os_loc, "platform", "is missing", expected="windows, darwin or a Linux distribution id")
            suppress.add("os_family")
        family = _os_family(osv["platform"].lower(), osv["platform_like"].lower())
    else:
        suppress.add("os_family")

    build = osv.get("build", "")
    if not build and family is OsFamily.LINUX:
        kernel = r.first("kernel_info")
        build = (r.cell("kernel_info", kernel[0], kernel[1], "version") if kernel else "") or osv.get("version", "")
    vendor, model = _hardware(info.get("hardware_vendor", "")), _hardware(info.get("hardware_model", ""))
    rec: dict[str, Any] = {
        "id": info.get("uuid", ""),
        "hostname": info.get("hostname") or info.get("computer_name", ""),
        "os_family": family.value if os_row is not None else "",
        "os_name": osv.get("name", ""), "os_version": osv.get("version", ""), "os_build": build,
        "arch": _norm_arch(osv.get("arch", "")) or _norm_arch(info.get("cpu_type", "")),
        "hardware_vendor": vendor, "hardware_model": model,
        **_placement(r, vendor, model),
        "encryption": _encryption(r, family),
    }
    origin: dict[str, tuple[str, str]] = {
        "id": (sys_loc, "uuid"), "hostname": (sys_loc, "hostname"), "hardware_vendor": (sys_loc, "hardware_vendor"),
        "hardware_model": (sys_loc, "hardware_model"), "os_family": (os_loc, "platform"),
        "os_name": (os_loc, "name"), "os_version": (os_loc, "version"), "os_build": (os_loc, "build"),
        "arch": (os_loc, "arch"),
    }
    detected = _detect_agents(r, family)
    rec["agents"], first_extra = _merge_agents(detected, overlay.pop("agents", None), ring_loc, issues)
    for key in overlay:
        origin[key] = (ring_loc, key)
        suppress.discard(key)
    rec.update(overlay)

    mark = len(issues.items)
    host = host_from_record(rec, source, issues)
    relocated = []
    for issue in issues.items[mark:]:
        m = _INDEXED.match(issue.field)
        base = re.split(r"[\[.]", issue.field, maxsplit=1)[0]
        if base in suppress:
            continue
        if m is not None:  # only the overlay's agents can be wrong; number them as the overlay does
            relocated.append(replace(issue, location=ring_loc, field=f"agents[{int(m[1]) - first_extra}]{m[2]}"))
        elif base in origin:
            loc, column = origin[base]
            relocated.append(replace(issue, location=loc, field=column if issue.field == base else issue.field))
        else:
            expected = issue.expected
            if base == "tenant" and issue.message == "is missing":
                expected = 'the tenant id, given in the "ringfence" object'
            relocated.append(replace(issue, location=ring_loc, expected=expected))
    issues.items[mark:] = relocated
    return host if len(issues.items) == before else None


def _decode(data: bytes, loc: str, query: str, issues: Issues) -> str | None:
    # Windows PowerShell 5.1 writes UTF-16 with ">" and UTF-8 with a BOM with Out-File -Encoding utf8.
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        issues.add(loc, query, f"is not {encoding.upper().removesuffix('-SIG')} text (byte {e.start})",
                   expected="UTF-8 JSON as printed by osqueryi --json")
        return None


def read_osquery_dir(path: Path, issues: Issues) -> Host | None:
    """Read one host's results from a directory of ``<query>.json`` files (and ``ringfence.json``).

    Problems are located as ``"<directory> <query>[row]"``; a file that is not
    JSON is reported as ``"<directory>/<file> line N"`` and no host is returned.
    """
    name = path.name or str(path)
    if not path.is_dir():
        issues.add(str(path), "path", "is not a directory", expected="a directory of <query>.json files")
        return None
    doc: dict[str, Any] = {}
    readable = True
    for file in sorted(path.iterdir()):
        if file.suffix.lower() != ".json" or file.name.startswith(".") or not file.is_file():
            continue
        loc, query = f"{name}/{file.name}", file.stem
        try:
            data = file.read_bytes()
        except OSError as e:
            issues.add(loc, query, f"cannot be read ({e.strerror or e})", expected="a readable file")
            readable = False
            continue
        text = _decode(data, loc, query, issues)
        if text is None:
            readable = False
            continue
        if not text.strip():
            issues.add(loc, query, "is empty", expected="the output of osqueryi --json (run the query by hand to see "
                                                        "why osqueryi printed nothing)")
            readable = False
            continue
        try:
            doc[query] = bounded_json.loads(text, location=loc)
        except json.JSONDecodeError as e:
            issues.add(f"{loc} line {e.lineno}", query, f"is not valid JSON ({e.msg} at column {e.colno})",
                       expected="the output of osqueryi --json")
            readable = False
    if not readable:
        return None
    return host_from_osquery(doc, source=name, issues=issues)
