"""SBOM parsing: real CycloneDX/SPDX documents from ../shared/data/sbom plus small hand-written fixtures."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from ringfence.adapters.sbom import Sbom, parse_sbom, to_components
from ringfence.adapters.sbom.parse import NO_PURL, NO_VERSION
from ringfence.adapters.sbom.validate import validate_sbom
from ringfence.adapters.vuln.osv import load_path
from ringfence.domain.vulns import AdvisoryIndex, Component, MatchResult
from ringfence.errors import InputError
from tests.conftest import SHARED_DATA

SBOM_DIR = SHARED_DATA / "sbom"
FIXTURES = Path(__file__).parent / "fixtures" / "sbom"
LOG4SHELL = SHARED_DATA / "osv" / "github-advisories" / "GHSA-jfh8-c2jp-5v3q.json"

#: (file, format, spec version, components, incomplete), counted from the files themselves.
SHARED_SBOMS = [
    ("keycloak-10.0.2.cdx.json", "cyclonedx", "1.2", 903, 0),
    ("juice-shop-11.1.2.cdx.json", "cyclonedx", "1.2", 840, 0),
    ("dropwizard-1.3.15.cdx.json", "cyclonedx", "1.2", 167, 0),
    ("laravel-7.12.0.cdx.json", "cyclonedx", "1.4", 62, 0),
    ("vex-case-9/bom-1.json", "cyclonedx", "1.4", 0, 0),
    ("vex-case-9/bom-2.json", "cyclonedx", "1.4", 0, 0),
    ("vex-case-9/bom-3.json", "cyclonedx", "1.4", 0, 0),
    # The VEX document is a CycloneDX BOM with vulnerabilities and no components key.
    ("vex-case-9/vex.json", "cyclonedx", "1.4", 0, 0),
    # 7 packages, 4 with purls; Gradle, a proprietary file package and the root have none.
    ("appbomination.spdx.json", "spdx", "2.2", 7, 3),
    # 6 packages and no purl at all in this (real) document, so all are incomplete.
    ("examplemaven-0.0.1-enriched.spdx.json", "spdx", "2.3", 6, 6),
]


def _load(path: Path) -> Sbom:
    return parse_sbom(path.name, path.read_bytes())


def _issue_fields(err: pytest.ExceptionInfo[InputError]) -> list[str]:
    return [i.field for i in err.value.issues]


# --------------------------------------------------------------------------- shared data


@pytest.mark.parametrize(("name", "fmt", "spec", "count", "incomplete"), SHARED_SBOMS)
def test_every_shared_sbom_parses(name: str, fmt: str, spec: str, count: int, incomplete: int) -> None:
    sbom = _load(SBOM_DIR / name)
    assert (sbom.format, sbom.spec_version) == (fmt, spec)
    assert len(sbom.components) == count
    assert len(sbom.incomplete) == incomplete
    assert set(sbom.incomplete) <= set(sbom.components)
    assert len(to_components(sbom)) == count


def test_shared_list_covers_every_file() -> None:
    on_disk = {str(p.relative_to(SBOM_DIR)) for p in SBOM_DIR.rglob("*.json")}
    assert on_disk == {row[0] for row in SHARED_SBOMS}


def test_keycloak_components_are_normalised() -> None:
    sbom = _load(SBOM_DIR / "keycloak-10.0.2.cdx.json")
    assert sbom.name == "keycloak-parent"
    assert all(c.purl and c.version and c.ecosystem for c in sbom.components)
    assert {c.ecosystem for c in sbom.components} == {"Maven"}
    assert all(c.hashes for c in sbom.components)
    assert len({c.bom_ref for c in sbom.components}) == 903
    first = sbom.components[0]
    assert all(alg.startswith(("MD5", "SHA")) and value == value.lower() for alg, value in first.hashes)


def test_spdx_yields_purls_versions_and_checksums() -> None:
    sbom = _load(SBOM_DIR / "appbomination.spdx.json")
    by_ref = {c.bom_ref: c for c in sbom.components}
    junit = by_ref["SPDXRef-22"]
    assert junit.purl == "pkg:maven/junit/junit@4.12"
    assert (junit.version, junit.ecosystem) == ("4.12", "Maven")
    assert junit.hashes == (("SHA-1", "4e6be5af63e3373b4f0cbc4c151c13e059151e00"),)
    gradle = by_ref["SPDXRef-5"]
    assert gradle in sbom.incomplete
    assert set(gradle.problems) == {NO_PURL, NO_VERSION}
    assert {c.purl for c in sbom.components if c.purl} == {
        "pkg:maven/org.hamcrest/hamcrest-core@1.3",
        "pkg:maven/org.apache.commons/commons-lang3@3.4",
        "pkg:maven/junit/junit@4.12",
        "pkg:maven/org.slf4j/slf4j-api@1.7.21",
    }


# --------------------------------------------------------------------------- fixtures


def test_cyclonedx_json_flattens_nested_and_keeps_incomplete() -> None:
    sbom = _load(FIXTURES / "app-1.5.cdx.json")
    assert (sbom.format, sbom.spec_version, sbom.name) == ("cyclonedx", "1.5", "demo-service")
    refs = [c.bom_ref for c in sbom.components]
    assert refs == ["log4j-core", "nested-requests", "log4j-core-fixed", "no-purl", "no-version", "bad-purl"]
    by_ref = {c.bom_ref: c for c in sbom.components}
    # A missing version is taken from the purl.
    assert by_ref["nested-requests"].version == "2.31.0"
    assert by_ref["nested-requests"].ecosystem == "PyPI"
    assert by_ref["log4j-core"].hashes == (("SHA-256", "abcdef0123"),)
    assert by_ref["log4j-core"].group == "org.apache.logging.log4j"
    assert by_ref["no-purl"].problems == (NO_PURL,)
    assert by_ref["no-version"].problems == (NO_VERSION,)
    assert by_ref["bad-purl"].problems[0].startswith("invalid purl")
    assert [c.bom_ref for c in sbom.incomplete] == ["no-purl", "no-version", "bad-purl"]


def test_cyclonedx_xml_fixture_parses() -> None:
    sbom = _load(FIXTURES / "app-1.6.cdx.xml")
    assert (sbom.format, sbom.spec_version, sbom.name) == ("cyclonedx", "1.6", "demo-app")
    assert [c.name for c in sbom.components] == ["log4j-core", "log4j-api", "zlib"]
    core, api, zlib = sbom.components
    assert core.purl == "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
    assert core.hashes == (("SHA-1", "9141212b8507ab50a45525b545b39d224614528b"),)
    assert (api.version, api.ecosystem, api.bom_ref) == ("2.14.1", "Maven", "log4j-api")
    assert sbom.incomplete == (zlib,)
    assert set(zlib.problems) == {NO_PURL, NO_VERSION}


def test_spdx_fixture_underscore_category_and_noassertion() -> None:
    sbom = _load(FIXTURES / "packages.spdx.json")
    assert (sbom.format, sbom.spec_version) == ("spdx", "2.3")
    log4j, mystery = sbom.components
    assert log4j.purl == "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
    assert log4j.hashes == (("SHA-256", "ab12"), ("SHA3-256", "cd"))
    assert mystery.version == ""
    assert sbom.incomplete == (mystery,)


# --------------------------------------------------------------------------- refusals


def test_doctype_is_refused() -> None:
    with pytest.raises(InputError) as err:
        _load(FIXTURES / "doctype.cdx.xml")
    assert _issue_fields(err) == ["document"]
    assert "doctype.cdx.xml" in str(err.value)
    assert "DOCTYPE" in str(err.value)


def test_components_not_a_list_names_file_and_field() -> None:
    with pytest.raises(InputError) as err:
        _load(FIXTURES / "components-not-list.cdx.json")
    (issue,) = err.value.issues
    assert (issue.field, issue.location, issue.expected) == ("components", "components-not-list.cdx.json", "a list of components")


@pytest.mark.parametrize(
    ("data", "field", "expected_part"),
    [
        (b"not an sbom", "document", "CycloneDX JSON/XML or SPDX JSON"),
        (b"{broken json", "document", "CycloneDX or SPDX JSON"),
        (b"[1, 2]", "document", "CycloneDX JSON/XML or SPDX JSON"),
        (b'{"bomFormat": "Other"}', "bomFormat", "CycloneDX"),
        (b'{"bomFormat": "CycloneDX", "specVersion": "2.0"}', "specVersion", "1.2, 1.3, 1.4, 1.5, 1.6"),
        (b'{"spdxVersion": "SPDX-3.0", "packages": []}', "spdxVersion", "SPDX-2.2, SPDX-2.3"),
        (b'{"spdxVersion": "SPDX-2.3", "packages": {}}', "packages", "a list of packages"),
        (b"<bom xmlns='http://example.com/other'/>", "bom", "http://cyclonedx.org/schema/bom/1.x"),
        (b"<bom xmlns='http://cyclonedx.org/schema/bom/1.9'/>", "bom/@xmlns", "1.6"),
        (b"<bom xmlns='http://cyclonedx.org/schema/bom/1.6'><components>", "document", "CycloneDX XML"),
    ],
)
def test_malformed_documents_name_the_field(data: bytes, field: str, expected_part: str) -> None:
    with pytest.raises(InputError) as err:
        parse_sbom("bad.sbom", data)
    assert _issue_fields(err)[0] == field
    assert err.value.issues[0].location == "bad.sbom"
    assert expected_part in err.value.issues[0].expected


def test_several_component_problems_are_reported_together() -> None:
    data = (
        b'{"bomFormat": "CycloneDX", "specVersion": "1.4", "components": ['
        b'{"version": "1"}, 7, {"name": "x", "version": 2, "hashes": "h",'
        b' "components": [{"name": 5}]}]}'
    )
    with pytest.raises(InputError) as err:
        parse_sbom("many.json", data)
    assert _issue_fields(err) == [
        "components[0].name",
        "components[1]",
        "components[2].version",
        "components[2].hashes",
        "components[2].components[0].name",
    ]


# --------------------------------------------------------------------------- matching


def test_to_components_feeds_the_advisory_index() -> None:
    index = AdvisoryIndex(load_path(LOG4SHELL))
    sbom = _load(FIXTURES / "app-1.5.cdx.json")
    components = to_components(sbom)
    assert components[0] == Component(
        name="log4j-core",
        version="2.14.1",
        ecosystem="Maven",
        purl="pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
    )
    matches = index.match(components)
    affected = [(m.advisory_id, m.component.version) for m in matches if m.result == MatchResult.AFFECTED]
    assert affected == [("GHSA-jfh8-c2jp-5v3q", "2.14.1")]
    # 2.17.1 is fixed, the others are other packages: nothing else matches.
    assert len(matches) == 1


def test_xml_and_spdx_components_match_too() -> None:
    index = AdvisoryIndex(load_path(LOG4SHELL))
    for fixture in ("app-1.6.cdx.xml", "packages.spdx.json"):
        matches = index.match(to_components(_load(FIXTURES / fixture)))
        assert [(m.advisory_id, m.result) for m in matches] == [("GHSA-jfh8-c2jp-5v3q", MatchResult.AFFECTED)], fixture


def test_keycloak_matches_without_error() -> None:
    index = AdvisoryIndex(load_path(LOG4SHELL))
    components = to_components(_load(SBOM_DIR / "keycloak-10.0.2.cdx.json"))
    assert len(components) == 903
    # keycloak 10.0.2 ships no log4j-core, so Log4Shell must not match it.
    assert index.match(components) == []


# --------------------------------------------------------------------------- schema validation at scale (issue 14)


def _big_cdx(n: int) -> bytes:
    comps = [{"type": "library", "bom-ref": f"c{k}", "name": f"pkg-{k}", "version": f"1.{k % 50}.0",
              "purl": f"pkg:pypi/pkg-{k}@1.{k % 50}.0", "hashes": [{"alg": "SHA-256", "content": f"{k:064x}"}],
              "licenses": [{"license": {"id": "MIT"}}]} for k in range(n)]
    return json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": comps,
                       "dependencies": [{"ref": c["bom-ref"], "dependsOn": []} for c in comps]}).encode()


@pytest.mark.parametrize("name", [n for n, fmt, *_ in SHARED_SBOMS if fmt == "cyclonedx"])
def test_every_shared_cyclonedx_sbom_validates(name: str) -> None:
    """The jsonschema-rs engine accepts the real documents the library's own engine accepted."""
    data = (SBOM_DIR / name).read_bytes()
    assert validate_sbom(parse_sbom(name, data), data) == []


