"""Inventory file formats: good files parse, bad files name file, row and field, writers round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ringfence.adapters.inventory.files import parse_files, read_paths, write_inventory
from ringfence.domain.model import DiskEncryption, OsFamily, Platform
from ringfence.errors import InputError

FIX = Path(__file__).parent / "fixtures" / "inventory"


def test_csv_and_services_yaml_parse() -> None:
    """The documented example files parse into hosts with agents, labels and services."""
    inv = read_paths([FIX / "hosts.csv", FIX / "services.yaml"])
    assert len(inv.hosts) == 4
    laptop = inv.hosts[0]
    assert laptop.os_family is OsFamily.WINDOWS
    assert laptop.labels == {"canary": "", "role": "workstation"}
    assert laptop.agents[0].vendor == "CrowdStrike"
    assert laptop.agents[0].boot_start and laptop.agents[0].kernel_mode
    assert not laptop.agents[1].boot_start and laptop.agents[1].kernel_mode
    assert laptop.encryption is DiskEncryption.BITLOCKER and laptop.recovery_key_escrowed
    server = inv.hosts[1]
    assert server.platform is Platform.CLOUD and server.cloud_region == "eu-central-1" and server.tier == 0
    assert server.services == ("payments",)
    payments = {s.id: s for s in inv.services}["payments"]
    assert payments.redundancy_groups[0].min_healthy == 1 and len(payments.redundancy_groups[0].hosts) == 2
    assert payments.depends_on == ("identity",)
    assert inv.tenants[0].name == "ACME Airlines"


def test_bad_csv_names_every_row_and_field() -> None:
    """One error per bad field, each naming the file, the row (line) and the field with what was expected."""
    with pytest.raises(InputError) as info:
        read_paths([FIX / "bad_hosts.csv"])
    issues = {(i.location, i.field) for i in info.value.issues}
    assert ("bad_hosts.csv row 3", "os_family") in issues
    assert ("bad_hosts.csv row 4", "tier") in issues
    assert ("bad_hosts.csv row 5", "country") in issues
    assert ("bad_hosts.csv row 5", "timezone") in issues
    tier = next(i for i in info.value.issues if i.field == "tier")
    assert tier.expected == "an integer 0..3"
    assert "nothing was changed" in str(info.value)


@pytest.mark.parametrize(("name", "content", "location", "field"), [
    ("h.csv", b"id,hostname,tenant\nh1,a,t\n", "h.csv header", "os_family"),
    ("h.csv", b"id,hostname,tenant,os_family,colour\nh1,a,t,linux,red\n", "h.csv header", "colour"),
    ("h.csv", b"id,hostname,tenant,os_family\nh1,a,t,linux,extra\n", "h.csv row 2", "row"),
    ("h.csv", b"id,hostname,tenant,os_family\n,a,t,linux\n", "h.csv row 2", "id"),
    ("h.csv", b"id,hostname,tenant,os_family,agents\nh1,a,t,linux,CrowdStrike\n", "h.csv row 2", "agents"),
    ("h.jsonl", b'{"id":"h1","hostname":"a","tenant":"t","os_family":"linux"}\n{oops\n', "h.jsonl line 2", "json"),
    ("h.jsonl", b'{"kind":"router","id":"r1"}\n', "h.jsonl line 1", "kind"),
    ("h.json", b'{"hosts": [{"id":"h1","hostname":"a","tenant":"t","os_family":"linux","tier":"high"}]}',
     "h.json hosts[0]", "tier"),
    ("h.json", b'{"hosts": {"id": "h1"}}', "h.json", "hosts"),
    ("h.json", b'{"hosts": [', "h.json line 1", "json"),
    ("s.yaml", b"services:\n  - id: web\n    tenant: t\n    redundancy_groups:\n      - name: g\n        hosts: [a]\n",
     "s.yaml services[0]", "redundancy_groups[0].min_healthy"),
    ("s.yaml", b"services:\n  - id: web\n    tenant: t\n    depends_on: [web]\n", "s.yaml services[0]", "depends_on"),
    ("s.yaml", b"services: [\n", "s.yaml", "yaml"),
    ("h.txt", b"hello", "h.txt", "file"),
    ("h.csv", b"\xff\xfeid", "h.csv", "file"),
])
def test_bad_inputs_are_located(name: str, content: bytes, location: str, field: str) -> None:
    """Table of malformed inputs: each error names where and which field."""
    with pytest.raises(InputError) as info:
        parse_files([(name, content)])
    assert (location, field) in {(i.location, i.field) for i in info.value.issues}, info.value.issues


def test_errors_are_capped_but_counted() -> None:
    """A huge bad file reports the first 100 problems and says more exist."""
    rows = "\n".join(f"h{i},a,t,plan9" for i in range(500))
    with pytest.raises(InputError) as info:
        parse_files([("big.csv", f"id,hostname,tenant,os_family\n{rows}\n".encode())])
    assert len(info.value.issues) == 100
    assert "first 100" in str(info.value)


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
def test_write_then_read_round_trips(tmp_path: Path, suffix: str) -> None:
    """What write_inventory writes, read_paths reads back unchanged."""
    inv = read_paths([FIX / "hosts.csv", FIX / "services.yaml"])
    written = write_inventory(inv, tmp_path / f"fleet{suffix}")
    again = read_paths(written)
    assert again.hosts == inv.hosts
    assert {s.id: s for s in again.services} == {s.id: s for s in inv.services}


def test_json_document_shapes(tmp_path: Path) -> None:
    """A bare list of hosts is accepted as well as the full document."""
    host = {"id": "h1", "hostname": "a", "tenant": "t", "os_family": "linux",
            "agents": [{"vendor": "CrowdStrike", "product": "Falcon Sensor", "version": "7", "boot_start": True}]}
    inv = parse_files([("list.json", json.dumps([host]).encode())])
    assert inv.hosts[0].agents[0].kernel_mode  # boot-start implies kernel mode
