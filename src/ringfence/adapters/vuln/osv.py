"""Reading OSV records: JSON or YAML files, directories, and per-ecosystem ``all.zip`` archives.

Parsing turns a document into a :class:`ringfence.domain.vulns.Advisory` or
raises :class:`ringfence.errors.InputError` naming the file and every bad
field. Severity is computed here from CVSS vectors with the ``cvss`` package
(v4 preferred over v3 over v2); without a vector, the record's
``database_specific.severity`` label (GitHub's) is used.

Aliases are merged by :func:`merge_aliases`: records are linked when one
record's ``aliases`` names another record *of the same load*; each linked
group becomes one advisory whose id is the smallest id of the group (so the
result does not depend on file order) and whose aliases are every other id
and alias of the group; ``affected`` entries are concatenated, ``modified``
is the latest, ``published`` the earliest, severity the highest. Withdrawn
records are never merged: they are kept on their own and never match.
``upstream`` and ``related`` do not merge records.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cvss import CVSS2, CVSS3, CVSS4  # type: ignore[import-untyped]  # cvss ships no type information

from ringfence.adapters.yamlfile import load_yaml
from ringfence.domain.vulns import (
    Advisory,
    AffectedPackage,
    EventKind,
    Range,
    RangeType,
    Severity,
    SeverityLabel,
    VersionOrderError,
    compare_versions,
)
from ringfence.errors import FieldIssue, InputError, describe, shown

__all__ = ["ZIP_LIMITS", "VectorAgreement", "ZipLimits", "format_agreement", "load_path", "merge_aliases",
           "parse_record", "version_vector_agreement"]

_SEVERITY_TYPES = ("CVSS_V4", "CVSS_V3", "CVSS_V2")
_GHSA_LABELS = {"low": "low", "moderate": "medium", "medium": "medium", "high": "high", "critical": "critical"}


# --------------------------------------------------------------------------- parsing


class _Issues:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[FieldIssue] = []

    def add(self, field: str, message: str, expected: str = "") -> None:
        self.items.append(FieldIssue(field=field, message=message, location=self.source, expected=expected))


def _text(doc: Mapping[str, Any], key: str, where: str, issues: _Issues, *, required: bool = False) -> str:
    value = doc.get(key)
    if value is None or value == "":
        if required:
            issues.add(f"{where}{key}", "is missing", "a non-empty string")
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if not isinstance(value, str):
        issues.add(f"{where}{key}", f"is {describe(value)}", "a string")
        return ""
    return value


def _time(doc: Mapping[str, Any], key: str, issues: _Issues, *, required: bool = False) -> datetime | None:
    value = doc.get(key)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = _text(doc, key, "", issues, required=required)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        issues.add(key, f"{shown(text)} is not a timestamp", "RFC 3339, e.g. 2021-12-10T00:40:56Z")
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _strings(doc: Mapping[str, Any], key: str, where: str, issues: _Issues) -> tuple[str, ...]:
    value = doc.get(key)
    if value is None or value == "":
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        issues.add(f"{where}{key}", f"is {shown(value)}", "a list of strings")
        return ()
    return tuple(value)


def _parse_range(doc: Any, where: str, issues: _Issues) -> Range | None:
    if not isinstance(doc, Mapping):
        issues.add(where, f"is {shown(doc)}", "an object with type and events")
        return None
    type_text = doc.get("type")
    try:
        rtype = RangeType(str(type_text))
    except ValueError:
        issues.add(f"{where}.type", f"is {shown(type_text)}", "SEMVER, ECOSYSTEM or GIT")
        return None
    raw_events = doc.get("events")
    if not isinstance(raw_events, list) or not raw_events:
        issues.add(f"{where}.events", "is missing or empty", "a list of events")
        return None
    events: list[tuple[EventKind, str]] = []
    for j, evt in enumerate(raw_events):
        here = f"{where}.events[{j}]"
        kinds = [k for k in (evt if isinstance(evt, Mapping) else {}) if k in EventKind.__members__.values()]
        if len(kinds) != 1 or not isinstance(evt[kinds[0]], str) or not evt[kinds[0]]:
            issues.add(here, f"is {shown(evt)}", "exactly one of introduced, fixed, last_affected, limit with a version")
            continue
        events.append((EventKind(kinds[0]), evt[kinds[0]]))
    if not any(k == EventKind.INTRODUCED for k, _ in events):
        issues.add(f"{where}.events", "has no introduced event", "at least one introduced event")
        return None
    repo = doc.get("repo")
    return Range(type=rtype, events=tuple(events), repo=repo if isinstance(repo, str) else None)


def _parse_affected(doc: Any, where: str, issues: _Issues) -> AffectedPackage | None:
    if not isinstance(doc, Mapping):
        issues.add(where, f"is {shown(doc)}", "an object")
        return None
    pkg = doc.get("package")
    if not isinstance(pkg, Mapping):
        # Allowed by the schema for records about commits only; nothing to match by name.
        if doc.get("ranges") and all(isinstance(r, Mapping) and r.get("type") == "GIT" for r in doc["ranges"]):
            return None
        issues.add(f"{where}.package", "is missing", "an object with ecosystem and name")
        return None
    ecosystem = _text(pkg, "ecosystem", f"{where}.package.", issues, required=True)
    name = _text(pkg, "name", f"{where}.package.", issues, required=True)
    purl = _text(pkg, "purl", f"{where}.package.", issues) or None
    raw_ranges = doc.get("ranges") or []
    if not isinstance(raw_ranges, list):
        issues.add(f"{where}.ranges", f"is {shown(raw_ranges)}", "a list")
        raw_ranges = []
    ranges = [_parse_range(r, f"{where}.ranges[{i}]", issues) for i, r in enumerate(raw_ranges)]
    versions = _strings(doc, "versions", f"{where}.", issues)
    return AffectedPackage(
        ecosystem=ecosystem, name=name, purl=purl, ranges=tuple(r for r in ranges if r is not None), versions=versions
    )


def _label_for(score: float) -> SeverityLabel:
    if score == 0:
        return SeverityLabel.NONE
    if score < 4:
        return SeverityLabel.LOW
    if score < 7:
        return SeverityLabel.MEDIUM
    if score < 9:
        return SeverityLabel.HIGH
    return SeverityLabel.CRITICAL


def _severity(doc: Mapping[str, Any], issues: _Issues) -> Severity:
    def listed(where: str, value: Any) -> list[Mapping[str, Any]]:
        if value is None or value == "":
            return []
        if not isinstance(value, list):
            issues.add(where, f"is {describe(value)}", "a list of {type, score}")
            return []
        return [s for s in value if isinstance(s, Mapping)]

    entries = listed("severity", doc.get("severity"))
    affected = doc.get("affected")
    for i, aff in enumerate(affected if isinstance(affected, list) else []):
        if isinstance(aff, Mapping):
            entries += listed(f"affected[{i}].severity", aff.get("severity"))
    for s in entries:
        if not isinstance(s.get("score", ""), str):
            issues.add("severity", f"score is {shown(s.get('score'))}", "a CVSS vector string or a severity label")
    by_type = {str(s.get("type")): s["score"] for s in reversed(entries) if isinstance(s.get("score"), str)}
    for kind, cls in zip(_SEVERITY_TYPES, (CVSS4, CVSS3, CVSS2), strict=True):
        vector = by_type.get(kind)
        if not vector:
            continue
        try:
            score = float(cls(vector).base_score)
        except Exception as e:
            issues.add("severity", f"{kind} vector {shown(vector)} is invalid ({e})", "a CVSS vector string")
            continue
        return Severity(label=_label_for(score), score=score, vector=vector, source=kind)
    if "Ubuntu" in by_type:
        ubuntu = by_type["Ubuntu"].lower()
        mapped = "low" if ubuntu == "negligible" else ubuntu
        if mapped in SeverityLabel.__members__.values():
            return Severity(label=SeverityLabel(mapped), source="Ubuntu")
    dbs = doc.get("database_specific")
    if isinstance(dbs, Mapping) and isinstance(dbs.get("severity"), str):
        ghsa = _GHSA_LABELS.get(dbs["severity"].lower())
        if ghsa:
            return Severity(label=SeverityLabel(ghsa), source="database_specific")
    return Severity()


def parse_record(doc: Mapping[str, Any], *, source: str) -> Advisory:
    """One OSV record as an :class:`Advisory`; ``source`` names the file for messages.

    Raises :class:`InputError` listing every malformed field.
    """
    issues = _Issues(source)
    if not isinstance(doc, Mapping):
        raise InputError.single("record", f"is {describe(doc)}", expected="a JSON/YAML object", location=source)
    rid = _text(doc, "id", "", issues, required=True)
    modified = _time(doc, "modified", issues, required=True)
    published = _time(doc, "published", issues)
    withdrawn = _time(doc, "withdrawn", issues)
    aliases = _strings(doc, "aliases", "", issues)
    raw_affected = doc.get("affected") or []
    if not isinstance(raw_affected, list):
        issues.add("affected", f"is {shown(raw_affected)}", "a list")
        raw_affected = []
    affected = [_parse_affected(a, f"affected[{i}]", issues) for i, a in enumerate(raw_affected)]
    severity = _severity(doc, issues)
    summary = _text(doc, "summary", "", issues)
    if issues.items:
        raise InputError(f"malformed OSV record in {source}", issues.items)
    assert modified is not None
    return Advisory(
        id=rid,
        modified=modified,
        aliases=aliases,
        summary=summary,
        published=published,
        withdrawn=withdrawn,
        severity=severity,
        affected=tuple(a for a in affected if a is not None),
        source=source,
    )


# --------------------------------------------------------------------------- loading


def _decode(data: bytes, name: str, source: str) -> Any:
    try:
        if name.endswith((".yaml", ".yml")):
            return load_yaml(data, what="document", location=source, strings_only=True, expected="JSON or YAML")
        return json.loads(data)
    except ValueError as e:
        raise InputError.single("document", f"cannot be parsed: {e}", expected="JSON or YAML", location=source) from e


@dataclass(frozen=True, slots=True)
class ZipLimits:
    """Bounds on an OSV ``all.zip``; the real archives (PyPI, npm, Go, Maven, Debian …) are far inside them."""

    max_entry_bytes: int = 16 * 1024 * 1024  # the largest real OSV record is well under 1 MiB
    max_total_bytes: int = 4 * 1024 * 1024 * 1024
    max_ratio: float = 100.0  # JSON records compress about 5-15×; a bomb 1,000× or more
    ratio_floor_bytes: int = 1024 * 1024  # tiny entries may compress better than any ratio; judge from 1 MiB on
    max_entries: int = 2_000_000


ZIP_LIMITS = ZipLimits()


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, total: int, limits: ZipLimits) -> bytes:
    """One entry, streamed: stop as soon as it passes a limit, whatever its header claims."""
    def refuse(message: str, expected: str) -> InputError:
        return InputError.single("archive", message, expected=expected, location=where)

    if info.file_size > limits.max_entry_bytes:
        raise refuse(f"entry declares {info.file_size:,} bytes uncompressed",
                     f"entries of at most {limits.max_entry_bytes:,} bytes (a zip bomb?)")
    parts: list[bytes] = []
    size = 0
    with archive.open(info) as stream:
        while chunk := stream.read(256 * 1024):
            size += len(chunk)
            if size > limits.max_entry_bytes:
                raise refuse(f"entry expands past {limits.max_entry_bytes:,} bytes",
                             f"entries of at most {limits.max_entry_bytes:,} bytes (a zip bomb?)")
            if total + size > limits.max_total_bytes:
                raise refuse(f"expands past {limits.max_total_bytes:,} bytes in all",
                             f"at most {limits.max_total_bytes:,} bytes uncompressed (a zip bomb?)")
            if size > limits.ratio_floor_bytes and size > limits.max_ratio * max(info.compress_size, 1):
                raise refuse(f"entry expands more than {limits.max_ratio:g}× ({info.compress_size:,} bytes "
                             f"compressed, past {size:,} uncompressed)",
                             f"a compression ratio of at most {limits.max_ratio:g}× (a zip bomb?)")
            parts.append(chunk)
    return b"".join(parts)


def _zip_docs(path: Path, limits: ZipLimits) -> Iterator[tuple[Any, str]]:
    """The records of an OSV ``all.zip``, one entry at a time, within ``limits``."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [i for i in archive.infolist() if i.filename.endswith((".json", ".yaml", ".yml"))]
            if len(members) > limits.max_entries:
                raise InputError.single("archive", f"has {len(members):,} entries", location=str(path),
                                        expected=f"at most {limits.max_entries:,} entries")
            total = 0
            for info in members:
                where = f"{path}!{info.filename}"
                data = _read_entry(archive, info, where, total, limits)
                total += len(data)
                yield _decode(data, info.filename, where), where
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError) as e:
        raise InputError.single("archive", f"is not a readable zip file: {e}", location=str(path),
                                expected="an OSV all.zip (deflate or stored entries)") from e