def test_ten_thousand_components_validate_in_seconds_not_minutes() -> None:
    """uniqueItems over the components was pairwise (4,335 components: 32 s; 10,000: about 3 minutes)."""
    data = _big_cdx(10_000)
    sbom = parse_sbom("big.cdx.json", data)
    start = time.perf_counter()
    assert validate_sbom(sbom, data) == []
    assert time.perf_counter() - start < 10  # ~0.3 s here; bench/sbom_import.py has the figures


@pytest.mark.parametrize(("change", "field", "part"), [
    (lambda d: d["components"].append(dict(d["components"][7])), "components", "unique"),
    (lambda d: d["components"][3]["licenses"][0]["license"].update(id="NOT-A-LICENSE"),
     "components[3].licenses", "not valid"),  # the SPDX id list is a schema the CycloneDX schema references
    (lambda d: d["components"][2]["hashes"][0].update(alg="MD17"), "components[2].hashes[0].alg", "MD17"),
])
def test_schema_violations_in_a_large_sbom_name_the_field(change: Any, field: str, part: str) -> None:
    doc = json.loads(_big_cdx(2_000))
    change(doc)
    data = json.dumps(doc).encode()
    with pytest.raises(InputError) as err:
        validate_sbom(parse_sbom("big.cdx.json", data), data)
    issue = err.value.issues[0]
    assert issue.field.startswith(field), issue
    assert part in issue.message
    assert len(issue.message) < 400  # never the whole components array
