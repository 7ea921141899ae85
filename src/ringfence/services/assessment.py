"""Assessment use cases: import key-escrow records; run what-ifs over the stored inventory."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from typing import IO

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.adapters.db.stores import escrow as escrow_store
from ringfence.adapters.db.stores import inventory as inventory_store
from ringfence.domain.access import Role
from ringfence.domain.assessment import Fleet, assess, top
from ringfence.domain.assessment_model import Assessment, KeyEscrow, RecoveryModel, TopEntry
from ringfence.domain.selector import parse as parse_selector
from ringfence.errors import FieldIssue, InputError, shown
from ringfence.runtime import collector_paused
from ringfence.services.context import Actor, Clock

__all__ = ["ESCROW_COLUMNS", "import_escrow", "load_fleet", "parse_escrow_csv", "run"]

ESCROW_COLUMNS = ("host_id", "key_id", "location", "verified")
_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n", ""}
_LOOKS_LIKE_KEY = re.compile(r"^\d{6}(-\d{6}){7}$")  # a BitLocker recovery password: never accept it


def _rows(name: str, reader: csv.DictReader[str]) -> Iterator[dict[str, str]]:
    """The rows one at a time; a CSV error (e.g. a field over 131,072 characters) names its line."""
    while True:
        try:
            row = next(reader, None)
        except csv.Error as e:
            raise InputError.single("file", f"{name} line {reader.line_num} cannot be read as CSV: {e}",
                                    expected="a CSV with columns " + ",".join(ESCROW_COLUMNS)) from e
        if row is None:
            return
        yield row


def parse_escrow_csv(name: str, data: bytes | IO[bytes]) -> list[KeyEscrow]:
    """Parse ``host_id,key_id,location,verified``; every problem names the row and field.

    ``data`` is the file's bytes or a binary stream (an upload spooled to disk), read row by row.
    """
    if isinstance(data, bytes | bytearray):
        data = io.BytesIO(data)
    text = io.TextIOWrapper(data, encoding="utf-8-sig", newline="")
    try:
        return _parse_escrow_rows(name, csv.DictReader(text))
    except UnicodeDecodeError:
        raise InputError.single("file", f"{name} is not UTF-8 text", expected="a UTF-8 CSV") from None
    finally:
        text.detach()  # the caller owns the stream


def _parse_escrow_rows(name: str, reader: csv.DictReader[str]) -> list[KeyEscrow]:
    issues: list[FieldIssue] = []
    try:
        header = list(reader.fieldnames or [])
    except csv.Error as e:  # e.g. a field over the csv module's 131,072 characters
        raise InputError.single("file", f"{name} line {reader.line_num} cannot be read as CSV: {e}",
                                expected="a CSV with columns " + ",".join(ESCROW_COLUMNS)) from e
    missing = [c for c in ESCROW_COLUMNS if c not in header]
    extra = [c for c in header if c not in ESCROW_COLUMNS]
    if missing or extra:
        for c in missing:
            issues.append(FieldIssue(c, "column is missing", f"{name} header", "columns " + ",".join(ESCROW_COLUMNS)))
        for c in extra:
            hint = " (recovery keys themselves are never imported)" if "key" in c.lower() or "password" in c.lower() else ""
            issues.append(FieldIssue(c, f"is not a column{hint}", f"{name} header", "columns " + ",".join(ESCROW_COLUMNS)))
        raise InputError("key escrow import rejected, nothing was changed", issues)
    records: list[KeyEscrow] = []
    for number, row in enumerate(_rows(name, reader), start=2):
        loc = f"{name} row {number}"
        host = (row.get("host_id") or "").strip()
        key = (row.get("key_id") or "").strip()
        where = (row.get("location") or "").strip()
        flag = (row.get("verified") or "").strip().lower()
        if not host:
            issues.append(FieldIssue("host_id", "is missing", loc, "the host's id"))
        if not key:
            issues.append(FieldIssue("key_id", "is missing", loc, "the key protector id, not the key"))
        elif _LOOKS_LIKE_KEY.match(key):
            issues.append(FieldIssue("key_id", "looks like a recovery password", loc,
                                     "the key protector id; never put recovery keys in ringfence"))
        if not where:
            issues.append(FieldIssue("location", "is missing", loc, "e.g. entra-id, active-directory, intune, vault"))
        if flag not in _TRUE | _FALSE:
            issues.append(FieldIssue("verified", f"is {shown(flag)}", loc, "true or false"))
        records.append(KeyEscrow(host_id=host, key_id=key, location=where, verified=flag in _TRUE))
        if len(issues) >= 100:
            break
    if issues:
        raise InputError("key escrow import rejected, nothing was changed", issues)
    return records


def import_escrow(db: Database, files: Sequence[tuple[str, bytes | IO[bytes]]], *, actor: Actor, clock: Clock,
                  reason: str = "") -> dict[str, int]:
    """Import escrow CSVs (all-or-nothing); hosts must exist."""
    actor.require(Role.OPERATOR, "importing key escrow records")
    records = [r for name, data in files for r in parse_escrow_csv(name, data)]
    if not records:
        raise InputError.single("files", "contain no escrow records", expected="at least one row")
    now = clock()
    with db.transaction() as conn:
        known = inventory_store.existing_host_ids(conn, {r.host_id for r in records})
        unknown = sorted({r.host_id for r in records} - known)
        if unknown:
            raise InputError("key escrow import rejected, nothing was changed",
                             [FieldIssue("host_id", f"host {shown(h)} is not in the inventory", "escrow",
                                         "hosts imported before their escrow records") for h in unknown[:100]])
        written = escrow_store.replace_records(conn, records, now)
        audit_store.append(conn, at=now, actor=actor.name, action="escrow.import", target="key_escrow",
                           source=actor.source, reason=reason,
                           details={"records": written, "hosts": len({r.host_id for r in records})})
    return {"records": written, "hosts": len({r.host_id for r in records}),
            "verified": sum(1 for r in records if r.verified)}


def load_fleet(db: Database) -> Fleet:
    """The whole inventory and escrow records, indexed for assessment."""
    with db.transaction() as conn:
        hosts = inventory_store.all_hosts(conn)
        services = inventory_store.list_services(conn)
        escrow = escrow_store.all_records(conn)
    return Fleet(hosts, services, escrow or None)


def run(db: Database, what_ifs: list[str], *, top_n: int = 0, actor: Actor,
        recovery: RecoveryModel | None = None, field: str = "what_ifs") -> tuple[list[Assessment], list[TopEntry]]:
    """Assess each what-if (a selector of hosts that fail at once) and optionally rank the top single points of
    failure; errors name ``field`` (the request field the what-ifs came in)."""
    actor.require(Role.VIEWER, "running assessments")
    if not what_ifs and not top_n:
        raise InputError.single(field, "none given", expected="--what-if 'agent.vendor=CrowdStrike' or --top N")
    issues: list[FieldIssue] = []
    for i, expr in enumerate(what_ifs):
        try:
            parse_selector(expr)
        except InputError as e:
            issues.extend(FieldIssue(f"{field}[{i}]", x.message, "what-if", x.expected) for x in e.issues)
    if top_n < 0 or top_n > 1000:
        issues.append(FieldIssue("top", f"is {top_n}", "request", "0 … 1000"))
    if issues:
        raise InputError("assessment rejected", issues)
    model = recovery or RecoveryModel()
    with collector_paused():  # the index and the what-ifs build millions of small acyclic objects
        fleet = load_fleet(db)
        results = [assess(fleet, expr, recovery=model) for expr in what_ifs]
        ranked = top(fleet, top_n) if top_n else []
    return results, ranked