def _docs(path: Path, limits: ZipLimits) -> Iterator[tuple[Any, str]]:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and child.suffix in (".json", ".yaml", ".yml", ".zip"):
                yield from _docs(child, limits)
    elif path.suffix == ".zip":
        yield from _zip_docs(path, limits)
    else:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise InputError.single("path", f"cannot be read: {e.strerror}", location=str(path)) from e
        yield _decode(data, path.name, str(path)), str(path)


def load_path(path: str | Path, *, merge: bool = True, zip_limits: ZipLimits = ZIP_LIMITS) -> list[Advisory]:
    """Every OSV record in a JSON or YAML file, a directory (recursively) or an ``all.zip``.

    Archives are read one entry at a time within ``zip_limits`` (per-entry and total uncompressed
    size, compression ratio, entry count), counting the bytes that come out, not what headers claim.

    A file may hold one record or a list of records. With ``merge`` (the
    default) aliased records are merged as described in the module docstring.
    Problems in several records are reported together in one :class:`InputError`.
    """
    root = Path(path)
    if not root.exists():
        raise InputError.single("path", "does not exist", location=str(root))
    advisories: list[Advisory] = []
    issues: list[FieldIssue] = []
    for doc, source in _docs(root, zip_limits):
        records = doc if isinstance(doc, list) else [doc]
        for k, record in enumerate(records):
            where = source if len(records) == 1 else f"{source}[{k}]"
            try:
                advisories.append(parse_record(record, source=where))
            except InputError as e:
                issues.extend(e.issues)
    if issues:
        raise InputError(f"malformed OSV records under {root}", issues)
    return merge_aliases(advisories) if merge else advisories


