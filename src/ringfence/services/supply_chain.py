"""Supply-chain use cases: advisories, SBOMs, VEX, findings, signers and signatures, content contracts, fleet queries.

The advisory index is built from the database once and kept by an
:class:`AdvisoryIndexCache` (one per application context, see
:mod:`ringfence.appcontext`) until an import bumps the generation counter, so
matching an SBOM never re-reads 200k advisories; a caller without a cache gets
a freshly built index.  Imports are
all-or-nothing: every file is parsed and validated before anything is
written, and the write is one transaction.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath
from typing import IO, Any

from packageurl import PackageURL
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Signature, SSlibKey  # type: ignore[attr-defined]  # re-exported without __all__
from securesystemslib.signer._utils import compute_default_keyid

from ringfence.adapters import bounded_json
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.adapters.db.stores import rollouts as release_store
from ringfence.adapters.db.stores import supply_chain as store
from ringfence.adapters.db.stores.base import utc
from ringfence.adapters.sbom.parse import Sbom, parse_sbom, to_components
from ringfence.adapters.sbom.write import to_cyclonedx_json
from ringfence.adapters.vuln.osv import load_path, merge_aliases
from ringfence.adapters.vuln.vex import VexStatement, parse_vex
from ringfence.domain.access import Role
from ringfence.domain.rollout import Release
from ringfence.domain.vulns import (
    Advisory,
    AdvisoryIndex,
    Component,
    MatchResult,
    fixed_in,
    normalize_name,
    package_key,
    unorderable_events,
)
from ringfence.errors import ConflictError, FieldIssue, InputError, NotFoundError, shown
from ringfence.services.context import Actor, Clock

__all__ = [
    "FINDINGS_PAGE",
    "MAX_FINDINGS_PAGE",
    "SIGNATURE_CONTEXT",
    "AdvisoryIndexCache",
    "PreparedContract",
    "PreparedSbom",
    "add_signer",
    "advisory_index",
    "artifact_payload",
    "as_of",
    "attach_sbom",
    "components_where",
    "contract_view",
    "findings",
    "import_vex",
    "import_vulns",
    "list_signers",
    "load_public_key",
    "prepare_contract",
    "prepare_sbom",
    "release_findings",
    "sbom_export",
    "sbom_view",
    "store_contract",
    "upload_signatures",
    "verify_signature",
    "vulns_where",
]

#: What a release signature signs: this prefix and the artifact's SHA-256 in hex (domain-separated).
SIGNATURE_CONTEXT = b"ringfence-release-artifact-sha256:"


def artifact_payload(sha256: str) -> bytes:
    """The bytes a release signer signs for one artifact."""
    return SIGNATURE_CONTEXT + sha256.lower().encode("ascii")


# --- the advisory index, cached per application context ------------------------------------------------

class AdvisoryIndexCache:
    """The advisory index of one database, rebuilt only when an import moved the generation counter.

    The application context owns one (:class:`ringfence.appcontext.AppContext`); it is safe to share
    between threads: one thread rebuilds while the others wait, then all read the new index.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._cached: tuple[int, AdvisoryIndex] | None = None

    def index(self) -> AdvisoryIndex:
        """The current index (one cheap query for the generation counter when nothing changed)."""
        with self.db.transaction() as conn:
            gen = store.generation(conn)
        cached = self._cached
        if cached is not None and cached[0] == gen:
            return cached[1]
        with self._lock:
            cached = self._cached
            if cached is not None and cached[0] == gen:
                return cached[1]
            with self.db.transaction() as conn:
                gen = store.generation(conn)
                index = AdvisoryIndex(store.load_advisories(conn))
            self._cached = (gen, index)
            return index


def advisory_index(db: Database, cache: AdvisoryIndexCache | None = None) -> AdvisoryIndex:
    """The advisory index of ``db``: from ``cache`` (which must be this database's), else freshly built."""
    if cache is None:
        return AdvisoryIndexCache(db).index()
    if not cache.db.same_database(db):
        raise ValueError(f"advisory cache of {cache.db.display_url!r} asked for {db.display_url!r}")
    return cache.index()


# --- advisories -------------------------------------------------------------------------------------------

def _safe_name(name: str, k: int) -> str:
    base = PurePath(name.replace("\\", "/")).name or f"upload-{k}"
    return f"{k:04d}-{base}"


