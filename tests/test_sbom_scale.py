"""Large SBOMs through the API: Go release names match, findings come in pages (issue 14, defect 9).

Validation speed is pinned in tests/test_sbom_parse.py; the figures for 10,000 and 100,000
components are in bench/README.md (bench/sbom_import.py).
"""

from __future__ import annotations

import json

import pytest

from ringfence.domain.vulns import Component, component_from_purl, go_release_version
from tests.api_support import Api, _problem
from tests.supply_support import cdx, release


def _go_stdlib_advisory() -> bytes:
    return json.dumps({"id": "GO-2024-2887", "modified": "2026-01-01T00:00:00Z", "affected": [{
        "package": {"ecosystem": "Go", "name": "stdlib"},
        "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.21.11"},
                                                 {"introduced": "1.22.0-0"}, {"fixed": "1.22.5"}]}]}]}).encode()


def _npm_advisory() -> bytes:
    return json.dumps({"id": "NPM-1", "modified": "2026-01-01T00:00:00Z", "affected": [
        {"package": {"ecosystem": "npm", "name": f"pkg-{k}"},
         "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "2.0.0"}]}]} for k in range(12)]}).encode()


@pytest.mark.parametrize(("name", "version"), [("go1.22.4", "1.22.4"), ("go1.21", "1.21.0"), ("go1.22rc1", "1.22.0-rc.1"),
                                               ("go1.9beta2", "1.9.0-beta.2"), ("v1.2.3", "v1.2.3")])
def test_go_release_names_become_versions(name: str, version: str) -> None:
    assert go_release_version(name) == version


def test_only_the_go_distribution_gets_release_name_conversion() -> None:
    assert component_from_purl("pkg:golang/stdlib@go1.22.4") == Component(
        name="stdlib", version="1.22.4", ecosystem="Go", purl="pkg:golang/stdlib@go1.22.4")
    assert component_from_purl("pkg:golang/github.com/x/go1@go1.2").version == "go1.2"


def test_go_stdlib_release_names_are_matched_not_left_unevaluated(api: Api) -> None:
    assert api.call("POST", "/v1/vulns/import", role="operator",
                    files=[("files", ("go.json", _go_stdlib_advisory(), "application/json"))]).status_code == 200
    for version, affected in (("go1.22.4", True), ("go1.22.5", False), ("go1.21.10", True), ("go1.23.0", False)):
        assert release(api, "gosvc", version[2:], sbom=cdx(f"pkg:golang/stdlib@{version}")).status_code == 201
        data = api.call("GET", f"/v1/releases/gosvc@{version[2:]}/findings", role="viewer").json()
        assert data["not_evaluated"] == [], (version, data)
        assert [f["advisory"] for f in data["findings"]] == (["GO-2024-2887"] if affected else []), version


def test_findings_are_paged(api: Api) -> None:
    assert api.call("POST", "/v1/vulns/import", role="operator",
                    files=[("files", ("npm.json", _npm_advisory(), "application/json"))]).status_code == 200
    purls = [f"pkg:npm/pkg-{k}@1.0.{k}" for k in range(12)]
    assert release(api, "app", "1", sbom=cdx(*purls)).status_code == 201
    whole = api.call("GET", "/v1/releases/app@1/findings", role="viewer").json()
    assert (whole["findings_total"], whole["next_offset"], len(whole["findings"])) == (12, None, 12)
    pages, offset = [], 0
    while offset is not None:
        page = api.call("GET", "/v1/releases/app@1/findings", role="viewer", params={"offset": offset, "limit": 5}).json()
        assert page["findings_total"] == 12 and len(page["findings"]) <= 5
        pages += page["findings"]
        offset = page["next_offset"]
    assert pages == whole["findings"]  # the same entries in the same order
    body = _problem(api.call("GET", "/v1/releases/app@1/findings", role="viewer", params={"limit": 5001}), 422)
    assert body["errors"][0]["field"] == "limit"