def merge_aliases(advisories: Sequence[Advisory]) -> list[Advisory]:
    """Merge records that name each other in ``aliases`` (see the module docstring), keeping input order."""
    live = {a.id: a for a in advisories if a.withdrawn is None}
    parent = {i: i for i in live}

    def find(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for adv in live.values():
        for alias in adv.aliases:
            if alias in live:
                ra, rb = find(adv.id), find(alias)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[Advisory]] = {}
    for adv in live.values():
        groups.setdefault(find(adv.id), []).append(adv)
    out: list[Advisory] = []
    emitted: set[str] = set()
    for adv in advisories:
        if adv.withdrawn is not None:
            out.append(adv)
            continue
        root = find(adv.id)
        if root in emitted:
            continue
        emitted.add(root)
        out.append(_merge(sorted(groups[root], key=lambda a: a.id)))
    return out


def _merge(group: Sequence[Advisory]) -> Advisory:
    if len(group) == 1:
        return group[0]
    head = group[0]
    ids = [a.id for a in group]
    aliases = dict.fromkeys(x for a in group for x in (a.id, *a.aliases) if x != head.id)
    affected = tuple(dict.fromkeys(p for a in group for p in a.affected))
    published = [a.published for a in group if a.published is not None]
    return Advisory(
        id=head.id,
        modified=max(a.modified for a in group),
        aliases=tuple(aliases),
        summary=next((a.summary for a in group if a.summary), ""),
        published=min(published) if published else None,
        withdrawn=None,
        severity=max((a.severity for a in group), key=lambda s: (s.label.rank, s.score or 0.0)),
        affected=affected,
        source=", ".join(dict.fromkeys(a.source or i for a, i in zip(group, ids, strict=True))),
    )


