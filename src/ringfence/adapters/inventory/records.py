"""ringfence's own inventory record schema (docs/inventory.md), shared by every format.

A *record* is a flat mapping of field name to value, as found in one JSON
object, one JSON Lines line or one CSV row.  The converters here check every
field and collect every problem as a :class:`~ringfence.errors.FieldIssue`
with its location, so that one pass over a file reports all its errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from ringfence.adapters import bounded_json
from ringfence.domain.host_record import HOST_FIELDS
from ringfence.domain.model import (
    DiskEncryption,
    Host,
    HostId,
    InstalledAgent,
    OsFamily,
    Platform,
    RedundancyGroup,
    Service,
    ServiceId,
    Tenant,
    TenantId,
)
from ringfence.domain.selector import parse as parse_selector
from ringfence.errors import FieldIssue, InputError, shown

__all__ = [
    "HOST_FIELDS",
    "HOST_TEXT_LIMITS",
    "MAX_ISSUES",
    "SERVICE_TEXT_LIMITS",
    "TENANT_TEXT_LIMITS",
    "Issues",
    "agents_to_text",
    "format_agents",
    "host_from_record",
    "host_to_record",
    "labels_to_text",
    "parse_agents_text",
    "service_from_record",
    "service_to_record",
    "tenant_from_record",
]

#: Stop collecting after this many problems: the first hundred name the fix.
MAX_ISSUES = 100

_REQUIRED = ("id", "hostname", "tenant", "os_family")
_BOOL_FIELDS = ("recovery_key_escrowed", "recovery_key_verified", "oob_management", "local_admin", "usb_boot")
_TEXT_FIELDS = ("os_name", "os_version", "os_build", "arch", "hardware_vendor", "hardware_model",
                "cloud_provider", "cloud_region", "cloud_zone", "site", "subdivision")
#: Ids of tenants, hosts and services (also the JSON Schema pattern of API fields that take one).
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$"
_ID = re.compile(ID_PATTERN)

#: The longest text each host field takes, in characters; the same on SQLite and PostgreSQL (these are
#: the column lengths of ``adapters/db/tables.py``, which a test holds them to). Ids are at most 200.
HOST_TEXT_LIMITS: dict[str, int] = {
    "hostname": 255, "os_name": 200, "os_version": 100, "os_build": 100, "arch": 32, "hardware_vendor": 200,
    "hardware_model": 200, "cloud_provider": 32, "cloud_region": 64, "cloud_zone": 64, "site": 100,
    "subdivision": 10, "timezone": 64,
}
#: Label keys and values, and installed agents' vendor, product and version.
LABEL_KEY_LIMIT, LABEL_VALUE_LIMIT, AGENT_NAME_LIMIT, AGENT_VERSION_LIMIT = 200, 400, 200, 100
TENANT_TEXT_LIMITS: dict[str, int] = {"name": 400}
SERVICE_TEXT_LIMITS: dict[str, int] = {"name": 400, "regulatory_function": 200}


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, Mapping):
            stack.extend(str(k) for k in item)
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _check_text(rec: Mapping[str, Any], limits: Mapping[str, int], loc: str, issues: Issues) -> None:
    """Every field's text within its limit and no NUL character anywhere (PostgreSQL cannot store one)."""
    for name, value in rec.items():
        if _has_nul(value):
            issues.add(loc, str(name), "contains a NUL character (\\u0000)", expected="text without NUL characters")
    for name, limit in limits.items():
        size = len(_text(rec.get(name)))
        if size > limit:
            issues.add(loc, name, f"is {size:,} characters long", expected=f"at most {limit} characters")


def _check_lengths(loc: str, issues: Issues, *checks: tuple[str, str, int]) -> None:
    for field, value, limit in checks:
        if len(value) > limit:
            issues.add(loc, field, f"is {len(value):,} characters long", expected=f"at most {limit} characters")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f", ""}
_TIMEZONES: frozenset[str] | None = None


