"""Reading SBOMs: CycloneDX 1.2–1.6 JSON, CycloneDX 1.0–1.6 XML, SPDX 2.2/2.3 JSON.

Rules
=====

1. **Plain walk, no object model.**  JSON is read with :mod:`json` and walked
   as dicts and lists (large SBOMs load fast); XML with
   :mod:`xml.etree.ElementTree`.  Validation against the official schemas and
   writing SBOMs are left to the official libraries elsewhere.
2. **XML safety.**  A document that contains ``<!DOCTYPE`` or ``<!ENTITY``
   is refused before parsing (billion-laughs and external entities), since
   defusedxml is not a dependency.  CycloneDX needs neither.
3. **Format detection** by content, never by file name: a JSON object with
   ``bomFormat: "CycloneDX"`` or with ``spdxVersion``, or an XML ``bom``
   element in a ``http://cyclonedx.org/schema/bom/1.x`` namespace.
   CycloneDX JSON exists from 1.2 on, so JSON accepts ``specVersion`` 1.2–1.6
   (the real keycloak/juice-shop/dropwizard SBOMs are 1.2); XML accepts 1.0–1.6.
4. **Components.**  Nested CycloneDX ``components`` are flattened (parent
   first); ``metadata.component`` is the SBOM's subject, not a component.
   SPDX ``packages`` take their purl from ``externalRefs`` with
   ``referenceType: purl`` (category ``PACKAGE-MANAGER`` or ``PACKAGE_MANAGER``),
   the version from ``versionInfo`` (``NOASSERTION``/``NONE`` count as absent).
   A missing version is taken from the purl, and vice versa in
   :func:`to_components`.
5. **Incomplete components are kept.**  A component with no (valid) purl or
   no version stays in :attr:`Sbom.components`, is listed again in
   :attr:`Sbom.incomplete`, and says why in :attr:`SbomComponent.problems`.
6. **Malformed documents** raise one :class:`~ringfence.errors.InputError`
   with one :class:`~ringfence.errors.FieldIssue` per problem, each naming the
   file (``location``), the field path (``components[3].name``) and the
   expected value.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ringfence.adapters import bounded_json
from ringfence.domain.vulns import Component, component_from_purl, parse_purl
from ringfence.errors import FieldIssue, InputError, shown

__all__ = [
    "COMPONENT_TEXT_LIMITS",
    "CYCLONEDX_JSON_VERSIONS",
    "CYCLONEDX_XML_VERSIONS",
    "INVALID_PURL",
    "NO_PURL",
    "NO_VERSION",
    "SPDX_VERSIONS",
    "Sbom",
    "SbomComponent",
    "parse_sbom",
    "to_components",
]

CYCLONEDX_JSON_VERSIONS: Final = ("1.2", "1.3", "1.4", "1.5", "1.6")
CYCLONEDX_XML_VERSIONS: Final = ("1.0", "1.1", *CYCLONEDX_JSON_VERSIONS)
SPDX_VERSIONS: Final = ("SPDX-2.2", "SPDX-2.3")

_CDX_NS: Final = re.compile(r"^\{http://cyclonedx\.org/schema/bom/(\d+\.\d+)\}bom$")
_UNSAFE_XML: Final = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_SPDX_ABSENT: Final = frozenset({"", "NOASSERTION", "NONE"})
_PURL_CATEGORIES: Final = frozenset({"PACKAGE-MANAGER", "PACKAGE_MANAGER"})

#: Problems that make a component incomplete (see :attr:`SbomComponent.problems`).
NO_PURL: Final = "no purl"
NO_VERSION: Final = "no version"
INVALID_PURL: Final = "invalid purl"


@dataclass(frozen=True, slots=True)
class SbomComponent:
    """One component of an SBOM, normalised across formats.

    ``ecosystem`` is the OSV ecosystem derived from the purl (empty without a
    valid purl); ``hashes`` are ``(algorithm, hex value)`` pairs with CycloneDX
    algorithm names (``SHA-256``); ``bom_ref`` is the CycloneDX ``bom-ref`` or
    the SPDX ``SPDXID``; ``problems`` say why a component is incomplete.
    """

    name: str
    version: str = ""
    purl: str | None = None
    ecosystem: str = ""
    group: str = ""
    hashes: tuple[tuple[str, str], ...] = ()
    bom_ref: str = ""
    problems: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether the component has a valid purl and a version (what matching needs)."""
        return not any(p in (NO_PURL, NO_VERSION) or p.startswith(INVALID_PURL) for p in self.problems)


