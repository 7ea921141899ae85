"""Reading VEX documents: CycloneDX VEX (JSON, 1.4–1.6) and OpenVEX (JSON, v0.0.1 and v0.2.0).

Each document becomes a list of :class:`VexStatement` — one per
(vulnerability, product) pair. What names a product:

* CycloneDX: each ``vulnerabilities[].affects[].ref``: a BOM-Link
  (``urn:cdx:<serial>/<version>#<bom-ref>``, naming an SBOM stored with a
  release), a purl, or a ringfence release id (``product@version``).
  CycloneDX documents are first validated against the schema with
  cyclonedx-python-lib. The state is ``analysis.state``.
* OpenVEX: each ``statements[].products[]`` (an ``@id`` object or a string):
  a purl or a release id. The status is ``status``.

Only ``not_affected`` with a justification (CycloneDX ``analysis.justification``,
OpenVEX ``justification`` or ``impact_statement``) waives a finding; the
other states are stored and shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cyclonedx.schema import SchemaVersion

from ringfence.errors import FieldIssue, InputError, describe, shown

__all__ = ["CDX_STATES", "OPENVEX_STATUSES", "VexStatement", "parse_vex"]

CDX_STATES: Final = ("resolved", "resolved_with_pedigree", "exploitable", "in_triage", "false_positive",
                     "not_affected")
OPENVEX_STATUSES: Final = ("not_affected", "affected", "fixed", "under_investigation")


@dataclass(frozen=True, slots=True)
class VexStatement:
    """One statement: the vulnerability, the product it is about, the status and why."""

    vulnerability: str
    product: str
    status: str
    justification: str = ""
    detail: str = ""
    document: str = ""
    format: str = ""

    @property
    def waives(self) -> bool:
        """``not_affected`` with a justification."""
        return self.status == "not_affected" and bool(self.justification)

    def as_row(self) -> dict[str, str]:
        """The stored form."""
        return {"vulnerability": self.vulnerability, "product": self.product, "status": self.status,
                "justification": self.justification, "detail": self.detail, "document": self.document,
                "format": self.format}


def _str(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    return value.strip() if isinstance(value, str) else ""


def _cyclonedx(doc: Mapping[str, Any], text: str, source: str) -> list[VexStatement]:
    raw_spec = doc.get("specVersion")
    spec = raw_spec if isinstance(raw_spec, str) else ""
    if spec not in ("1.4", "1.5", "1.6"):
        raise InputError.single("specVersion", "is missing" if raw_spec is None else f"is {shown(raw_spec)}",
                                expected="CycloneDX VEX 1.4, 1.5 or 1.6", location=source)
    from ringfence.adapters.sbom.validate import cyclonedx_json_validator  # noqa: PLC0415 - slow import (jsonschema)

    error: Any = cyclonedx_json_validator(SchemaVersion.from_version(spec)).validate_str(text)
    if error is not None:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in getattr(error.data, "absolute_path", ()))
        raise InputError(f"CycloneDX {spec} schema violation in {source}", [FieldIssue(
            field=path.lstrip(".") or "document", message=str(getattr(error.data, "message", error)), location=source,
            expected=f"a document valid against the CycloneDX {spec} JSON schema")])
    issues: list[FieldIssue] = []
    out: list[VexStatement] = []
    vulns = doc.get("vulnerabilities")
    if not isinstance(vulns, list) or not vulns:
        raise InputError.single("vulnerabilities", "is missing or empty", expected="a list of vulnerabilities with "
                                "analysis and affects", location=source)
    for i, v in enumerate(vulns):
        where = f"vulnerabilities[{i}]"
        vid = _str(v, "id")
        analysis = v.get("analysis") if isinstance(v.get("analysis"), Mapping) else {}
        state = _str(analysis, "state")
        affects = v.get("affects") or []
        if not vid:
            issues.append(FieldIssue(f"{where}.id", "is missing", source, "a CVE, GHSA or OSV id"))
        if not state:
            issues.append(FieldIssue(f"{where}.analysis.state", "is missing", source, ", ".join(CDX_STATES)))
        if not affects:
            issues.append(FieldIssue(f"{where}.affects", "is missing or empty", source,
                                     "refs naming products (BOM-Link, purl or release id)"))
        for a in affects:
            ref = _str(a, "ref") if isinstance(a, Mapping) else ""
            if vid and state and ref:
                out.append(VexStatement(vulnerability=vid, product=ref, status=state,
                                        justification=_str(analysis, "justification"),
                                        detail=_str(analysis, "detail"), document=source, format="cyclonedx"))
    if issues:
        raise InputError(f"CycloneDX VEX {source} rejected, nothing was stored", issues)
    return out


def _openvex(doc: Mapping[str, Any], source: str) -> list[VexStatement]:
    issues: list[FieldIssue] = []
    out: list[VexStatement] = []
    statements = doc.get("statements")
    if not isinstance(statements, list) or not statements:
        raise InputError.single("statements", "is missing or empty", expected="a list of OpenVEX statements",
                                location=source)
    for i, s in enumerate(statements):
        where = f"statements[{i}]"
        if not isinstance(s, Mapping):
            issues.append(FieldIssue(where, f"is {describe(s)}", source, "an object"))
            continue
        raw_vuln = s.get("vulnerability")
        vid = _str(raw_vuln, "name") or _str(raw_vuln, "@id") if isinstance(raw_vuln, Mapping) else (
            raw_vuln.strip() if isinstance(raw_vuln, str) else "")
        status = _str(s, "status")
        if not vid:
            issues.append(FieldIssue(f"{where}.vulnerability", "is missing", source, 'a name such as "CVE-2021-44228"'))
        if status not in OPENVEX_STATUSES:
            issues.append(FieldIssue(f"{where}.status", f"is {shown(status)}", source, ", ".join(OPENVEX_STATUSES)))
        justification = _str(s, "justification") or _str(s, "impact_statement")
        if status == "not_affected" and not justification:
            issues.append(FieldIssue(f"{where}.justification", "is missing for not_affected", source,
                                     "a justification (e.g. vulnerable_code_not_in_execute_path) or impact_statement"))
        products = s.get("products") or []
        if not isinstance(products, list) or not products:
            issues.append(FieldIssue(f"{where}.products", "is missing or empty", source, "purls or release ids"))
            continue
        for j, p in enumerate(products):
            pid = _str(p, "@id") if isinstance(p, Mapping) else (p.strip() if isinstance(p, str) else "")
            if not pid:
                issues.append(FieldIssue(f"{where}.products[{j}]", "names no product", source, 'an "@id" (purl)'))
                continue
            if vid and status in OPENVEX_STATUSES:
                out.append(VexStatement(vulnerability=vid, product=pid, status=status, justification=justification,
                                        detail=_str(s, "status_notes") or _str(s, "impact_statement"),
                                        document=source, format="openvex"))
    if issues:
        raise InputError(f"OpenVEX {source} rejected, nothing was stored", issues)
    return out


def parse_vex(name: str, data: bytes) -> list[VexStatement]:
    """The statements of a CycloneDX VEX or OpenVEX JSON document (detected by content)."""
    try:
        text = data.decode("utf-8-sig")
        doc = json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError.single("document", f"is not JSON: {e}", expected="CycloneDX VEX or OpenVEX JSON",
                                location=name) from e
    if not isinstance(doc, dict):
        raise InputError.single("document", f"is {describe(doc)}", expected="a JSON object", location=name)
    if doc.get("bomFormat") == "CycloneDX":
        return _cyclonedx(doc, text, name)
    context = doc.get("@context")
    if isinstance(context, str) and context.startswith("https://openvex.dev/ns"):
        return _openvex(doc, name)
    raise InputError.single("document", "is neither CycloneDX (bomFormat) nor OpenVEX (@context)",
                            expected='"bomFormat": "CycloneDX" or "@context": "https://openvex.dev/ns/v0.2.0"',
                            location=name)