class Issues:
    """Collects :class:`FieldIssue` objects up to :data:`MAX_ISSUES`."""

    def __init__(self) -> None:
        self.items: list[FieldIssue] = []
        self.truncated = False

    def add(self, location: str, field: str, message: str, expected: str = "") -> None:
        """Record one problem."""
        if len(self.items) >= MAX_ISSUES:
            self.truncated = True
            return
        self.items.append(FieldIssue(field=field, message=message, location=location, expected=expected))

    @property
    def full(self) -> bool:
        """True once no more problems will be recorded (readers then stop, and the error says so)."""
        if len(self.items) >= MAX_ISSUES:
            self.truncated = True
            return True
        return False

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self, what: str) -> None:
        """Raise one :class:`InputError` listing every problem recorded."""
        if self.items:
            more = f" (reading stopped at the first {MAX_ISSUES} problems)" if self.truncated else ""
            raise InputError(f"{what} rejected, nothing was changed{more}", self.items)


def _timezones() -> frozenset[str]:
    global _TIMEZONES  # cache of the tz database's names; pure data
    if _TIMEZONES is None:
        _TIMEZONES = frozenset(available_timezones()) | {"UTC"}
    return _TIMEZONES


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _bool(value: Any, field: str, loc: str, issues: Issues) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    issues.add(loc, field, f"is {shown(value)}", expected="true or false")
    return False


def _enum(value: Any, enum: type[OsFamily] | type[Platform] | type[DiskEncryption], field: str, loc: str,
          issues: Issues, default: str) -> Any:
    text = _text(value).lower() or default
    try:
        return enum(text)
    except ValueError:
        issues.add(loc, field, f"is {shown(value)}", expected="one of " + ", ".join(m.value for m in enum))
        return enum(default)


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [_text(v) for v in value if _text(v)]
    return [part.strip() for part in str(value).split(";") if part.strip()]


def parse_labels(value: Any, loc: str, issues: Issues) -> dict[str, str]:
    """Labels as a mapping, or as text ``key=value;key2=value2;flag``."""
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return {str(k).strip(): _text(v) for k, v in value.items()}
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    if not isinstance(value, str):
        issues.add(loc, "labels", f"is {bounded_json.kind_of(value)}", expected="an object or text key=value;key2=value2")
        return {}
    out: dict[str, str] = {}
    for raw in value.split(";"):
        part = raw.strip()
        if not part:
            continue
        key, _, val = part.partition("=")
        if not key.strip():
            issues.add(loc, "labels", f"label {shown(part)} has no key", expected="key=value or key")
            continue
        out[key.strip()] = val.strip()
    return out


def labels_to_text(labels: Mapping[str, str]) -> str:
    """The CSV form of labels."""
    return ";".join(f"{k}={v}" if v else k for k, v in labels.items())


_AGENT_TEXT = re.compile(r"^(?P<vendor>[^/@+]+)/(?P<product>[^@+]+?)(?:@(?P<version>[^+]*))?(?P<flags>(?:\+\w+)*)$")


def parse_agents_text(text: str, loc: str, issues: Issues) -> list[InstalledAgent]:
    """Agents in CSV form: ``Vendor/Product@version+kernel+boot;...``."""
    agents: list[InstalledAgent] = []
    for raw in text.split(";"):
        part = raw.strip()
        if not part:
            continue
        m = _AGENT_TEXT.match(part)
        if m is None:
            issues.add(loc, "agents", f"cannot read {shown(part)}", expected="Vendor/Product@version with optional +kernel +boot")
            continue
        flags = {f for f in m.group("flags").split("+") if f}
        unknown = flags - {"kernel", "boot"}
        if unknown:
            issues.add(loc, "agents", f"unknown flag(s) {', '.join(sorted(unknown))} in {shown(part)}",
                       expected="+kernel or +boot")
        agents.append(InstalledAgent(vendor=m.group("vendor").strip(), product=m.group("product").strip(),
                                     version=(m.group("version") or "").strip(),
                                     kernel_mode="kernel" in flags or "boot" in flags,
                                     boot_start="boot" in flags))
    return agents


def agents_to_text(agents: Sequence[InstalledAgent]) -> str:
    """The CSV form of agents."""
    return ";".join(format_agents(a) for a in agents)


def format_agents(a: InstalledAgent) -> str:
    """One agent in CSV form."""
    flags = ("+kernel" if a.kernel_mode else "") + ("+boot" if a.boot_start else "")
    version = f"@{a.version}" if a.version else ""
    return f"{a.vendor}/{a.product}{version}{flags}"