# --------------------------------------------------------------------------- version vectors

#: Vector file prefix (``pypi-versions.txt``) → ordering name in :mod:`ringfence.domain.vulns`.
VECTOR_ORDERINGS = {
    "alpine": "alpine",
    "debian": "debian",
    "maven": "maven",
    "nuget": "nuget",
    "packagist": "packagist",
    "pub": "pub",
    "pypi": "pypi",
    "redhat": "rpm",
    "rubygems": "rubygems",
    "semver": "semver",
}


@dataclass(frozen=True, slots=True)
class VectorAgreement:
    """How many comparisons of one vector file the ordering gets right; ``ordering`` None if unsupported."""

    file: str
    ordering: str | None
    agreed: int
    total: int
    failures: tuple[str, ...] = ()

    @property
    def ratio(self) -> float:
        """Agreement in [0, 1]; 0 for an unsupported ordering."""
        return self.agreed / self.total if self.total and self.ordering else 0.0


def _vector_lines(lines: Iterable[str]) -> Iterator[tuple[str, str, str]]:
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith(("#", "//")):
            continue
        a, op, b = line.split()
        yield a, op, b


def version_vector_agreement(directory: str | Path) -> list[VectorAgreement]:
    """Agreement of each ordering with the osv-scalibr vector files (``<eco>-versions*.txt``, ``a <|=|> b`` a line)."""
    out: list[VectorAgreement] = []
    for path in sorted(Path(directory).glob("*.txt")):
        prefix = path.name.split("-versions", 1)[0]
        ordering = VECTOR_ORDERINGS.get(prefix)
        triples = list(_vector_lines(path.read_text(encoding="utf-8").splitlines()))
        if ordering is None:
            out.append(VectorAgreement(path.name, None, 0, len(triples)))
            continue
        agreed, failures = 0, []
        for a, op, b in triples:
            try:
                got = "<=>"[compare_versions(ordering, a, b) + 1]
            except VersionOrderError:
                got = "cannot parse"
            if got == op:
                agreed += 1
            else:
                failures.append(f"{a} {op} {b} (got {got})")
        out.append(VectorAgreement(path.name, ordering, agreed, len(triples), tuple(failures)))
    return out


def format_agreement(rows: Iterable[VectorAgreement]) -> str:
    """A plain-text table of :func:`version_vector_agreement` rows."""
    lines = [f"{'vector file':36} {'ordering':10} {'agreed':>7} {'total':>7} {'%':>7}"]
    for r in rows:
        pct = f"{100 * r.ratio:6.2f}" if r.ordering else "   n/a"
        lines.append(f"{r.file:36} {r.ordering or 'unsupported':10} {r.agreed:7} {r.total:7} {pct:>7}")
    return "\n".join(lines)