@dataclass(frozen=True, slots=True)
class Sbom:
    """A parsed SBOM: every component, and the incomplete ones again."""

    format: str  # "cyclonedx" | "spdx"
    spec_version: str
    #: The SBOM's subject (CycloneDX ``metadata.component``, SPDX document name); may be empty.
    name: str
    components: tuple[SbomComponent, ...]
    #: Components without a valid purl or without a version: kept in ``components`` too, never dropped.
    incomplete: tuple[SbomComponent, ...] = ()
    #: The file name or other source label the document was read from.
    source: str = ""
    #: CycloneDX ``serialNumber`` (``urn:uuid:…``) and ``version``: the BOM-Link ``urn:cdx:<serial>/<version>``
    #: by which VEX documents name this SBOM's subject; empty for SPDX.
    serial_number: str = ""
    bom_version: int = 1
    #: The ``bom-ref`` of ``metadata.component`` (the subject), for BOM-Links.
    subject_ref: str = ""


class _Issues:
    """Collects field issues for one document so they are reported together."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[FieldIssue] = []

    def add(self, field: str, message: str, expected: str = "") -> None:
        self.items.append(FieldIssue(field=field, message=message, location=self.source, expected=expected))

    def raise_if_any(self, what: str) -> None:
        if self.items:
            raise InputError(f"malformed {what} {self.source}", self.items)


# --------------------------------------------------------------------------- shared


def _build(
    *,
    name: str,
    version: str,
    purl: str | None,
    group: str,
    hashes: tuple[tuple[str, str], ...],
    bom_ref: str,
) -> SbomComponent:
    """A component with its ecosystem derived from the purl and its problems listed."""
    problems: list[str] = []
    ecosystem = ""
    if purl is None:
        problems.append(NO_PURL)
    else:
        try:
            parsed = parse_purl(purl)
        except ValueError as e:
            problems.append(f"{INVALID_PURL}: {e}")
        else:
            ecosystem = component_from_purl(purl, version=version).ecosystem
            if not version and parsed.version:
                version = parsed.version
            elif version and parsed.version and parsed.version != version:
                # Not incomplete; the matcher uses the purl's version (purl first).
                problems.append(f"version {shown(version)} differs from purl version {shown(parsed.version)}")
    if not version:
        problems.append(NO_VERSION)
    return SbomComponent(
        name=name,
        version=version,
        purl=purl,
        ecosystem=ecosystem,
        group=group,
        hashes=hashes,
        bom_ref=bom_ref,
        problems=tuple(problems),
    )


def _finish(fmt: str, spec: str, name: str, components: list[SbomComponent], source: str) -> Sbom:
    comps = tuple(components)
    return Sbom(
        format=fmt,
        spec_version=spec,
        name=name,
        components=comps,
        incomplete=tuple(c for c in comps if not c.complete),
        source=source,
    )


def _opt_str(doc: Mapping[str, Any], key: str, where: str, issues: _Issues) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        issues.add(f"{where}.{key}" if where else key, f"is {bounded_json.kind_of(value)}", expected="a string")
        return ""
    return value.strip()


# --------------------------------------------------------------------------- CycloneDX JSON


def _cdx_hashes(doc: Mapping[str, Any], where: str, issues: _Issues) -> tuple[tuple[str, str], ...]:
    raw = doc.get("hashes")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        issues.add(f"{where}.hashes", f"is {bounded_json.kind_of(raw)}", expected="a list of {alg, content}")
        return ()
    out: list[tuple[str, str]] = []
    for k, h in enumerate(raw):
        if isinstance(h, dict) and isinstance(h.get("alg"), str) and isinstance(h.get("content"), str):
            out.append((h["alg"], h["content"].lower()))
        else:
            issues.add(f"{where}.hashes[{k}]", "is not a hash", expected='{"alg": str, "content": str}')
    return tuple(out)


def _cdx_json_components(raw: Any, where: str, issues: _Issues) -> Iterator[SbomComponent]:
    if raw is None:
        return
    if not isinstance(raw, list):
        issues.add(where, f"is {bounded_json.kind_of(raw)}", expected="a list of components")
        return
    for k, doc in enumerate(raw):
        here = f"{where}[{k}]"
        if not isinstance(doc, dict):
            issues.add(here, f"is {bounded_json.kind_of(doc)}", expected="a component object")
            continue
        name = _opt_str(doc, "name", here, issues)
        if not name and "name" not in doc:
            issues.add(f"{here}.name", "is missing", expected="a string (CycloneDX requires a name)")
        purl = _opt_str(doc, "purl", here, issues) or None
        yield _build(
            name=name,
            version=_opt_str(doc, "version", here, issues),
            purl=purl,
            group=_opt_str(doc, "group", here, issues),
            hashes=_cdx_hashes(doc, here, issues),
            bom_ref=_opt_str(doc, "bom-ref", here, issues),
        )
        yield from _cdx_json_components(doc.get("components"), f"{here}.components", issues)


def _parse_cdx_json(doc: Mapping[str, Any], source: str) -> Sbom:
    issues = _Issues(source)
    spec = doc.get("specVersion")
    if spec not in CYCLONEDX_JSON_VERSIONS:
        issues.add("specVersion", f"is {shown(spec)}", expected=f"one of {', '.join(CYCLONEDX_JSON_VERSIONS)}")
        issues.raise_if_any("CycloneDX SBOM")
    name = subject_ref = ""
    meta = doc.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("component"), dict):
        name = _opt_str(meta["component"], "name", "metadata.component", issues)
        subject_ref = _opt_str(meta["component"], "bom-ref", "metadata.component", issues)
    serial = _opt_str(doc, "serialNumber", "", issues)
    bom_version = doc.get("version", 1)
    if not isinstance(bom_version, int) or isinstance(bom_version, bool) or bom_version < 1:
        issues.add("version", f"is {shown(bom_version)}", expected="a positive integer")
        bom_version = 1
    components = list(_cdx_json_components(doc.get("components"), "components", issues))
    issues.raise_if_any("CycloneDX SBOM")
    return dataclasses.replace(_finish("cyclonedx", str(spec), name, components, source), serial_number=serial,
                               bom_version=bom_version, subject_ref=subject_ref)


# --------------------------------------------------------------------------- CycloneDX XML


def _xml_text(elem: ET.Element, tag: str, ns: str) -> str:
    child = elem.find(f"{{{ns}}}{tag}")
    return (child.text or "").strip() if child is not None else ""


def _cdx_xml_components(parent: ET.Element | None, where: str, ns: str, issues: _Issues) -> Iterator[SbomComponent]:
    if parent is None:
        return
    for k, elem in enumerate(parent.findall(f"{{{ns}}}component")):
        here = f"{where}/component[{k}]"
        name = _xml_text(elem, "name", ns)
        if elem.find(f"{{{ns}}}name") is None:
            issues.add(f"{here}/name", "is missing", expected="a <name> element (CycloneDX requires a name)")
        hashes: list[tuple[str, str]] = []
        hashes_elem = elem.find(f"{{{ns}}}hashes")
        if hashes_elem is not None:
            for j, h in enumerate(hashes_elem.findall(f"{{{ns}}}hash")):
                alg = h.get("alg")
                if not alg or not (h.text or "").strip():
                    issues.add(f"{here}/hashes/hash[{j}]", "has no alg or no value", expected='<hash alg="SHA-256">hex</hash>')
                    continue
                hashes.append((alg, (h.text or "").strip().lower()))
        yield _build(
            name=name,
            version=_xml_text(elem, "version", ns),
            purl=_xml_text(elem, "purl", ns) or None,
            group=_xml_text(elem, "group", ns),
            hashes=tuple(hashes),
            bom_ref=elem.get("bom-ref", ""),
        )
        yield from _cdx_xml_components(elem.find(f"{{{ns}}}components"), f"{here}/components", ns, issues)


def _parse_cdx_xml(data: bytes, source: str) -> Sbom:
    if _UNSAFE_XML.search(data):
        raise InputError.single(
            "document",
            "contains a DOCTYPE or ENTITY declaration, which is refused (entity expansion)",
            expected="a CycloneDX XML document without a DTD",
            location=source,
        )
    try:
        root = ET.fromstring(data)  # noqa: S314 - DTDs and entities were refused above
    except ET.ParseError as e:
        raise InputError.single("document", f"is not well-formed XML: {e}", expected="CycloneDX XML", location=source) from e
    m = _CDX_NS.match(root.tag)
    if m is None:
        raise InputError.single(
            "bom",
            f"root element is {shown(root.tag)}",
            expected="<bom> in namespace http://cyclonedx.org/schema/bom/1.x",
            location=source,
        )
    spec = m.group(1)
    issues = _Issues(source)
    if spec not in CYCLONEDX_XML_VERSIONS:
        issues.add("bom/@xmlns", f"names CycloneDX {spec}", expected=f"one of {', '.join(CYCLONEDX_XML_VERSIONS)}")
        issues.raise_if_any("CycloneDX SBOM")
    ns = f"http://cyclonedx.org/schema/bom/{spec}"
    name = subject_ref = ""
    meta_comp = root.find(f"{{{ns}}}metadata/{{{ns}}}component")
    if meta_comp is not None:
        name = _xml_text(meta_comp, "name", ns)
        subject_ref = (meta_comp.get("bom-ref") or "").strip()
    raw_version = (root.get("version") or "1").strip()
    components = list(_cdx_xml_components(root.find(f"{{{ns}}}components"), "bom/components", ns, issues))
    issues.raise_if_any("CycloneDX SBOM")
    return dataclasses.replace(_finish("cyclonedx", spec, name, components, source),
                               serial_number=(root.get("serialNumber") or "").strip(),
                               bom_version=int(raw_version) if raw_version.isdigit() and int(raw_version) > 0 else 1,
                               subject_ref=subject_ref)


# --------------------------------------------------------------------------- SPDX JSON

_SPDX_ALG: Final = re.compile(r"^(SHA3?|BLAKE2b)[-_]?(\d+)$", re.IGNORECASE)


def _spdx_alg(alg: str) -> str:
    """SPDX checksum algorithm names in CycloneDX spelling (``SHA256`` -> ``SHA-256``)."""
    m = _SPDX_ALG.match(alg)
    if m is None:
        return alg.upper()
    family = m.group(1)
    return f"BLAKE2b-{m.group(2)}" if family.lower() == "blake2b" else f"{family.upper()}-{m.group(2)}"


def _spdx_package(doc: Mapping[str, Any], where: str, issues: _Issues) -> SbomComponent:
    name = _opt_str(doc, "name", where, issues)
    if "name" not in doc:
        issues.add(f"{where}.name", "is missing", expected="a string (SPDX requires a package name)")
    version = _opt_str(doc, "versionInfo", where, issues)
    if version.upper() in _SPDX_ABSENT:
        version = ""
    purl: str | None = None
    refs = doc.get("externalRefs")
    if refs is not None and not isinstance(refs, list):
        issues.add(f"{where}.externalRefs", f"is {bounded_json.kind_of(refs)}", expected="a list of external references")
    elif refs:
        for k, ref in enumerate(refs):
            if not isinstance(ref, dict):
                issues.add(f"{where}.externalRefs[{k}]", f"is {bounded_json.kind_of(ref)}",
                           expected="an external reference object")
                continue
            if ref.get("referenceType") == "purl" and ref.get("referenceCategory") in _PURL_CATEGORIES:
                locator = ref.get("referenceLocator")
                if not isinstance(locator, str) or not locator.strip():
                    issues.add(f"{where}.externalRefs[{k}].referenceLocator", "is missing or not a string", expected="a purl")
                elif purl is None:
                    purl = locator.strip()
    hashes: list[tuple[str, str]] = []
    sums = doc.get("checksums")
    if sums is not None and not isinstance(sums, list):
        issues.add(f"{where}.checksums", f"is {bounded_json.kind_of(sums)}", expected="a list of {algorithm, checksumValue}")
    elif sums:
        for k, c in enumerate(sums):
            if isinstance(c, dict) and isinstance(c.get("algorithm"), str) and isinstance(c.get("checksumValue"), str):
                hashes.append((_spdx_alg(c["algorithm"]), c["checksumValue"].lower()))
            else:
                issues.add(f"{where}.checksums[{k}]", "is not a checksum", expected='{"algorithm": str, "checksumValue": str}')
    return _build(
        name=name,
        version=version,
        purl=purl,
        group="",
        hashes=tuple(hashes),
        bom_ref=_opt_str(doc, "SPDXID", where, issues),
    )


def _parse_spdx(doc: Mapping[str, Any], source: str) -> Sbom:
    issues = _Issues(source)
    spec = doc.get("spdxVersion")
    if spec not in SPDX_VERSIONS:
        issues.add("spdxVersion", f"is {shown(spec)}", expected=f"one of {', '.join(SPDX_VERSIONS)}")
        issues.raise_if_any("SPDX document")
    packages = doc.get("packages")
    components: list[SbomComponent] = []
    if packages is not None and not isinstance(packages, list):
        issues.add("packages", f"is {bounded_json.kind_of(packages)}", expected="a list of packages")
    elif packages:
        for k, pkg in enumerate(packages):
            if not isinstance(pkg, dict):
                issues.add(f"packages[{k}]", f"is {bounded_json.kind_of(pkg)}", expected="a package object")
                continue
            components.append(_spdx_package(pkg, f"packages[{k}]", issues))
    name = _opt_str(doc, "name", "", issues)
    issues.raise_if_any("SPDX document")
    return _finish("spdx", str(spec)[len("SPDX-") :], name, components, source)


# --------------------------------------------------------------------------- entry points

#: The longest text each stored component field takes (the columns of ``sbom_components``), the same on
#: SQLite and PostgreSQL; the ecosystem comes from the purl's type.
COMPONENT_TEXT_LIMITS: Final = {"name": 400, "version": 200, "group": 400, "bom_ref": 400, "ecosystem": 64}


def _checked(sbom: Sbom) -> Sbom:
    """Refuse components whose text would not fit the database, or holds a NUL character."""
    issues = _Issues(sbom.source)
    for field, value in (("name", sbom.name), ("serialNumber", sbom.serial_number), ("subject bom-ref", sbom.subject_ref)):
        if "\x00" in value:
            issues.add(field, "contains a NUL character (\\u0000)", expected="text without NUL characters")
    for k, comp in enumerate(sbom.components):
        if len(issues.items) >= _MAX_LIMIT_ISSUES:
            break
        for field, limit in COMPONENT_TEXT_LIMITS.items():
            value = getattr(comp, field)
            if len(value) > limit:
                issues.add(f"component {k + 1} {field}", f"is {len(value):,} characters long",
                           expected=f"at most {limit} characters")
        texts = [comp.name, comp.version, comp.group, comp.bom_ref, comp.purl or "", *(v for h in comp.hashes for v in h)]
        if any("\x00" in t for t in texts):
            issues.add(f"component {k + 1}", "contains a NUL character (\\u0000)", expected="text without NUL characters")
    issues.raise_if_any("SBOM")
    return sbom


_MAX_LIMIT_ISSUES = 20


def parse_sbom(name: str, data: bytes) -> Sbom:
    """Parse one SBOM document; ``name`` (usually the file name) labels errors and :attr:`Sbom.source`.

    Detects CycloneDX JSON/XML and SPDX JSON by content. Raises :class:`InputError`
    naming the file and the field for anything malformed.
    """
    with bounded_json.paused_gc():  # tens of thousands of components: see paused_gc
        return _parse_sbom(name, data)


def _parse_sbom(name: str, data: bytes) -> Sbom:
    text = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        return _checked(_parse_cdx_xml(text, name))
    if not text.startswith(b"{"):
        raise InputError.single(
            "document",
            "is neither a JSON object nor XML",
            expected="CycloneDX JSON/XML or SPDX JSON",
            location=name,
        )
    try:
        doc = bounded_json.loads(text, location=name)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise InputError.single("document", f"is not valid JSON: {e}", expected="CycloneDX or SPDX JSON", location=name) from e
    if not isinstance(doc, dict):
        raise InputError.single("document", f"is {bounded_json.kind_of(doc)}", expected="a JSON object", location=name)
    if doc.get("bomFormat") == "CycloneDX":
        return _checked(_parse_cdx_json(doc, name))
    if "spdxVersion" in doc:
        return _checked(_parse_spdx(doc, name))
    raise InputError.single(
        "bomFormat",
        f"is {shown(doc.get('bomFormat'))} and there is no spdxVersion",
        expected='"CycloneDX", or an SPDX document with spdxVersion SPDX-2.2/SPDX-2.3',
        location=name,
    )


def to_components(sbom: Sbom) -> list[Component]:
    """Every component of ``sbom`` in the form :meth:`AdvisoryIndex.match` takes.

    Incomplete components are included: one without a version is reported by
    the matcher as *not evaluated*; one without a valid purl is keyed by its
    name with no ecosystem (and so matches nothing, which the SBOM's
    :attr:`Sbom.incomplete` list makes visible).
    """
    out: list[Component] = []
    for comp in sbom.components:
        if comp.purl is not None and comp.ecosystem:
            out.append(component_from_purl(comp.purl, version=comp.version))
        else:
            out.append(Component(name=comp.name, version=comp.version, ecosystem=comp.ecosystem))
    return out