def _agents(value: Any, loc: str, issues: Issues) -> list[InstalledAgent]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return parse_agents_text(value, loc, issues)
    if not isinstance(value, list):
        issues.add(loc, "agents", f"is {bounded_json.kind_of(value)}", expected="a list of agent objects")
        return []
    agents = []
    for i, item in enumerate(value):
        field = f"agents[{i}]"
        if not isinstance(item, Mapping):
            issues.add(loc, field, f"is {shown(item)}",
                       expected="an object with vendor, product, version, kernel_mode, boot_start")
            continue
        vendor, product = _text(item.get("vendor")), _text(item.get("product"))
        if not vendor:
            issues.add(loc, f"{field}.vendor", "is missing", expected="the vendor's name, e.g. CrowdStrike")
        if not product:
            issues.add(loc, f"{field}.product", "is missing", expected="the product's name, e.g. Falcon Sensor")
        boot = _bool(item.get("boot_start"), f"{field}.boot_start", loc, issues)
        kernel = _bool(item.get("kernel_mode"), f"{field}.kernel_mode", loc, issues) or boot
        agents.append(InstalledAgent(vendor=vendor, product=product, version=_text(item.get("version")),
                                     kernel_mode=kernel, boot_start=boot))
    return agents


def _datetime(value: Any, field: str, loc: str, issues: Issues) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        issues.add(loc, field, f"is {shown(value)}", expected="an ISO 8601 time such as 2026-11-24T09:00:00Z")
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int(value: Any, field: str, loc: str, issues: Issues, *, lo: int, hi: int | None, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        issues.add(loc, field, f"is {shown(value)}",
                   expected=f"an integer {lo}..{hi}" if hi is not None else f"an integer ≥ {lo}")
        return default
    if number < lo or (hi is not None and number > hi):
        issues.add(loc, field, f"is {number}", expected=f"an integer {lo}..{hi}" if hi is not None else f"an integer ≥ {lo}")
        return default
    return number


def _ident(value: Any, field: str, loc: str, issues: Issues) -> str:
    text = _text(value)
    if not text:
        issues.add(loc, field, "is missing", expected="a non-empty identifier")
    elif not _ID.match(text):
        issues.add(loc, field, f"is {shown(text)}",
                   expected="letters, digits and . _ : @ / - (at most 200, starting with a letter or digit)")
    return text


def host_from_record(rec: Mapping[str, Any], loc: str, issues: Issues) -> Host | None:
    """Convert one record to a :class:`Host`; record problems in ``issues``.

    Returns ``None`` when the record has errors (they are in ``issues``).
    """
    before = len(issues.items)
    _check_text(rec, HOST_TEXT_LIMITS, loc, issues)
    unknown = sorted(set(rec) - set(HOST_FIELDS) - {"kind"})
    for name in unknown[:3]:
        issues.add(loc, name, "is not a host field", expected="one of " + ", ".join(HOST_FIELDS))
    for name in _REQUIRED:
        if _text(rec.get(name)) == "":
            issues.add(loc, name, "is missing", expected="a value (required)")
    host_id = _ident(rec.get("id"), "id", loc, issues) if _text(rec.get("id")) else ""
    tenant = _ident(rec.get("tenant"), "tenant", loc, issues) if _text(rec.get("tenant")) else ""
    os_family = _enum(rec.get("os_family"), OsFamily, "os_family", loc, issues, "other")
    platform = _enum(rec.get("platform"), Platform, "platform", loc, issues, "physical")
    encryption = _enum(rec.get("encryption"), DiskEncryption, "encryption", loc, issues, "none")
    country = _text(rec.get("country")).upper()
    if country and not _COUNTRY.match(country):
        issues.add(loc, "country", f"is {shown(country)}", expected="an ISO 3166-1 alpha-2 code such as DE or US")
    timezone = _text(rec.get("timezone")) or "UTC"
    if timezone not in _timezones():
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            issues.add(loc, "timezone", f"is {shown(timezone)}", expected="an IANA time zone such as Europe/Berlin")
    tier = _int(rec.get("tier"), "tier", loc, issues, lo=0, hi=3, default=3)
    labels = parse_labels(rec.get("labels"), loc, issues)
    services = _list(rec.get("services"))
    for svc in services:
        if not _ID.match(svc):
            issues.add(loc, "services", f"service id {shown(svc)} is not valid", expected="letters, digits and . _ : @ / -")
    agents = _agents(rec.get("agents"), loc, issues)
    _check_lengths(loc, issues, *((f"labels.{k}", k, LABEL_KEY_LIMIT) for k in labels),
                   *((f"labels.{k}", v, LABEL_VALUE_LIMIT) for k, v in labels.items()),
                   *((f"agents[{i}].{f}", getattr(a, f), AGENT_NAME_LIMIT if f != "version" else AGENT_VERSION_LIMIT)
                     for i, a in enumerate(agents) for f in ("vendor", "product", "version")))
    bools = {name: _bool(rec.get(name), name, loc, issues) for name in _BOOL_FIELDS}
    last_seen = _datetime(rec.get("last_seen"), "last_seen", loc, issues)
    if len(issues.items) > before or issues.full:
        return None
    texts = {name: _text(rec.get(name)) for name in _TEXT_FIELDS}
    if not texts["arch"]:
        texts["arch"] = "x86_64"
    return Host(
        id=HostId(host_id), hostname=_text(rec.get("hostname")), tenant=TenantId(tenant),
        os_family=os_family, platform=platform, encryption=encryption, country=country,
        timezone=timezone, tier=tier if tier is not None else 3, labels=labels,
        services=tuple(ServiceId(s) for s in services), agents=tuple(agents), last_seen=last_seen,
        recovery_key_escrowed=bools["recovery_key_escrowed"],
        recovery_key_verified=bools["recovery_key_verified"],
        oob_management=bools["oob_management"], local_admin=bools["local_admin"], usb_boot=bools["usb_boot"],
        **texts,
    )


def host_to_record(host: Host, *, flat: bool = False) -> dict[str, Any]:
    """The record form of a host; ``flat`` gives CSV text for labels, services and agents."""
    rec: dict[str, Any] = {
        "id": host.id, "hostname": host.hostname, "tenant": host.tenant, "os_family": host.os_family.value,
        "os_name": host.os_name, "os_version": host.os_version, "os_build": host.os_build, "arch": host.arch,
        "hardware_vendor": host.hardware_vendor, "hardware_model": host.hardware_model,
        "platform": host.platform.value, "cloud_provider": host.cloud_provider,
        "cloud_region": host.cloud_region, "cloud_zone": host.cloud_zone, "site": host.site,
        "country": host.country, "subdivision": host.subdivision, "timezone": host.timezone,
        "tier": host.tier,
        "labels": labels_to_text(host.labels) if flat else dict(host.labels),
        "services": ";".join(host.services) if flat else list(host.services),
        "agents": agents_to_text(host.agents) if flat else [
            {"vendor": a.vendor, "product": a.product, "version": a.version,
             "kernel_mode": a.kernel_mode, "boot_start": a.boot_start} for a in host.agents],
        "encryption": host.encryption.value,
        "recovery_key_escrowed": host.recovery_key_escrowed,
        "recovery_key_verified": host.recovery_key_verified,
        "oob_management": host.oob_management, "local_admin": host.local_admin, "usb_boot": host.usb_boot,
        "last_seen": host.last_seen.isoformat() if host.last_seen else "",
    }
    if flat:
        for key, value in rec.items():
            if isinstance(value, bool):
                rec[key] = "true" if value else "false"
    return rec


def tenant_from_record(rec: Any, loc: str, issues: Issues) -> Tenant | None:
    """Convert ``{"id": ..., "name": ...}`` to a :class:`Tenant`."""
    if not isinstance(rec, Mapping):
        issues.add(loc, "tenant", f"is {shown(rec)}", expected="an object with id and name")
        return None
    before = len(issues.items)
    _check_text(rec, TENANT_TEXT_LIMITS, loc, issues)
    tid = _ident(rec.get("id"), "id", loc, issues)
    if len(issues.items) > before:
        return None
    return Tenant(id=TenantId(tid), name=_text(rec.get("name")) or tid)


def service_from_record(rec: Any, loc: str, issues: Issues) -> Service | None:
    """Convert one service mapping (YAML or JSON) to a :class:`Service`."""
    if not isinstance(rec, Mapping):
        issues.add(loc, "service", f"is {shown(rec)}", expected="a mapping with id, name, tenant, tier, redundancy_groups")
        return None
    before = len(issues.items)
    known = {"id", "name", "tenant", "tier", "rto_minutes", "mtd_minutes", "redundancy_groups",
             "depends_on", "regulatory_function", "kind"}
    _check_text(rec, SERVICE_TEXT_LIMITS, loc, issues)
    for name in sorted(set(rec) - known)[:3]:
        issues.add(loc, name, "is not a service field", expected="one of " + ", ".join(sorted(known - {"kind"})))
    sid = _ident(rec.get("id"), "id", loc, issues)
    tenant = _ident(rec.get("tenant"), "tenant", loc, issues)
    tier = _int(rec.get("tier"), "tier", loc, issues, lo=0, hi=3, default=3)
    rto = _int(rec.get("rto_minutes"), "rto_minutes", loc, issues, lo=0, hi=None, default=None)
    mtd = _int(rec.get("mtd_minutes"), "mtd_minutes", loc, issues, lo=0, hi=None, default=None)
    if rto is not None and mtd is not None and mtd < rto:
        issues.add(loc, "mtd_minutes", f"is {mtd}, less than rto_minutes {rto}", expected="mtd_minutes ≥ rto_minutes")
    deps = _list(rec.get("depends_on"))
    if sid and sid in deps:
        issues.add(loc, "depends_on", f"service {shown(sid)} depends on itself", expected="other services' ids")
    groups: list[RedundancyGroup] = []
    raw_groups = rec.get("redundancy_groups") or []
    if not isinstance(raw_groups, list):
        issues.add(loc, "redundancy_groups", f"is {bounded_json.kind_of(raw_groups)}", expected="a list of groups")
        raw_groups = []
    for i, g in enumerate(raw_groups):
        field = f"redundancy_groups[{i}]"
        if not isinstance(g, Mapping):
            issues.add(loc, field, f"is {shown(g)}", expected="a mapping with name, min_healthy and hosts or selector")
            continue
        name = _text(g.get("name")) or f"group-{i + 1}"
        _check_lengths(loc, issues, (f"{field}.name", name, 200))
        hosts = _list(g.get("hosts"))
        selector = _text(g.get("selector"))
        if bool(hosts) == bool(selector):
            issues.add(loc, f"{field}.hosts", "give exactly one of hosts or selector",
                       expected="hosts: [id, ...] or selector: 'labels.app=web'")
        if selector:
            try:
                parse_selector(selector)
            except InputError as e:
                issues.add(loc, f"{field}.selector", e.issues[0].message if e.issues else e.message,
                           expected=e.issues[0].expected if e.issues else "")
        k = _int(g.get("min_healthy"), f"{field}.min_healthy", loc, issues, lo=0, hi=None, default=None)
        if k is None and "min_healthy" not in g:
            issues.add(loc, f"{field}.min_healthy", "is missing", expected="how many members must stay healthy")
        if k is not None and hosts and k > len(hosts):
            issues.add(loc, f"{field}.min_healthy", f"is {k} but the group has {len(hosts)} hosts",
                       expected=f"at most {len(hosts)}")
        groups.append(RedundancyGroup(name=name, min_healthy=k or 0, hosts=tuple(HostId(h) for h in hosts),
                                      selector=selector))
    if len(issues.items) > before:
        return None
    return Service(id=ServiceId(sid), name=_text(rec.get("name")) or sid, tenant=TenantId(tenant),
                   tier=tier if tier is not None else 3, rto_minutes=rto, mtd_minutes=mtd,
                   redundancy_groups=tuple(groups), depends_on=tuple(ServiceId(d) for d in deps),
                   regulatory_function=_text(rec.get("regulatory_function")))


def service_to_record(svc: Service) -> dict[str, Any]:
    """The record (YAML/JSON) form of a service."""
    rec: dict[str, Any] = {"id": svc.id, "name": svc.name, "tenant": svc.tenant, "tier": svc.tier}
    if svc.rto_minutes is not None:
        rec["rto_minutes"] = svc.rto_minutes
    if svc.mtd_minutes is not None:
        rec["mtd_minutes"] = svc.mtd_minutes
    if svc.regulatory_function:
        rec["regulatory_function"] = svc.regulatory_function
    rec["depends_on"] = list(svc.depends_on)
    rec["redundancy_groups"] = [
        {"name": g.name, "min_healthy": g.min_healthy,
         **({"hosts": list(g.hosts)} if g.hosts else {"selector": g.selector})}
        for g in svc.redundancy_groups
    ]
    return rec
