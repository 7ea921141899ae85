"""Validating SBOMs with the official libraries before they are stored.

* CycloneDX JSON and XML: the schemas of cyclonedx-python-lib for the document's spec version, JSON
  checked by jsonschema-rs (linear; see :class:`CycloneDxJsonValidator`), XML by the library's
  ``XmlValidator``. A
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
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonValidator
from cyclonedx.validation.xml import XmlValidator
from spdx_tools.spdx.parser.error import SPDXParsingError
from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from ringfence.adapters import bounded_json
from ringfence.adapters.sbom.parse import Sbom
from ringfence.errors import FieldIssue, InputError, shown

__all__ = ["CycloneDxJsonValidator", "SchemaViolation", "cyclonedx_json_validator", "validate_sbom"]

_MAX_ISSUES = 20

_MAX_MESSAGE = 300


@dataclass(frozen=True)
class SchemaViolation:
    """The first schema violation of a document: where (``absolute_path``) and what (``message``)."""

    absolute_path: tuple[str | int, ...]
    message: str

    @property
    def data(self) -> SchemaViolation:
        """Itself, in the shape of cyclonedx-python-lib's ``JsonValidationError.data``."""
        return self


class CycloneDxJsonValidator:
    """The CycloneDX JSON schema of one version, checked by jsonschema-rs.

    The schema and the schemas it references (SPDX license ids, JSF, cryptography definitions) are the
    ones cyclonedx-python-lib ships and loads; only the engine differs. The library's own engine
    (python-jsonschema) compares every pair of components for ``uniqueItems`` (4,335 components took
    32 s) and checks IRI formats with an Earley parser (~0.5 s a value); jsonschema-rs validates 10,000
    components in well under a second. ``offline``: a schema reference is never fetched.
    """

    def __init__(self, version: SchemaVersion) -> None:
        # The library's loaded schema and the registry of the schemas it references (private attributes of
        # cyclonedx-python-lib's and python-jsonschema's validators: pinned by the tests of this module).
        library: Any = JsonValidator(version)._validator
        registry = library._registry
        resources = [(uri, registry[uri].contents) for uri in registry]
        self._validator = jsonschema_rs.Draft7Validator(
            dict(library.schema), registry=jsonschema_rs.Registry(resources), validate_formats=True, offline=True)

    def validate_str(self, text: str) -> SchemaViolation | None:
        """The first violation of the JSON document ``text``, or None when it is valid."""
        for error in self._validator.iter_errors(json.loads(text)):
            message = error.message
            if error.kind.name == "uniqueItems":  # the library's message quotes the whole array
                message = "has two items that are the same; each must be unique"
            if len(message) > _MAX_MESSAGE:
                message = message[:_MAX_MESSAGE] + "…"
            return SchemaViolation(absolute_path=tuple(error.instance_path), message=message)
        return None


_VALIDATORS: dict[SchemaVersion, CycloneDxJsonValidator] = {}


def cyclonedx_json_validator(version: SchemaVersion) -> CycloneDxJsonValidator:
    """The (cached) schema validator for one CycloneDX version."""
    found = _VALIDATORS.get(version)
    if found is None:
        found = _VALIDATORS[version] = CycloneDxJsonValidator(version)
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
        raise InputError.single("specVersion", f"is {shown(sbom.spec_version)}", expected="CycloneDX 1.2–1.6",
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
    violation = cyclonedx_json_validator(version).validate_str(text)
    if violation is None:
        return
    issues = [FieldIssue(field=_path(violation.absolute_path), message=violation.message, location=source,
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
    with bounded_json.paused_gc():  # tens of thousands of components: see paused_gc
        if sbom.format == "cyclonedx":
            _cyclonedx(sbom, text, source)
            return []
        return _spdx(text, source)
