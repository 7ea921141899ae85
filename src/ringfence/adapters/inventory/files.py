"""Read and write inventory files: ringfence CSV, JSON, JSON Lines, services YAML and osquery results.

Which reader applies is decided by the file name and, for JSON, by its shape:

* ``*.csv`` — one host per row, columns as :data:`records.HOST_FIELDS`;
* ``*.jsonl`` / ``*.ndjson`` — one record per line, ``"kind"`` = host (default), tenant or service;
* ``*.json`` — a document ``{"tenants": [...], "hosts": [...], "services": [...]}``, a list of host
  records, or one host's osquery results (see :mod:`.osquery`);
* ``*.yaml`` / ``*.yml`` — ``{"tenants": [...], "services": [...]}`` or a list of services.

:func:`parse_files` reads every file before anything is written and raises
one :class:`~ringfence.errors.InputError` listing every problem with its
file, row or line and field.

Files may be given as bytes or as binary streams (an upload spooled to disk, an open file). CSV and
JSON Lines are read from a stream row by row, so the file's text is never held in memory whole, only the
records it makes; a JSON or YAML document is one value and is read whole (its size is capped by the upload
limit and, for YAML, by :mod:`ringfence.adapters.yamlfile`). Imports stay all-or-nothing: nothing is
written until every file has been read.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import yaml

from ringfence.adapters import bounded_json
from ringfence.adapters.inventory import osquery
from ringfence.adapters.inventory.records import (
    HOST_FIELDS,
    Issues,
    host_from_record,
    host_to_record,
    service_from_record,
    service_to_record,
    tenant_from_record,
)
from ringfence.adapters.yamlfile import load_yaml
from ringfence.domain.model import Host, Inventory, Service, Tenant
from ringfence.errors import InputError, shown
from ringfence.runtime import collector_paused

__all__ = ["SUFFIXES", "parse_files", "read_paths", "write_inventory"]

SUFFIXES = (".csv", ".json", ".jsonl", ".ndjson", ".yaml", ".yml")


class _Batch:
    def __init__(self) -> None:
        self.tenants: list[Tenant] = []
        self.hosts: list[Host] = []
        self.services: list[Service] = []
        self.issues = Issues()

    def add_host(self, rec: Any, loc: str) -> None:
        if not isinstance(rec, Mapping):
            self.issues.add(loc, "host", f"is {bounded_json.kind_of(rec)}", expected="an object with host fields")
            return
        host = host_from_record(rec, loc, self.issues)
        if host is not None:
            self.hosts.append(host)

    def add_service(self, rec: Any, loc: str) -> None:
        svc = service_from_record(rec, loc, self.issues)
        if svc is not None:
            self.services.append(svc)

    def add_tenant(self, rec: Any, loc: str) -> None:
        tenant = tenant_from_record(rec, loc, self.issues)
        if tenant is not None:
            self.tenants.append(tenant)


def _decode(name: str, data: bytes, issues: Issues) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        issues.add(name, "file", f"is not UTF-8 text (byte {e.start})", expected="a UTF-8 encoded file")
        return None


def _csv_error(name: str, line: int, e: csv.Error, batch: _Batch) -> None:
    message = str(e)
    if "field limit" in message:
        batch.issues.add(f"{name} row {line}", "row", f"has a value longer than {csv.field_size_limit():,} characters",
                         expected=f"values of at most {csv.field_size_limit():,} characters")
    else:
        batch.issues.add(f"{name} row {line}", "row", f"cannot be read as CSV ({message})",
                         expected="comma-separated values, quoted where they contain commas, quotes or line breaks")


def _read_csv(name: str, text: str | Iterable[str], batch: _Batch) -> None:
    """Rows one at a time from ``text`` (the whole file, or its lines as read from a stream)."""
    reader = csv.reader(io.StringIO(text, newline="") if isinstance(text, str) else text)
    try:
        header = next(reader, [])
    except csv.Error as e:
        _csv_error(name, reader.line_num, e, batch)
        return
    if not header:
        batch.issues.add(name, "header", "is missing", expected="a first row naming the columns: " + ",".join(HOST_FIELDS))
        return
    unknown = [h for h in header if h not in HOST_FIELDS]
    for col in unknown:
        batch.issues.add(f"{name} header", col, "is not a column of the host schema",
                         expected="one of " + ", ".join(HOST_FIELDS))
    missing = [c for c in ("id", "hostname", "tenant", "os_family") if c not in header]
    for col in missing:
        batch.issues.add(f"{name} header", col, "column is missing", expected="a column named " + col)
    if unknown or missing:
        return
    while not batch.issues.full:
        try:
            values = next(reader, None)
        except csv.Error as e:
            _csv_error(name, reader.line_num, e, batch)
            return
        if values is None:
            return
        if not values:
            continue  # a blank line, as csv.DictReader skips it
        loc = f"{name} row {reader.line_num}"
        if len(values) != len(header):
            batch.issues.add(loc, "row", f"has {len(values)} values for {len(header)} columns",
                             expected=f"{len(header)} comma-separated values (quote values that contain commas)")
            continue
        batch.add_host(dict(zip(header, values, strict=True)), loc)


def _read_jsonl(name: str, text: str | Iterable[str], batch: _Batch) -> None:
    """One record per line of ``text`` (the whole file, or its lines as read from a stream)."""
    lines = text.splitlines() if isinstance(text, str) else (line.rstrip("\r\n") for line in text)
    for lineno, line in enumerate(lines, start=1):
        if batch.issues.full:
            return
        if not line.strip():
            continue
        loc = f"{name} line {lineno}"
        try:
            rec = bounded_json.loads(line, location=loc)
        except json.JSONDecodeError as e:
            batch.issues.add(loc, "json", f"is not valid JSON ({e.msg} at column {e.colno})", expected="one JSON object per line")
            continue
        if not isinstance(rec, dict):
            batch.issues.add(loc, "record", f"is {bounded_json.kind_of(rec)}", expected="a JSON object")
            continue
        kind = rec.get("kind", "host")
        if kind == "host":
            batch.add_host(rec, loc)
        elif kind == "service":
            batch.add_service({k: v for k, v in rec.items() if k != "kind"}, loc)
        elif kind == "tenant":
            batch.add_tenant({k: v for k, v in rec.items() if k != "kind"}, loc)
        else:
            batch.issues.add(loc, "kind", f"is {shown(kind)}", expected="host, service or tenant")


def _read_document(name: str, doc: Any, batch: _Batch) -> None:
    if isinstance(doc, list):
        for i, rec in enumerate(doc):
            batch.add_host(rec, f"{name} hosts[{i}]")
        return
    if not isinstance(doc, dict):
        batch.issues.add(name, "document", f"is {bounded_json.kind_of(doc)}",
                         expected="an object with tenants, hosts and services, or a list of hosts")
        return
    if osquery.is_osquery_document(doc) or "system_info" in doc or "os_version" in doc:
        host = osquery.host_from_osquery(doc, source=name, issues=batch.issues)
        if host is not None:
            batch.hosts.append(host)
        return
    known = {"format", "tenants", "hosts", "services"}
    extra = sorted(set(doc) - known)
    for key in extra[:3]:
        batch.issues.add(name, key, "is not a section of an inventory document",
                         expected="tenants, hosts, services (or an osquery document with system_info and os_version)")
    for section, add in (("tenants", batch.add_tenant), ("hosts", batch.add_host), ("services", batch.add_service)):
        items = doc.get(section, [])
        if items is None:
            continue
        if not isinstance(items, list):
            batch.issues.add(name, section, f"is {bounded_json.kind_of(items)}", expected="a list")
            continue
        for i, rec in enumerate(items):
            if batch.issues.full:
                return
            add(rec, f"{name} {section}[{i}]")


def _read_yaml(name: str, text: str, batch: _Batch) -> None:
    try:
        doc = load_yaml(text, what="yaml", location=name)
    except InputError as e:
        for issue in e.issues:
            batch.issues.add(name, issue.field, issue.message, expected=issue.expected)
        return
    if isinstance(doc, list):
        doc = {"services": doc}
    if not isinstance(doc, dict):
        batch.issues.add(name, "document", f"is {bounded_json.kind_of(doc)}", expected="a mapping with services (and tenants)")
        return
    _read_document(name, doc, batch)


class _Lines:
    """The lines of a text stream for the row-by-row readers; a byte that is not UTF-8 ends them.

    :attr:`bad_byte` then says about where it was, so the rows so far are kept (their problems too) and the
    file is reported as not UTF-8 text, as it is when given whole.
    """

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self.bad_byte: int | None = None
        self._offset = 0

    def __iter__(self) -> Iterator[str]:
        try:
            for line in self._text:
                self._offset += len(line.encode("utf-8"))
                yield line
        except UnicodeDecodeError as e:
            self.bad_byte = self._offset + e.start


def _parse_stream(name: str, stream: IO[bytes], batch: _Batch) -> None:
    suffix = Path(name).suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        _parse_one(name, stream.read(), batch)
        return
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        lines = _Lines(text)
        if suffix == ".csv":
            _read_csv(name, lines, batch)
        else:
            _read_jsonl(name, lines, batch)
    finally:
        text.detach()  # the caller owns the stream: never close it here
    if lines.bad_byte is not None:
        batch.issues.add(name, "file", f"is not UTF-8 text (near byte {lines.bad_byte:,})",
                         expected="a UTF-8 encoded file")


def _parse_one(name: str, data: bytes, batch: _Batch) -> None:
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        batch.issues.add(name, "file", f"has an unknown type {shown(suffix or '(none)')}",
                         expected="one of " + ", ".join(SUFFIXES) + " or an osquery results directory")
        return
    text = _decode(name, data, batch.issues)
    if text is None:
        return
    if suffix == ".csv":
        _read_csv(name, text, batch)
    elif suffix in (".jsonl", ".ndjson"):
        _read_jsonl(name, text, batch)
    elif suffix == ".json":
        try:
            doc = bounded_json.loads(text, location=name)
        except json.JSONDecodeError as e:
            batch.issues.add(f"{name} line {e.lineno}", "json", f"is not valid JSON ({e.msg} at column {e.colno})",
                             expected="a JSON document")
            return
        _read_document(name, doc, batch)
    else:
        _read_yaml(name, text, batch)


def parse_files(files: Iterable[tuple[str, bytes | IO[bytes]]]) -> Inventory:
    """Parse every file (bytes, or a binary stream read from where it is); raise one InputError listing every
    problem, or return the whole batch."""
    batch = _Batch()
    with collector_paused():  # a large fleet is millions of small acyclic objects (ringfence.runtime)
        for name, data in files:
            if isinstance(data, bytes | bytearray):
                _parse_one(name, bytes(data), batch)
            else:
                _parse_stream(name, data, batch)
    batch.issues.raise_if_any("inventory import")
    return Inventory(tenants=tuple(batch.tenants), hosts=tuple(batch.hosts), services=tuple(batch.services))


def read_paths(paths: Sequence[Path]) -> Inventory:
    """Read files and osquery result directories from disk (all before any is used)."""
    batch = _Batch()
    with collector_paused():  # a large fleet is millions of small acyclic objects (ringfence.runtime)
        for path in paths:
            if path.is_dir():
                host = osquery.read_osquery_dir(path, batch.issues)
                if host is not None:
                    batch.hosts.append(host)
            elif not path.exists():
                batch.issues.add(str(path), "file", "does not exist", expected="a path to an inventory file")
            else:
                with path.open("rb") as stream:
                    _parse_stream(path.name, stream, batch)
    batch.issues.raise_if_any("inventory import")
    return Inventory(tenants=tuple(batch.tenants), hosts=tuple(batch.hosts), services=tuple(batch.services))


def write_inventory(inv: Inventory, path: Path) -> list[Path]:
    """Write an inventory as ``.json``, ``.jsonl`` or ``.csv`` (hosts; services beside it as YAML).

    Returns the files written.
    """
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    tenants = [{"id": t.id, "name": t.name} for t in inv.tenants]
    if suffix == ".json":
        doc = {"format": "ringfence-inventory/1", "tenants": tenants,
               "hosts": [host_to_record(h) for h in inv.hosts],
               "services": [service_to_record(s) for s in inv.services]}
        path.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
        return [path]
    if suffix in (".jsonl", ".ndjson"):
        with path.open("w", encoding="utf-8") as out:
            for t in tenants:
                out.write(json.dumps({"kind": "tenant", **t}) + "\n")
            for h in inv.hosts:
                out.write(json.dumps({"kind": "host", **host_to_record(h)}, separators=(",", ":")) + "\n")
            for s in inv.services:
                out.write(json.dumps({"kind": "service", **service_to_record(s)}, separators=(",", ":")) + "\n")
        return [path]
    if suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(HOST_FIELDS))
            writer.writeheader()
            for h in inv.hosts:
                writer.writerow(host_to_record(h, flat=True))
        services_path = path.with_suffix(".services.yaml")
        services_path.write_text(yaml.safe_dump({"tenants": tenants,
                                                 "services": [service_to_record(s) for s in inv.services]},
                                                sort_keys=False), encoding="utf-8")
        return [path, services_path]
    raise InputError.single("out", f"has suffix {shown(suffix or '(none)')}", expected=".json, .jsonl or .csv")
