"""osquery results → Host (ringfence.adapters.inventory.osquery and .catalog)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ringfence.adapters.inventory import catalog
from ringfence.adapters.inventory.osquery import (
    QUERIES,
    host_from_osquery,
    is_osquery_document,
    read_osquery_dir,
)
from ringfence.adapters.inventory.records import Issues
from ringfence.domain.model import DiskEncryption, Host, InstalledAgent, OsFamily, Platform
from ringfence.errors import FieldIssue, InputError

FIXTURES = Path(__file__).parent / "fixtures" / "osquery"
SECTION = Path(__file__).parent.parent / "docs" / "inventory.md"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return doc


def convert(doc: Any, source: str = "host.json") -> tuple[Host | None, list[FieldIssue]]:
    issues = Issues()
    host = host_from_osquery(doc, source=source, issues=issues)
    return host, issues.items


def good(doc: Any, source: str = "host.json") -> Host:
    host, issues = convert(doc, source)
    assert issues == []
    assert host is not None
    return host


def agent(vendor: str, product: str, version: str = "", kernel: bool = False, boot: bool = False) -> InstalledAgent:
    return InstalledAgent(vendor=vendor, product=product, version=version, kernel_mode=kernel, boot_start=boot)


# --- good fixtures: one named row per host, with the Host fields it must give ---

GOOD_CASES = {
    "windows11-laptop-crowdstrike.json": {
        "id": "4C4C4544-0051-3510-8058-B7C04F4E3933",
        "hostname": "WS-LON-0142.corp.example.com",
        "tenant": "acme",
        "os_family": OsFamily.WINDOWS,
        "os_name": "Microsoft Windows 11 Enterprise",
        "os_version": "10.0.22631",
        "os_build": "22631",
        "arch": "x86_64",  # os_version.arch says only "64-bit"; system_info.cpu_type decides
        "hardware_vendor": "Dell Inc.",
        "hardware_model": "Latitude 7440",
        "platform": Platform.PHYSICAL,
        "cloud_provider": "",
        "encryption": DiskEncryption.BITLOCKER,
        "country": "GB",
        "timezone": "Europe/London",
        "tier": 3,
        "labels": {"dept": "finance", "form": "laptop"},
        "recovery_key_escrowed": True,
        "recovery_key_verified": True,
        "agents": (
            agent("CrowdStrike", "Falcon Sensor", "7.16.18613.0", kernel=True, boot=True),
            agent("Microsoft", "Defender for Endpoint", "", kernel=True, boot=True),
        ),
    },
    "winsrv2022-azure-sentinelone.json": {
        "id": "8A4E4F9B-3C2D-4E1A-9F0B-6D7C8E9A0B1C",
        "hostname": "az-weu-sql-01",
        "os_family": OsFamily.WINDOWS,
        "os_name": "Microsoft Windows Server 2022 Datacenter",
        "os_build": "20348",
        "platform": Platform.CLOUD,
        "cloud_provider": "azure",
        "cloud_region": "westeurope",
        "cloud_zone": "2",
        "encryption": DiskEncryption.NONE,  # C: reports protection_status 0
        "tier": 0,
        "services": ("payments-db",),
        "oob_management": True,
        "agents": (
            agent("Microsoft", "Defender for Endpoint", "", kernel=True, boot=True),
            agent("SentinelOne", "Sentinel Agent", "24.1.4.257", kernel=True, boot=True),
        ),
    },
    "ubuntu2204-ec2-falcon.json": {
        "id": "ec2b5c6e-8a1d-4f0e-93c2-7d4e1f0a9b3c",
        "hostname": "ip-10-20-3-41",
        "os_family": OsFamily.LINUX,
        "os_name": "Ubuntu",
        "os_version": "22.04.4 LTS (Jammy Jellyfish)",
        "os_build": "6.5.0-1022-aws",  # no build on Linux: the kernel_info version
        "arch": "x86_64",
        "hardware_vendor": "Amazon EC2",
        "platform": Platform.CLOUD,
        "cloud_provider": "aws",
        "cloud_region": "eu-central-1",
        "cloud_zone": "eu-central-1b",
        "encryption": DiskEncryption.NONE,
        "subdivision": "HE",
        # mdatp is in deb_packages only as "deinstall ok config-files": not installed
        "agents": (agent("CrowdStrike", "Falcon Sensor", "7.14.0-16703", kernel=True, boot=False),),
    },
    "rhel9-vmware-luks.json": {
        "id": "4211A3C6-58E2-9B7D-1F0C-3A5E8D2B6C41",
        "os_family": OsFamily.LINUX,
        "os_name": "Red Hat Enterprise Linux",
        "os_build": "5.14.0-427.13.1.el9_4.x86_64",
        "hardware_vendor": "VMware, Inc.",
        "platform": Platform.VM,
        "cloud_provider": "",
        "encryption": DiskEncryption.LUKS,
        "tier": 0,
        "recovery_key_escrowed": True,
        "recovery_key_verified": False,
        # the vmw_* modules ship with the kernel, so VMware Tools is not kernel-mode here
        "agents": (
            agent("Microsoft", "Defender for Endpoint", "101.24052.0002-1"),
            agent("VMware", "VMware Tools", "12.3.5-2.el9"),
        ),
    },
    "macos14-laptop-filevault.json": {
        "id": "6F9A2C1E-3B4D-4E6F-8A7B-9C0D1E2F3A4B",
        "hostname": "mbp-lon-0731.local",
        "os_family": OsFamily.MACOS,
        "os_name": "macOS",
        "os_version": "14.5",
        "os_build": "23F79",
        "arch": "arm64",
        "hardware_vendor": "Apple Inc.",
        "hardware_model": "Mac15,3",
        "platform": Platform.PHYSICAL,
        "encryption": DiskEncryption.FILEVAULT,
        # Falcon for macOS is a system extension: user space, not kernel-mode
        "agents": (agent("CrowdStrike", "Falcon Sensor", "7.15.18514.0"),),
    },
}


@pytest.mark.parametrize("name", sorted(GOOD_CASES))
def test_good_fixture_maps_to_host(name: str) -> None:
    doc = load(name)
    assert is_osquery_document(doc)
    host = good(doc, source=name)
    for field, expected in GOOD_CASES[name].items():
        assert getattr(host, field) == expected, field


def test_every_fixture_follows_osqueryi_output() -> None:
    """Rows are objects of strings, as osqueryi --json prints them, with the documented columns only."""
    columns = {q.name: set(re.findall(r"SELECT (.*?) FROM", q.sql)[0].split(", ")) for q in QUERIES}
    columns["disk_encryption"] |= {"filevault_status"}
    for path in FIXTURES.glob("*.json"):
        for query, rows in json.loads(path.read_text(encoding="utf-8")).items():
            if query == "ringfence" or not isinstance(rows, list):
                continue
            for row in rows:
                assert set(row) <= columns[query], (path.name, query, set(row) - columns[query])
                assert all(isinstance(v, str) for v in row.values()), (path.name, query)


# --- bad fixtures: problems name the file, the query (and row) and the field ---

BAD_CASES = {
    "missing system_info": ("bad-missing-system-info.json", "bad-missing-system-info.json", "system_info",
                            "is missing"),
    "table that is not an array": ("bad-non-array-table.json", "bad-non-array-table.json system_info",
                                   "system_info", "is an object"),
    "optional table that is not an array": ("bad-non-array-table.json", "bad-non-array-table.json programs",
                                            "programs", "is a string"),
    "uuid missing": ("bad-uuid-missing.json", "bad-uuid-missing.json system_info[0]", "uuid", "is missing"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_fixture_reports_issue(case: str) -> None:
    name, location, field, message = BAD_CASES[case]
    host, issues = convert(load(name), source=name)
    assert host is None
    assert [(i.location, i.field, i.message) for i in issues if i.field == field] == [(location, field, message)]
    assert all(i.expected for i in issues)


def test_missing_query_is_reported_once() -> None:
    """No follow-up noise such as "id is missing" when system_info itself is missing."""
    _, issues = convert(load("bad-missing-system-info.json"), source="x.json")
    assert [(i.location, i.field) for i in issues] == [("x.json", "system_info")]
    assert "SELECT uuid, hostname" in issues[0].expected


def test_issues_become_one_input_error() -> None:
    issues = Issues()
    for name in ("bad-missing-system-info.json", "bad-uuid-missing.json"):
        assert host_from_osquery(load(name), source=name, issues=issues) is None
    with pytest.raises(InputError) as e:
        issues.raise_if_any("inventory import")
    text = str(e.value)
    assert "bad-missing-system-info.json: system_info: is missing" in text
    assert "bad-uuid-missing.json system_info[0]: uuid: is missing" in text


SHAPE_CASES: dict[str, tuple[Any, str, str, str]] = {
    # name: (change to a good document, location, field, message)
    "document not an object": ([], "host.json", "document", "is an array"),
    "os_version missing": ({"os_version": None}, "host.json", "os_version", "is missing"),
    "system_info empty": ({"system_info": []}, "host.json system_info", "system_info", "has no rows"),
    "row not an object": ({"programs": [["Sentinel Agent", "24.1"]]}, "host.json programs[0]", "row",
                          "is an array"),
    "cell not a string": ({"system_info": [{"uuid": "4C4C4544-0051-3510-8058-B7C04F4E3933",
                                            "hostname": ["a", "b"]}]},
                          "host.json system_info[0]", "hostname", "is an array"),
    "os platform missing": ({"os_version": [{"name": "Something", "platform": ""}]}, "host.json os_version[0]",
                            "platform", "is missing"),
    "placeholder uuid": ({"system_info": [{"uuid": "03000200-0400-0500-0006-000700080009", "hostname": "h"}]},
                         "host.json system_info[0]", "uuid",
                         "is '03000200-0400-0500-0006-000700080009', a firmware placeholder many machines share"),
    "ringfence not an object": ({"ringfence": ["acme"]}, "host.json ringfence", "ringfence", "is an array"),
    "ringfence unknown field": ({"ringfence": {"tenant": "acme", "owner": "jane"}}, "host.json ringfence", "owner",
                                "is not a host field"),
    "ringfence text field of wrong type": ({"ringfence": {"tenant": "acme", "site": ["lon", "ber"]}},
                                           "host.json ringfence", "site", "is an array"),
    "ringfence bad tier": ({"ringfence": {"tenant": "acme", "tier": "zero"}}, "host.json ringfence", "tier",
                           "is 'zero'"),
    "ringfence tier out of range": ({"ringfence": {"tenant": "acme", "tier": 7}}, "host.json ringfence", "tier",
                                    "is 7"),
    "ringfence bad timezone": ({"ringfence": {"tenant": "acme", "timezone": "CET+1"}}, "host.json ringfence",
                               "timezone", "is 'CET+1'"),
    "tenant missing": ({"ringfence": {"site": "lon-hq"}}, "host.json ringfence", "tenant", "is missing"),
    "ringfence bad agent": ({"ringfence": {"tenant": "acme", "agents": [{"vendor": "Acme"}]}},
                            "host.json ringfence", "agents[0].product", "is missing"),
    "ringfence agents of wrong type": ({"ringfence": {"tenant": "acme", "agents": {"vendor": "Acme"}}},
                                       "host.json ringfence", "agents", "is an object"),
}


def apply(base: dict[str, Any], change: Any) -> Any:
    if not isinstance(change, dict):
        return change
    doc = copy.deepcopy(base)
    for key, value in change.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


@pytest.mark.parametrize("case", sorted(SHAPE_CASES))
def test_problem_is_located(case: str) -> None:
    change, location, field, message = SHAPE_CASES[case]
    host, issues = convert(apply(load("windows11-laptop-crowdstrike.json"), change))
    assert host is None
    assert (location, field, message) in [(i.location, i.field, i.message) for i in issues], issues
    assert all(i.expected for i in issues)


def test_tenant_missing_says_where_to_put_it() -> None:
    _, issues = convert(apply(load("windows11-laptop-crowdstrike.json"), {"ringfence": {"site": "x"}}))
    assert [i.expected for i in issues if i.field == "tenant"] == ['the tenant id, given in the "ringfence" object']


def test_numbers_are_accepted_as_cells() -> None:
    doc = apply(load("windows11-laptop-crowdstrike.json"),
                {"bitlocker_info": [{"drive_letter": "C:", "protection_status": 1}]})
    assert good(doc).encryption is DiskEncryption.BITLOCKER


# --- the ringfence overlay ---

def test_overlay_overrides_derived_fields() -> None:
    doc = load("ubuntu2204-ec2-falcon.json")
    doc["ringfence"].update({"hostname": "web-1.prod.example.com", "cloud_zone": "euc1-az2", "id": "web-1"})
    host = good(doc)
    assert (host.id, host.hostname, host.cloud_zone) == ("web-1", "web-1.prod.example.com", "euc1-az2")
    assert host.cloud_region == "eu-central-1"


def test_overlay_id_rescues_placeholder_uuid() -> None:
    doc = apply(load("bad-uuid-missing.json"), {"ringfence": {"tenant": "acme", "id": "build-agent-12"}})
    host = good(doc)
    assert host.id == "build-agent-12"
    assert host.platform is Platform.VM  # QEMU "Standard PC (Q35 + ICH9, 2009)"


def test_overlay_agents_are_added_and_replace_detected() -> None:
    doc = load("windows11-laptop-crowdstrike.json")
    doc["ringfence"]["agents"] = [
        {"vendor": "crowdstrike", "product": "falcon sensor", "version": "7.16.18613.0", "kernel_mode": True,
         "boot_start": False},
        {"vendor": "Acme", "product": "Inhouse Filter", "version": "1.2", "kernel_mode": True},
    ]
    assert good(doc).agents == (
        agent("Microsoft", "Defender for Endpoint", "", kernel=True, boot=True),
        agent("crowdstrike", "falcon sensor", "7.16.18613.0", kernel=True),
        agent("Acme", "Inhouse Filter", "1.2", kernel=True),
    )


def test_overlay_agents_in_text_form() -> None:
    doc = load("rhel9-vmware-luks.json")
    doc["ringfence"]["agents"] = "Acme/Inhouse Filter@1.2+kernel+boot"
    assert good(doc).agents[-1] == agent("Acme", "Inhouse Filter", "1.2", kernel=True, boot=True)


def test_overlay_agent_problems_count_from_the_overlay() -> None:
    doc = load("windows11-laptop-crowdstrike.json")  # two detected agents come first
    doc["ringfence"]["agents"] = [{"vendor": "Acme", "product": "X"}, {"vendor": "Acme", "product": "Y",
                                                                        "kernel_mode": "maybe"}]
    _, issues = convert(doc)
    assert [(i.location, i.field) for i in issues] == [("host.json ringfence", "agents[1].kernel_mode")]


# --- agents: drivers, start types, shared drivers, missing driver inventory ---

def windows_doc(services: list[dict[str, str]] | None, programs: list[dict[str, str]] | None = None) -> dict[str, Any]:
    doc = load("windows11-laptop-crowdstrike.json")
    doc.pop("programs")
    doc.pop("services")
    if services is not None:
        doc["services"] = services
    if programs is not None:
        doc["programs"] = programs
    return doc


def driver(name: str, start: str, kind: str = "KERNEL_DRIVER", path: str = "") -> dict[str, str]:
    return {"name": name, "display_name": name, "service_type": kind, "start_type": start, "path": path,
            "module_path": "", "status": "RUNNING"}


START_TYPE_CASES = {
    # start_type: (kernel_mode, boot_start)
    "BOOT_START": (True, True),
    "SYSTEM_START": (True, True),  # loaded by the kernel during boot: boot-loops like BOOT_START
    "AUTO_START": (True, False),
    "DEMAND_START": (True, False),
    "DISABLED": (False, False),
}


@pytest.mark.parametrize("start", sorted(START_TYPE_CASES))
def test_driver_start_type(start: str) -> None:
    host = good(windows_doc([driver("CSAgent", start, "FILE_SYSTEM_DRIVER"), driver("disk", "BOOT_START")]))
    kernel, boot = START_TYPE_CASES[start]
    assert host.agents == (agent("CrowdStrike", "Falcon Sensor", "", kernel=kernel, boot=boot),)


def test_driver_found_by_image_path() -> None:
    """A renamed service still belongs to the vendor whose directory holds its image."""
    row = driver("CSFalconX", "DEMAND_START", path="\\??\\C:\\Windows\\system32\\drivers\\CrowdStrike\\new.sys")
    assert good(windows_doc([row])).agents == (agent("CrowdStrike", "Falcon Sensor", kernel=True),)


def test_shared_driver_goes_to_the_product_the_host_shows() -> None:
    programs = [{"name": "Trend Micro Deep Security Agent", "version": "20.0.1.17380",
                 "publisher": "Trend Micro Inc."}]
    host = good(windows_doc([driver("tmcomm", "SYSTEM_START")], programs))
    assert host.agents == (agent("Trend Micro", "Deep Security Agent", "20.0.1.17380", kernel=True, boot=True),)
    alone = good(windows_doc([driver("tmcomm", "SYSTEM_START")]))
    assert [a.product for a in alone.agents] == ["Apex One"]  # first catalog entry when nothing else says


def test_program_without_driver_is_user_mode_when_drivers_were_collected() -> None:
    programs = [{"name": "CrowdStrike Windows Sensor", "version": "7.16", "publisher": "CrowdStrike, Inc."}]
    host = good(windows_doc([driver("disk", "BOOT_START")], programs))
    assert host.agents == (agent("CrowdStrike", "Falcon Sensor", "7.16"),)


@pytest.mark.parametrize("services", [None, [{"name": "Spooler", "service_type": "OWN_PROCESS",
                                              "start_type": "AUTO_START"}]],
                         ids=["services not collected", "osquery before 5.10.2 lists no drivers"])
def test_missing_driver_inventory_assumes_catalog_kernel_mode(services: list[dict[str, str]] | None) -> None:
    programs = [{"name": "CrowdStrike Windows Sensor", "version": "7.16", "publisher": "CrowdStrike, Inc."},
                {"name": "Zscaler", "version": "4.4.0.389", "publisher": "Zscaler Inc."}]
    host = good(windows_doc(services, programs))
    assert host.agents == (agent("CrowdStrike", "Falcon Sensor", "7.16", kernel=True, boot=True),
                           agent("Zscaler", "Client Connector", "4.4.0.389"))


def test_program_version_comes_from_the_most_specific_name() -> None:
    programs = [{"name": "CrowdStrike Device Control", "version": "1.0", "publisher": "CrowdStrike, Inc."},
                {"name": "CrowdStrike Windows Sensor", "version": "7.16.18613.0", "publisher": "CrowdStrike, Inc."}]
    assert good(windows_doc(None, programs)).agents[0].version == "7.16.18613.0"


def test_falcon_linux_user_mode_has_no_kernel_agent() -> None:
    doc = load("ubuntu2204-ec2-falcon.json")
    doc["kernel_modules"] = [m for m in doc["kernel_modules"] if not m["name"].startswith("falcon")]
    assert good(doc).agents == (agent("CrowdStrike", "Falcon Sensor", "7.14.0-16703"),)


def test_removed_system_extension_is_not_an_agent() -> None:
    doc = load("macos14-laptop-filevault.json")
    doc["apps"] = []
    doc["system_extensions"][0]["state"] = "terminated_waiting_to_uninstall_on_reboot"
    assert good(doc).agents == ()


# --- OS family, arch, platform and encryption tables ---

OS_CASES = {
    # (platform, platform_like, arch, cpu_type): (os_family, arch)
    ("windows", "windows", "64-bit", "x86_64"): (OsFamily.WINDOWS, "x86_64"),
    ("windows", "windows", "ARM 64-bit Processor", "ARM64"): (OsFamily.WINDOWS, "arm64"),
    ("windows", "windows", "32-bit", "x86"): (OsFamily.WINDOWS, "x86"),
    ("darwin", "darwin", "arm64", "arm64e"): (OsFamily.MACOS, "arm64"),
    ("darwin", "darwin", "x86_64", "x86_64h"): (OsFamily.MACOS, "x86_64"),
    ("ubuntu", "debian", "aarch64", "aarch64"): (OsFamily.LINUX, "arm64"),
    ("rhel", "rhel", "x86_64", "x86_64"): (OsFamily.LINUX, "x86_64"),
    ("amzn", "centos rhel fedora", "x86_64", "x86_64"): (OsFamily.LINUX, "x86_64"),
    ("mydistro", "ubuntu debian", "x86_64", "x86_64"): (OsFamily.LINUX, "x86_64"),
    ("posix", "", "x86_64", "x86_64"): (OsFamily.LINUX, "x86_64"),
    ("freebsd", "freebsd", "amd64", "amd64"): (OsFamily.OTHER, "x86_64"),
}


@pytest.mark.parametrize("case", sorted(OS_CASES))
def test_os_family_and_arch(case: tuple[str, str, str, str]) -> None:
    platform, like, arch, cpu = case
    doc = apply(load("bad-uuid-missing.json"), {
        "system_info": [{"uuid": "A1B2C3D4-0000-1111-2222-333344445555", "hostname": "h", "cpu_type": cpu}],
        "os_version": [{"name": "n", "version": "1", "platform": platform, "platform_like": like, "arch": arch}],
    })
    host = good(doc)
    assert (host.os_family, host.arch) == OS_CASES[case]


PLATFORM_CASES = {
    # (hardware_vendor, hardware_model): (platform, cloud_provider)
    ("Dell Inc.", "PowerEdge R750"): (Platform.PHYSICAL, ""),
    ("VMware, Inc.", "VMware Virtual Platform"): (Platform.VM, ""),
    ("QEMU", "Standard PC (i440FX + PIIX, 1996)"): (Platform.VM, ""),
    ("Microsoft Corporation", "Virtual Machine"): (Platform.VM, ""),  # Hyper-V, or Azure without metadata
    ("Microsoft Corporation", "Surface Laptop 5"): (Platform.PHYSICAL, ""),
    ("innotek GmbH", "VirtualBox"): (Platform.VM, ""),
    ("Xen", "HVM domU"): (Platform.VM, ""),
    ("Red Hat", "KVM"): (Platform.VM, ""),
    ("Nutanix", "AHV"): (Platform.VM, ""),
    ("Apple Inc.", "VirtualMac2,1"): (Platform.VM, ""),
    ("Amazon EC2", "m6i.large"): (Platform.CLOUD, "aws"),
    ("Google", "Google Compute Engine"): (Platform.CLOUD, "gcp"),
    ("-1", "-1"): (Platform.PHYSICAL, ""),
}


@pytest.mark.parametrize("case", sorted(PLATFORM_CASES))
def test_platform_from_hardware(case: tuple[str, str]) -> None:
    vendor, model = case
    doc = load("rhel9-vmware-luks.json")
    doc["system_info"][0].update({"hardware_vendor": vendor, "hardware_model": model})
    host = good(doc)
    assert (host.platform, host.cloud_provider) == PLATFORM_CASES[case]
    if vendor == "-1":
        assert (host.hardware_vendor, host.hardware_model) == ("", "")


ENCRYPTION_CASES: dict[str, tuple[str, dict[str, Any], DiskEncryption]] = {
    "BitLocker on D: only": ("windows11-laptop-crowdstrike.json", {"bitlocker_info": [
        {"drive_letter": "C:", "protection_status": "0"}, {"drive_letter": "D:", "protection_status": "1"}]},
        DiskEncryption.NONE),
    "BitLocker suspended on C:": ("windows11-laptop-crowdstrike.json", {"bitlocker_info": [
        {"drive_letter": "C:", "protection_status": "0", "conversion_status": "1"}]}, DiskEncryption.NONE),
    "bitlocker_info not collected": ("windows11-laptop-crowdstrike.json", {"bitlocker_info": None},
                                     DiskEncryption.NONE),
    "FileVault off on Apple silicon": ("macos14-laptop-filevault.json", {"disk_encryption": [
        {"name": "/dev/disk3s5", "encrypted": "1", "type": "APFS Encryption", "filevault_status": "off"}]},
        DiskEncryption.NONE),
    "FileVault without filevault_status": ("macos14-laptop-filevault.json", {"disk_encryption": [
        {"name": "/dev/disk1s1", "encrypted": "1", "type": "AES-XTS"}]}, DiskEncryption.FILEVAULT),
    "plain dm-crypt is not LUKS": ("rhel9-vmware-luks.json", {"disk_encryption": [
        {"name": "/dev/dm-0", "encrypted": "1", "type": "PLAIN-aes-cbc-essiv:sha256"}]}, DiskEncryption.NONE),
}


@pytest.mark.parametrize("case", sorted(ENCRYPTION_CASES))
def test_encryption(case: str) -> None:
    name, change, expected = ENCRYPTION_CASES[case]
    assert good(apply(load(name), change)).encryption is expected


def test_ec2_metadata_without_rows_is_not_cloud() -> None:
    doc = load("rhel9-vmware-luks.json")
    doc["ec2_instance_metadata"] = []
    doc["azure_instance_metadata"] = [{"vm_id": "", "vm_size": "", "location": "", "zone": ""}]
    assert good(doc).platform is Platform.VM


# --- directory form ---

def split(doc: dict[str, Any], directory: Path) -> Path:
    directory.mkdir()
    for query, rows in doc.items():
        (directory / f"{query}.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return directory


@pytest.mark.parametrize("name", sorted(GOOD_CASES))
def test_directory_form_gives_the_same_host(name: str, tmp_path: Path) -> None:
    issues = Issues()
    host = read_osquery_dir(split(load(name), tmp_path / "host-1"), issues)
    assert issues.items == []
    assert host == good(load(name))


def test_directory_problems_name_the_directory(tmp_path: Path) -> None:
    directory = split(load("bad-uuid-missing.json"), tmp_path / "build-agent-12")
    issues = Issues()
    assert read_osquery_dir(directory, issues) is None
    assert [(i.location, i.field) for i in issues.items] == [("build-agent-12 system_info[0]", "uuid")]


def test_directory_with_bad_json(tmp_path: Path) -> None:
    directory = split(load("rhel9-vmware-luks.json"), tmp_path / "db-fra-07")
    (directory / "rpm_packages.json").write_text('[\n  {"name": "kernel",}\n]\n', encoding="utf-8")
    (directory / "kernel_modules.json").write_text("", encoding="utf-8")
    issues = Issues()
    assert read_osquery_dir(directory, issues) is None
    found = {(i.location, i.field, i.message.split(" (")[0]) for i in issues.items}
    assert found == {("db-fra-07/rpm_packages.json line 2", "rpm_packages", "is not valid JSON"),
                     ("db-fra-07/kernel_modules.json", "kernel_modules", "is empty")}


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_directory_accepts_powershell_encodings(encoding: str, tmp_path: Path) -> None:
    doc = load("winsrv2022-azure-sentinelone.json")
    directory = tmp_path / "az-weu-sql-01"
    directory.mkdir()
    for query, rows in doc.items():
        (directory / f"{query}.json").write_bytes(json.dumps(rows).encode(encoding))
    (directory / "notes.txt").write_text("not a query", encoding="utf-8")
    issues = Issues()
    assert read_osquery_dir(directory, issues) == good(doc)
    assert issues.items == []


def test_directory_that_is_not_one(tmp_path: Path) -> None:
    issues = Issues()
    assert read_osquery_dir(tmp_path / "nope", issues) is None
    assert [i.field for i in issues.items] == ["path"]


# --- API, catalog and documentation pins ---

def test_is_osquery_document() -> None:
    assert is_osquery_document({"system_info": [], "os_version": []})
    assert not is_osquery_document({"system_info": []})
    assert not is_osquery_document({"hosts": []})
    assert not is_osquery_document([{"system_info": []}])


def test_catalog_is_consistent() -> None:
    keys = [(a.vendor, a.product) for a in catalog.CATALOG]
    assert len(keys) == len(set(keys))
    for a in catalog.CATALOG:
        for pattern in (*a.programs, *a.publishers, *a.packages, *a.bundles, *a.drivers, *a.driver_paths,
                        *a.kernel_modules):
            assert pattern == pattern.lower(), (a.product, pattern)
            assert pattern.strip() == pattern, (a.product, pattern)
        assert not any(p.endswith(".sys") for p in a.drivers), a.product


CATALOG_CASES = {
    "Windows program": (catalog.by_program("CrowdStrike Windows Sensor", "CrowdStrike, Inc."), "Falcon Sensor"),
    "Windows publisher only": (catalog.by_program("Falcon Firmware Thing", "CrowdStrike, Inc."), "Falcon Sensor"),
    "deb/rpm package": (catalog.by_package("falcon-sensor"), "Falcon Sensor"),
    "kernel module prefix": (catalog.by_kernel_module("falcon_lsm_pinned_16703"), "Falcon Sensor"),
    "driver by name": (catalog.by_driver("WdFilter"), "Defender for Endpoint"),
    "driver by image file": (catalog.by_driver("x", "\\SystemRoot\\System32\\drivers\\mfehidk.sys"),
                             "Endpoint Security"),
    "macOS bundle": (catalog.by_bundle("com.microsoft.wdav.epsext"), "Defender for Endpoint"),
}


@pytest.mark.parametrize("case", sorted(CATALOG_CASES))
def test_catalog_lookup(case: str) -> None:
    found, product = CATALOG_CASES[case]
    products = [a.product if isinstance(a, catalog.KnownAgent) else a[0].product for a in found]
    assert products == [product]


def test_inbox_windows_drivers_are_not_agents() -> None:
    for name in ("disk", "volmgr", "Ntfs", "Wof", "FileInfo", "storvsc", "vmbus", "netvsc", "iaStorVD"):
        assert catalog.by_driver(name, f"\\SystemRoot\\System32\\drivers\\{name}.sys") == [], name


def test_docs_section_shows_every_query() -> None:
    text = SECTION.read_text(encoding="utf-8")
    assert "\n## osquery results\n" in text
    for query in QUERIES:
        assert query.sql in text, query.name
    for agent_ in catalog.CATALOG:
        assert agent_.product in text, agent_.product
