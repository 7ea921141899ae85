"""Validating SBOMs with the official libraries before they are stored.

* CycloneDX JSON and XML: the schema validators of cyclonedx-python-lib
  (``JsonValidator``/``XmlValidator`` for the document's spec version). A
  schema violation is an :class:`~ringfence.errors.InputError` naming the
  field path (``components[3].version``) and the schema's message.
* SPDX 2.2/2.3 JSON: spdx-tools parses the document into its model (a
  document it cannot build is an error naming each problem) and then runs its
  full validation; those rule messages are returned as *warnings*, because
  real documents from the SPDX examples break some of the stricter rules
  (``files_analyzed`` with contained files) and must still import.

:func:`validate_sbom` runs after :func:`ringfence.adapters.sbom.parse.parse_sbom`
(which detected the format) and returns the warnings.
"""

from __future__ import annotations

import json
from typing import Any

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonValidator
from cyclonedx.validation.xml import XmlValidator
from spdx_tools.spdx.parser.error import SPDXParsingError
from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from ringfence.adapters.sbom.parse import Sbom
from ringfence.errors import FieldIssue, InputError

__all__ = ["cyclonedx_json_validator", "validate_sbom"]

_MAX_ISSUES = 20

#: jsonschema checks these formats with rfc3987-syntax's Earley parser, ~0.5 s per value: a 62-component
#: SBOM with external references took 30 s. They are left out of format checking; every other format
#: (and the whole schema) is still checked.
_SLOW_FORMATS = frozenset({"iri", "iri-reference"})
_VALIDATORS: dict[SchemaVersion, JsonValidator] = {}


class _JsonValidator(JsonValidator):
    """cyclonedx-python-lib's JSON validator with the slow IRI format checks removed (see above)."""

    @property
    def _validator(self) -> Any:
        fast = getattr(self, "_fast", None)
        if fast is None:
            base = JsonValidator._validator.fget(self)  # type: ignore[attr-defined]  # the library's own validator
            checker = base.format_checker
            formats = [f for f in checker.checkers if f not in _SLOW_FORMATS]
            fast = base.evolve(format_checker=type(checker)(formats=formats))
            self._fast = fast
        return fast


def cyclonedx_json_validator(version: SchemaVersion) -> JsonValidator:
    """The (cached) schema validator for one CycloneDX version."""
    found = _VALIDATORS.get(version)
    if found is None:
        found = _VALIDATORS[version] = _JsonValidator(version)
    return found


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "document"


def _cyclonedx(sbom: Sbom, text: str, source: str) -> None:
    try:
        version = SchemaVersion.from_version(sbom.spec_version)
    except ValueError as e:
        raise InputError.single("specVersion", f"is {sbom.spec_version!r}", expected="CycloneDX 1.2–1.6",
                                location=source) from e
    if text.lstrip().startswith("<"):
        error: Any = XmlValidator(version).validate_str(text)
        if error is not None:
            entry = error.data
            line = getattr(entry, "line", 0)
            raise InputError(f"CycloneDX {sbom.spec_version} XML schema violation in {source}", [FieldIssue(
                field=f"line {line}", message=str(getattr(entry, "message", entry)), location=source,
                expected=f"a document valid against the CycloneDX {sbom.spec_version} XML schema")])
        return
    error = cyclonedx_json_validator(version).validate_str(text)
    if error is None:
        return
    data = error.data
    issues = [FieldIssue(field=_path(getattr(data, "absolute_path", ())), message=str(getattr(data, "message", data)),
                         location=source,
                         expected=f"a document valid against the CycloneDX {sbom.spec_version} JSON schema")]
    raise InputError(f"CycloneDX {sbom.spec_version} JSON schema violation in {source}", issues)


def _spdx(text: str, source: str) -> list[str]:
    try:
        doc = JsonLikeDictParser().parse(json.loads(text))  # type: ignore[no-untyped-call]  # spdx-tools is untyped here
    except SPDXParsingError as e:
        messages: list[str] = e.get_messages()  # type: ignore[no-untyped-call]
        raise InputError(f"SPDX document {source} cannot be read by spdx-tools",
                         [FieldIssue(field="document", message=m, location=source, expected="a valid SPDX 2.2/2.3 document")
                          for m in messages[:_MAX_ISSUES]]) from e
    return [m.validation_message for m in validate_full_spdx_document(doc)]


def validate_sbom(sbom: Sbom, data: bytes) -> list[str]:
    """Validate the document ``sbom`` was parsed from; raise InputError on schema errors, return warnings."""
    source = sbom.source or "SBOM"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError.single("document", f"is not UTF-8: {e}", location=source) from e
    if sbom.format == "cyclonedx":
        _cyclonedx(sbom, text, source)
        return []
    return _spdx(text, source)