def import_vulns(db: Database, files: Sequence[tuple[str, bytes | IO[bytes]]], *, actor: Actor, clock: Clock,
                 reason: str = "", progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Import OSV records (JSON/YAML files or ``all.zip`` archives); all or nothing; re-import replaces by id.

    A file is bytes or a binary stream (an upload spooled to disk): a stream is copied to the work directory a
    buffer at a time, and an archive is then read entry by entry within :data:`ZIP_LIMITS`, so an upload is
    never held in memory whole.
    """
    actor.require(Role.OPERATOR, "importing advisories")
    if not files:
        raise InputError.single("files", "no file given", expected="OSV JSON/YAML files or an all.zip")
    advisories: list[Advisory] = []
    with tempfile.TemporaryDirectory(prefix="ringfence-osv-") as tmp:
        for k, (name, data) in enumerate(files):
            if not name.lower().endswith((".json", ".yaml", ".yml", ".zip")):
                raise InputError.single("files", f"{shown(name)} is not .json, .yaml, .yml or .zip",
                                        expected="OSV records as JSON/YAML, or an OSV all.zip", location=name)
            target = Path(tmp) / _safe_name(name, k)
            if isinstance(data, bytes | bytearray):
                target.write_bytes(data)
            else:
                with target.open("wb") as out:
                    shutil.copyfileobj(data, out, 1024 * 1024)
        if progress:
            progress("parsing")
        try:
            # Unmerged first: merging collapses records of one id, and every duplicate must be reported.
            advisories = load_path(tmp, merge=False)
        except InputError as e:
            raise _without_temp_paths(e, tmp) from None
    # Sources name the uploaded file, not the temporary directory.
    prefix = tmp + "/"
    advisories = [a if not a.source.startswith(prefix) else _with_source(a, a.source[len(prefix) + 5:])
                  for a in advisories]
    counts = Counter(a.id for a in advisories)
    dupes = [{"id": i, "records": n, "sources": [a.source for a in advisories if a.id == i][:10]}
             for i, n in sorted(counts.items()) if n > 1]
    advisories = list({a.id: a for a in advisories}.values())  # the last record of an id wins
    advisories = merge_aliases(advisories)
    unorderable = [{"id": a.id, "source": a.source, "problems": problems}
                   for a in advisories if (problems := unorderable_events(a))]
    now = clock()
    if progress:
        progress("writing")
    with db.transaction() as conn:
        inserted, updated = store.upsert_advisories(conn, advisories, now)
        gen = store.bump_generation(conn, now)
        audit_store.append(conn, at=now, actor=actor.name, action="vulns.import", target="advisories",
                           source=actor.source, reason=reason,
                           details={"files": [n for n, _ in files][:50], "inserted": inserted, "updated": updated,
                                    "generation": gen})
    return {"records": len(advisories), "inserted": inserted, "updated": updated,
            "withdrawn": sum(1 for a in advisories if a.withdrawn is not None),
            "duplicate_ids": [d["id"] for d in dupes], "duplicates": dupes[:100],
            "not_evaluable": unorderable[:100], "not_evaluable_count": len(unorderable), "generation": gen}


def _without_temp_paths(error: InputError, tmp: str) -> InputError:
    """The same error with the server's temporary directory taken out of the message and locations."""
    prefix = tmp + "/"

    def clean(text: str) -> str:
        # Uploaded files are stored as NNNN-<name>; show <name>.
        text = re.sub(re.escape(prefix) + r"\d{4}-", "", text)
        return text.replace(prefix, "").replace(tmp, "the upload")

    issues = [FieldIssue(field=i.field, message=clean(i.message), location=clean(i.location), expected=i.expected)
              for i in error.issues]
    return InputError(clean(error.headline), issues)


def _with_source(adv: Advisory, source: str) -> Advisory:
    import dataclasses  # noqa: PLC0415 - only used here

    return dataclasses.replace(adv, source=source)


# --- SBOMs --------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PreparedSbom:
    """An SBOM parsed and validated, ready to store."""

    sbom: Sbom
    sha256: str
    warnings: tuple[str, ...]


def prepare_sbom(name: str, data: bytes) -> PreparedSbom:
    """Parse (plain walk) and validate (official libraries) an SBOM; InputError names the problem."""
    sbom = parse_sbom(name, data)
    # the official validators import jsonschema, ~5 s of CPU (an RFC 3987 grammar): loaded at the first SBOM
    from ringfence.adapters.sbom.validate import validate_sbom  # noqa: PLC0415

    warnings = validate_sbom(sbom, data)
    return PreparedSbom(sbom=sbom, sha256=hashlib.sha256(data).hexdigest(), warnings=tuple(warnings))


def _component_rows(sbom: Sbom) -> list[dict[str, Any]]:
    rows = []
    for sc, comp in zip(sbom.components, to_components(sbom), strict=True):
        eco, pkg = package_key(comp) if comp.ecosystem else ("", normalize_name("", sc.name))
        rows.append({"name": sc.name, "version": comp.version or sc.version, "purl": sc.purl or "",
                     "ecosystem": eco, "package": pkg, "group": sc.group, "bom_ref": sc.bom_ref,
                     "hashes": [list(h) for h in sc.hashes], "incomplete": not sc.complete,
                     "problems": list(sc.problems)})
    return rows


def _incomplete(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": r["name"], "version": r["version"], "purl": r["purl"], "problems": r["problems"]}
            for r in rows if r["incomplete"]]


def attach_sbom(db: Database, release_id: str, prepared: PreparedSbom, *, actor: Actor, clock: Clock,
                reason: str = "") -> dict[str, Any]:
    """Store a release's SBOM (replacing an earlier one), audited; returns the summary with incomplete components."""
    actor.require(Role.OPERATOR, "importing SBOMs")
    with bounded_json.paused_gc():  # one row object per component: see paused_gc
        return _attach_sbom(db, release_id, prepared, actor=actor, clock=clock, reason=reason)


def _attach_sbom(db: Database, release_id: str, prepared: PreparedSbom, *, actor: Actor, clock: Clock,
                 reason: str) -> dict[str, Any]:
    sbom = prepared.sbom
    rows = _component_rows(sbom)
    now = clock()
    meta = {"format": sbom.format, "spec_version": sbom.spec_version, "name": sbom.name[:400],
            "serial_number": sbom.serial_number[:200], "bom_version": sbom.bom_version, "source": sbom.source[:400],
            "sha256": prepared.sha256, "components": len(rows), "incomplete": sum(1 for r in rows if r["incomplete"]),
            "warnings": list(prepared.warnings), "imported_at": now, "imported_by": actor.name}
    meta["subject_ref"] = sbom.subject_ref[:400]
    with db.transaction() as conn:
        if release_store.get_release(conn, release_id) is None:
            raise NotFoundError(f"release {shown(release_id)} not found; create it with `ringfence release create`")
        replaced = store.replace_sbom(conn, release_id, meta, rows)
        audit_store.append(conn, at=now, actor=actor.name, action="sbom.import", target=f"release/{release_id}",
                           source=actor.source, reason=reason,
                           details={"format": sbom.format, "spec_version": sbom.spec_version, "sha256": prepared.sha256,
                                    "components": len(rows), "replaced": replaced})
    return {"release": release_id, "format": sbom.format, "spec_version": sbom.spec_version, "name": sbom.name,
            "serial_number": sbom.serial_number, "components": len(rows), "incomplete": _incomplete(rows),
            "warnings": list(prepared.warnings), "replaced": replaced, "sha256": prepared.sha256,
            "subject_ref": sbom.subject_ref}


def sbom_view(db: Database, release_id: str, *, actor: Actor) -> dict[str, Any]:
    """A release's SBOM: summary, components and the incomplete ones."""
    actor.require(Role.VIEWER, "reading SBOMs")
    with db.transaction() as conn:
        meta = store.get_sbom(conn, release_id)
        if meta is None:
            if release_store.get_release(conn, release_id) is None:
                raise NotFoundError(f"release {shown(release_id)} not found")
            raise NotFoundError(f"release {release_id} has no SBOM; import one with `ringfence sbom import "
                                f"{release_id} FILE`")
        rows = store.sbom_components(conn, release_id)
    comps = [{k: r[k] for k in ("name", "version", "purl", "ecosystem", "group", "hashes", "incomplete", "problems")}
             for r in rows]
    return {"release": release_id, "format": meta["format"], "spec_version": meta["spec_version"], "name": meta["name"],
            "serial_number": meta["serial_number"], "source": meta["source"], "sha256": meta["sha256"],
            "imported_at": as_of(utc(meta["imported_at"])),
            "imported_by": meta["imported_by"], "warnings": meta["warnings"], "components": comps,
            "incomplete": _incomplete(rows)}


def sbom_export(db: Database, release_id: str, *, actor: Actor) -> str:
    """A release's stored SBOM written as CycloneDX 1.5 JSON (cyclonedx-python-lib)."""
    actor.require(Role.VIEWER, "reading SBOMs")
    with db.transaction() as conn:
        release = release_store.get_release(conn, release_id)
        if release is None:
            raise NotFoundError(f"release {shown(release_id)} not found")
        if store.get_sbom(conn, release_id) is None:
            raise NotFoundError(f"release {release_id} has no SBOM")
        rows = store.sbom_components(conn, release_id)
    return to_cyclonedx_json(release.id, release.product, release.version, rows)


# --- VEX ----------------------------------------------------------------------------------------------------

def import_vex(db: Database, name: str, data: bytes, *, actor: Actor, clock: Clock, reason: str = "") -> dict[str, Any]:
    """Store the statements of a CycloneDX VEX or OpenVEX document (replacing the same vulnerability × product)."""
    actor.require(Role.OPERATOR, "importing VEX")
    statements = parse_vex(name, data)
    now = clock()
    rows = list({(s.vulnerability, s.product): s.as_row() for s in statements}.values())
    with db.transaction() as conn:
        count = store.upsert_vex(conn, rows, now, actor.name)
        audit_store.append(conn, at=now, actor=actor.name, action="vex.import", target=f"vex/{name}",
                           source=actor.source, reason=reason, details={"statements": count})
    return {"document": name, "statements": count, "waiving": sum(1 for s in statements if s.waives),
            "by_status": {st: sum(1 for s in statements if s.status == st) for st in sorted({s.status for s in statements})}}


def _bom_link(serial: str, version: int) -> str:
    return f"urn:cdx:{serial.removeprefix('urn:uuid:')}/{version}"


def _vex_waiver(statements: Sequence[VexStatement], ids: Sequence[str], release: Release,
                sbom: Mapping[str, Any], comp: Mapping[str, Any]) -> VexStatement | None:
    """The first waiving statement about one of ``ids`` that names this release, its SBOM or the component.

    Names that count: the release id; the SBOM's BOM-Link alone, with the subject's bom-ref, or with the
    component's bom-ref; the component's purl (a purl without version names every version).
    """
    names: set[str] = {str(release.id)}
    if sbom.get("serial_number"):
        link = _bom_link(sbom["serial_number"], int(sbom["bom_version"]))
        names.add(link)
        names |= {f"{link}#{ref}" for ref in (sbom.get("subject_ref"), comp.get("bom_ref")) if ref}
    purl = comp.get("purl") or ""
    for s in statements:
        if s.vulnerability in ids and s.waives and (s.product in names or (purl and _purl_covers(s.product, purl))):
            return s
    return None


def _purl_covers(named: str, purl: str) -> bool:
    """A statement's purl names the component: equal, or the same package when the statement has no version."""
    if not named.startswith("pkg:"):
        return False
    try:
        a, b = PackageURL.from_string(named), PackageURL.from_string(purl)
    except ValueError:
        return False
    same = (a.type, (a.namespace or "").lower(), a.name.lower()) == (b.type, (b.namespace or "").lower(), b.name.lower())
    return same and (a.version is None or a.version == b.version)


# --- findings -------------------------------------------------------------------------------------------------

def release_findings(conn: Any, release: Release, index: AdvisoryIndex) -> dict[str, Any]:
    """Findings of a release's SBOM against the index, with VEX waivers applied; None-safe when no SBOM."""
    sbom = store.get_sbom(conn, release.id)
    if sbom is None:
        return {"release": release.id, "sbom": False, "findings": [], "not_evaluated": []}
    rows = store.sbom_components(conn, release.id)
    vex = [VexStatement(**{k: v[k] for k in ("vulnerability", "product", "status", "justification", "detail",
                                              "document", "format")}) for v in store.list_vex(conn)]
    comps = [Component(name=r["name"], version=r["version"], ecosystem=r["ecosystem"], purl=r["purl"] or None)
             for r in rows]
    findings: list[dict[str, Any]] = []
    not_evaluated: list[dict[str, Any]] = []
    for row, comp in zip(rows, comps, strict=True):
        for m in index.match([comp]):
            adv = index.advisories[m.advisory_id]
            entry: dict[str, Any] = {
                "component": {"name": row["name"], "version": row["version"], "purl": row["purl"],
                              "ecosystem": row["ecosystem"]},
                "advisory": adv.id, "aliases": list(adv.aliases), "summary": adv.summary,
                "severity": adv.severity.label.value, "score": adv.severity.score, "reason": m.reason}
            if m.result == MatchResult.NOT_EVALUATED:
                not_evaluated.append(entry)
                continue
            entry["fixed"] = fixed_in(adv, comp)
            waiver = _vex_waiver(vex, adv.ids, release, sbom, row)
            entry["waived"] = waiver is not None
            entry["waived_by"] = (f"VEX {waiver.document}: {waiver.vulnerability} not_affected for {waiver.product} "
                                  f"({waiver.justification})") if waiver else ""
            findings.append(entry)
    findings.sort(key=lambda f: (-_rank(f["severity"]), f["advisory"], f["component"]["name"]))
    return {"release": release.id, "sbom": True, "findings": findings, "not_evaluated": not_evaluated}


def _rank(label: str) -> int:
    order = ["unknown", "none", "low", "medium", "high", "critical"]
    return order.index(label) if label in order else 0


#: Findings per page unless asked otherwise, and at most: a 4,335-component SBOM had 45 MB of findings.
FINDINGS_PAGE, MAX_FINDINGS_PAGE = 500, 5000


def findings(db: Database, release_id: str, *, actor: Actor, offset: int = 0,
             limit: int = FINDINGS_PAGE, advisory_cache: AdvisoryIndexCache | None = None) -> dict[str, Any]:
    """Findings for a release: component, advisory id and aliases, severity, fixed version, waived by VEX?

    Paged: ``findings`` and ``not_evaluated`` each hold at most ``limit`` entries from ``offset`` on (in
    their stable order: severity, advisory, component); ``findings_total``/``not_evaluated_total``
    count them all and ``next_offset`` is where the next page starts (None after the last).
    """
    if offset < 0 or not 1 <= limit <= MAX_FINDINGS_PAGE:
        raise InputError.single("limit" if offset >= 0 else "offset", f"is {limit if offset >= 0 else offset}",
                                expected=f"offset ≥ 0 and limit between 1 and {MAX_FINDINGS_PAGE}")
    result = _all_findings(db, release_id, actor=actor, advisory_cache=advisory_cache)
    found, unevaluated = result["findings"], result["not_evaluated"]
    end = offset + limit
    result.update(findings=found[offset:end], not_evaluated=unevaluated[offset:end], findings_total=len(found),
                  not_evaluated_total=len(unevaluated), offset=offset, limit=limit,
                  next_offset=end if end < max(len(found), len(unevaluated)) else None)
    return result


def _all_findings(db: Database, release_id: str, *, actor: Actor,
                  advisory_cache: AdvisoryIndexCache | None) -> dict[str, Any]:
    actor.require(Role.VIEWER, "reading findings")
    index = advisory_index(db, advisory_cache)
    with db.transaction() as conn:
        release = release_store.get_release(conn, release_id)
        if release is None:
            raise NotFoundError(f"release {shown(release_id)} not found")
        result = release_findings(conn, release, index)
    if not result["sbom"]:
        raise NotFoundError(f"release {release_id} has no SBOM; import one with `ringfence sbom import {release_id} FILE`")
    result["advisories_loaded"] = len(index)
    return result


# --- signers and signatures ---------------------------------------------------------------------------------------

def load_public_key(data: bytes, source: str = "public key") -> SSlibKey:
    """A public key from a securesystemslib key JSON (``keytype``/``scheme``/``keyval``) or a PEM public key."""
    text = data.decode("utf-8", errors="replace").strip()
    try:
        if text.startswith("{"):
            doc = json.loads(text)
            if not isinstance(doc, dict):
                raise ValueError(f"is {bounded_json.kind_of(doc)}, not an object")
            stated = doc.pop("keyid", None)
            parsed = SSlibKey.from_dict("", dict(doc))
            key = SSlibKey(_keyid_of(parsed), parsed.keytype, parsed.scheme, parsed.keyval)
            if stated and stated != key.keyid:
                raise ValueError(f"keyid {stated!r} is not the key's id {key.keyid!r}")
            return key
        if "BEGIN PUBLIC KEY" in text:
            from cryptography.hazmat.primitives.serialization import load_pem_public_key  # noqa: PLC0415

            return SSlibKey.from_crypto(load_pem_public_key(text.encode()))
    except (ValueError, KeyError, TypeError) as e:
        raise InputError.single("public_key", f"cannot be read: {e}", location=source,
                                expected="a key JSON from `ringfence signers keygen` or a PEM public key") from e
    raise InputError.single("public_key", "is neither key JSON nor a PEM public key", location=source,
                            expected="a key JSON from `ringfence signers keygen` or a PEM public key")


def _keyid_of(key: SSlibKey) -> str:
    # The same default key id securesystemslib gives a key (SHA-256 of its canonical JSON).
    return compute_default_keyid(key.keytype, key.scheme, key.keyval)


def add_signer(db: Database, name: str, public_key: bytes, *, actor: Actor, clock: Clock, reason: str = "") -> dict[str, Any]:
    """Trust a release-signing public key under a name (admin)."""
    actor.require(Role.ADMIN, "adding release signers")
    if not name or len(name) > 200 or "/" in name:
        raise InputError.single("name", f"is {shown(name)}", expected="a signer name without /, at most 200 characters")
    key = load_public_key(public_key, f"public key of {name}")
    if key.keytype != "ed25519":
        raise InputError.single("public_key", f"is a {key.keytype} key", expected="an ed25519 key")
    now = clock()
    with db.transaction() as conn:
        known = store.list_signers(conn)
        if any(s["name"] == name for s in known):
            raise ConflictError(f"signer {shown(name)} already exists")
        if any(s["keyid"] == key.keyid for s in known):
            trusted_as = next(s["name"] for s in known if s["keyid"] == key.keyid)
            raise ConflictError(f"that key is already trusted as {shown(trusted_as)}")
        store.add_signer(conn, name, key.keyid, {"keyid": key.keyid, **key.to_dict()}, now, actor.name)
        audit_store.append(conn, at=now, actor=actor.name, action="signer.add", target=f"signer/{name}",
                           source=actor.source, reason=reason, details={"keyid": key.keyid})
    return {"name": name, "keyid": key.keyid, "keytype": key.keytype}


def list_signers(db: Database, *, actor: Actor) -> list[dict[str, Any]]:
    """Every trusted release signer."""
    actor.require(Role.VIEWER, "listing signers")
    with db.transaction() as conn:
        return [{"name": s["name"], "keyid": s["keyid"], "added_by": s["added_by"],
                 "added_at": as_of(utc(s["added_at"]))} for s in store.list_signers(conn)]


def _trusted_keys(conn: Any) -> dict[str, tuple[str, SSlibKey]]:
    out = {}
    for s in store.list_signers(conn):
        doc = dict(s["public_key"])
        doc.pop("keyid", None)
        out[s["keyid"]] = (s["name"], SSlibKey.from_dict(s["keyid"], doc))
    return out


def verify_signature(key: SSlibKey, sha256: str, signature_hex: str) -> bool:
    """Whether ``signature_hex`` is ``key``'s signature over the artifact payload."""
    try:
        key.verify_signature(Signature(key.keyid, signature_hex), artifact_payload(sha256))
    except UnverifiedSignatureError:
        return False
    return True


def upload_signatures(db: Database, release_id: str, signatures: Sequence[Mapping[str, Any]], *, actor: Actor,
                      clock: Clock, reason: str = "") -> dict[str, Any]:
    """Store detached artifact signatures after checking each against a trusted signer; all or nothing."""
    actor.require(Role.OPERATOR, "uploading release signatures")
    now = clock()
    with db.transaction() as conn:
        release = release_store.get_release(conn, release_id)
        if release is None:
            raise NotFoundError(f"release {shown(release_id)} not found")
        keys = _trusted_keys(conn)
        shas = {a.sha256 for a in release.artifacts}
        issues: list[FieldIssue] = []
        good: list[tuple[str, str, str]] = []
        for i, s in enumerate(signatures):
            where = f"signatures[{i}]"
            sha, keyid, sig = (str(s.get(k) or "") for k in ("sha256", "keyid", "sig"))
            if sha not in shas:
                issues.append(FieldIssue(f"{where}.sha256", f"{sha[:16]}… is not an artifact of {release_id}",
                                         expected="the SHA-256 of one of the release's artifacts"))
            elif keyid not in keys:
                issues.append(FieldIssue(f"{where}.keyid", f"{keyid[:16]}… is not a trusted signer's key",
                                         expected="a key added with `ringfence signers add`"))
            elif not verify_signature(keys[keyid][1], sha, sig):
                issues.append(FieldIssue(f"{where}.sig", f"does not verify with {keys[keyid][0]}'s key",
                                         expected="an ed25519 signature over the artifact's SHA-256 "
                                                  "(`ringfence release sign`)"))
            else:
                good.append((sha, keyid, sig))
        if not signatures:
            issues.append(FieldIssue("signatures", "is empty", expected="one signature per artifact"))
        if issues:
            raise InputError(f"signatures for {release_id} rejected, nothing was stored", issues)
        store.add_signatures(conn, release_id, good, now, actor.name)
        audit_store.append(conn, at=now, actor=actor.name, action="release.sign", target=f"release/{release_id}",
                           source=actor.source, reason=reason,
                           details={"signatures": [{"sha256": s, "signer": keys[k][0]} for s, k, _ in good]})
    return {"release": release_id, "stored": len(good),
            "signers": sorted({keys[k][0] for _, k, _ in good})}


# --- content contracts ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PreparedContract:
    """A checked content contract: an agent's content schema or the agent product content is for."""

    content_schema: dict[str, Any] | None
    for_agent: str


def prepare_contract(kind: str, content_schema: bytes | None, for_agent: str,
                     source: str = "content schema") -> PreparedContract | None:
    """Check the contract options of a release about to be created; None when it declares none."""
    if content_schema is None and not for_agent:
        return None
    if content_schema is not None and kind != "agent":
        raise InputError.single("content_schema", f"was given for a {kind} release",
                                expected="--content-schema only on agent releases (the content they accept)")
    if for_agent and kind != "content":
        raise InputError.single("for_agent", f"was given for a {kind} release",
                                expected="--for-agent only on content releases (the agent product that loads them)")
    schema: dict[str, Any] | None = None
    if content_schema is not None:
        try:
            doc = json.loads(content_schema.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as e:
            raise InputError.single("content_schema", f"is not JSON: {e}", location=source,
                                    expected="a JSON Schema document") from e
        if not isinstance(doc, dict):
            raise InputError.single("content_schema", f"is {bounded_json.kind_of(doc)}", location=source,
                                    expected="a JSON Schema object")
        import jsonschema  # noqa: PLC0415 - ~5 s of CPU to import (an RFC 3987 grammar): only when a schema is given

        cls = jsonschema.validators.validator_for(doc)
        try:
            cls.check_schema(doc)
        except jsonschema.SchemaError as e:
            path = "/".join(str(p) for p in e.absolute_path) or "(root)"
            raise InputError.single(f"content_schema {path}", e.message, location=source,
                                    expected="a valid JSON Schema") from e
        schema = doc
    if for_agent and (len(for_agent) > 200 or "@" in for_agent):
        raise InputError.single("for_agent", f"is {shown(for_agent)}", expected="an agent product name (no version)")
    return PreparedContract(content_schema=schema, for_agent=for_agent)


def store_contract(db: Database, release_id: str, contract: PreparedContract) -> None:
    """Store a release's content contract."""
    with db.transaction() as conn:
        store.set_contract(conn, release_id, content_schema=contract.content_schema, for_agent=contract.for_agent)


def contract_view(conn: Any, release_id: str) -> dict[str, Any] | None:
    """A release's contract for display."""
    row = store.get_contract(conn, release_id)
    if row is None:
        return None
    return {"for_agent": row["for_agent"] or None, "content_schema": row["content_schema"]}


# --- fleet queries ----------------------------------------------------------------------------------------------------

def _group_hosts(hosts: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[str]]]:
    grouped: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for h in hosts:
        for service in h["services"] or ["(no service)"]:
            if h["host_id"] not in grouped[h["tenant"] or "(unknown tenant)"][service]:
                grouped[h["tenant"] or "(unknown tenant)"][service].append(h["host_id"])
    return {t: dict(sorted(s.items())) for t, s in sorted(grouped.items())}


def vulns_where(db: Database, vuln_id: str, *, actor: Actor,
                advisory_cache: AdvisoryIndexCache | None = None) -> dict[str, Any]:
    """Releases whose SBOM has a component the advisory affects, and the hosts running them by tenant and service."""
    actor.require(Role.VIEWER, "fleet queries")
    index = advisory_index(db, advisory_cache)
    with db.transaction() as conn:
        ids = store.advisory_ids_for(conn, vuln_id.strip())
        if not ids:
            raise NotFoundError(f"no advisory has the id or alias {shown(vuln_id)}; import OSV records with "
                                "`ringfence vulns import PATH`")
        advisories = [index.advisories[i] for i in ids if i in index.advisories]
        keys = {(eco, normalize_name(eco, a.name)) for adv in advisories for a in adv.affected
                for eco in [a.ecosystem.split(":", 1)[0].strip()]}
        rows = store.sbom_components_by_package(conn, keys)
        releases: dict[str, dict[str, Any]] = {}
        for r in rows:
            comp = Component(name=r["name"], version=r["version"], ecosystem=r["ecosystem"], purl=r["purl"] or None)
            for m in index.match([comp], include_not_evaluated=False):
                if m.advisory_id not in ids:
                    continue
                rel = releases.setdefault(r["release_id"], {"release": r["release_id"], "components": []})
                rel["components"].append({"name": r["name"], "version": r["version"], "purl": r["purl"],
                                          "advisory": m.advisory_id,
                                          "fixed": fixed_in(index.advisories[m.advisory_id], comp)})
        found = {rid: release_store.get_release(conn, rid) for rid in releases}
        hosts = store.hosts_running(conn, [(r.product, r.version) for r in found.values() if r is not None])
    for rid, rel in releases.items():
        owner = found[rid]
        rel["hosts"] = sorted({h["host_id"] for h in hosts
                               if owner is not None and (h["product"], h["version"]) == (owner.product, owner.version)})
    withdrawn = [a.id for a in advisories if a.withdrawn is not None]
    return {"query": vuln_id, "advisories": [{"id": a.id, "aliases": list(a.aliases), "severity": a.severity.label.value,
                                              "withdrawn": a.withdrawn is not None} for a in advisories],
            "withdrawn": withdrawn, "releases": sorted(releases.values(), key=lambda x: x["release"]),
            "hosts": len({h["host_id"] for h in hosts}), "by_tenant": _group_hosts(hosts)}


def components_where(db: Database, purl: str, *, actor: Actor) -> dict[str, Any]:
    """Which releases contain a component (purl, with or without version) and which hosts run them."""
    actor.require(Role.VIEWER, "fleet queries")
    try:
        parsed = PackageURL.from_string(purl.strip())
    except ValueError as e:
        raise InputError.single("purl", f"{shown(purl)} is not a package URL: {e}",
                                expected="pkg:TYPE/NAMESPACE/NAME@VERSION, e.g. "
                                         "pkg:maven/org.apache.logging.log4j/log4j-core") from e
    key = package_key(Component(name=parsed.name, version="", purl=purl.strip()))
    with db.transaction() as conn:
        rows = store.sbom_components_by_package(conn, [key])
        if parsed.version:
            rows = [r for r in rows if r["version"] == parsed.version]
        releases: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            releases[r["release_id"]].append({"name": r["name"], "version": r["version"], "purl": r["purl"]})
        found = {rid: release_store.get_release(conn, rid) for rid in releases}
        hosts = store.hosts_running(conn, [(r.product, r.version) for r in found.values() if r is not None])
    out_releases = []
    for rid, comps in sorted(releases.items()):
        owner = found[rid]
        out_releases.append({"release": rid, "components": comps,
                             "hosts": sorted({h["host_id"] for h in hosts if owner is not None
                                              and (h["product"], h["version"]) == (owner.product, owner.version)})})
    return {"query": purl, "ecosystem": key[0], "package": key[1], "version": parsed.version or None,
            "releases": out_releases, "hosts": len({h["host_id"] for h in hosts}), "by_tenant": _group_hosts(hosts),
            "host_list": hosts}


def as_of(value: datetime | None) -> str | None:
    """ISO form for JSON."""
    return value.isoformat() if value else None
