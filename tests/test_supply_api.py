"""Supply chain through the API: real OSV records and SBOMs import; findings, VEX, fleet queries; bad input is 4xx."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ringfence.adapters.db.engine import Database
from tests.api_support import Api, _problem
from tests.conftest import SHARED_DATA, FakeClock
from tests.supply_support import LOG4J, OSV, cdx, osv_uploads, release

LOG4SHELL = {"CVE-2021-44228", "GHSA-jfh8-c2jp-5v3q"}


def _ids(finding: dict[str, Any]) -> set[str]:
    return {finding["advisory"], *finding["aliases"]}


def _fleet(api: Api, clock: FakeClock) -> None:
    """Three hosts in two tenants; two report running app@1 (log4j 2.14.1), one has app@2 installed per inventory."""
    body = {"tenants": [{"id": "acme", "name": "ACME"}, {"id": "beta", "name": "Beta"}],
            "services": [{"id": "payments", "name": "Payments", "tenant": "acme"},
                         {"id": "search", "name": "Search", "tenant": "beta"}],
            "hosts": [{"id": "h1", "hostname": "h1", "tenant": "acme", "os_family": "windows", "services": ["payments"]},
                      {"id": "h2", "hostname": "h2", "tenant": "beta", "os_family": "windows", "services": ["search"]},
                      {"id": "h3", "hostname": "h3", "tenant": "acme", "os_family": "windows",
                       "agents": [{"vendor": "Acme", "product": "app", "version": "2"}]}]}
    imported = api.call("POST", "/v1/inventory", role="operator", json=body)
    assert imported.status_code == 200, imported.text
    for host in ("h1", "h2"):
        cred = api.call("POST", f"/v1/hosts/{host}/credentials", role="operator").json()["credential"]
        sent = api.client.post("/v1/health", json={"host_id": host, "at": clock().isoformat(), "versions": {"app": "1"}},
                               headers={"Authorization": f"Bearer {cred}"})
        assert sent.status_code == 202, sent.text
    api.client.app.state.ringfence.ingest.flush()  # type: ignore[attr-defined]  # reported versions are buffered


def test_real_osv_and_sboms_import_and_log4shell_is_found_only_where_affected(api: Api, clock: FakeClock) -> None:
    """Every real OSV record imports; Log4Shell is found in log4j-core 2.14.1 and not in 2.17.1; fleet queries."""
    imported = api.call("POST", "/v1/vulns/import", role="operator", files=osv_uploads(), data={"reason": "feed"})
    assert imported.status_code == 200, imported.text
    first = imported.json()
    assert first["records"] > 2_600 and first["inserted"] == first["records"] and first["withdrawn"] >= 1
    again = api.call("POST", "/v1/vulns/import", role="operator", files=osv_uploads(pypa=False)).json()
    assert again["inserted"] == 0 and again["updated"] == again["records"] > 0  # re-import updates in place
    assert again["generation"] == first["generation"] + 1

    # Every real SBOM (CycloneDX 1.2/1.4 JSON, SPDX 2.2/2.3, the VEX case's BOMs) imports and validates.
    sboms = sorted([*(SHARED_DATA / "sbom").glob("*.json"), *(SHARED_DATA / "sbom" / "vex-case-9").glob("bom-*.json")])
    for k, path in enumerate(sboms):
        assert release(api, f"real-{k}", "1").status_code == 201
        attached = api.call("POST", f"/v1/releases/real-{k}@1/sbom", role="operator",
                            files=[("file", (path.name, path.read_bytes(), "application/json"))])
        assert attached.status_code == 200, (path.name, attached.text)
    keycloak = next(k for k, p in enumerate(sboms) if p.name.startswith("keycloak"))
    shown = api.call("GET", f"/v1/releases/real-{keycloak}@1/sbom", role="viewer").json()
    assert len(shown["components"]) == 903 and shown["format"] == "cyclonedx"
    assert api.call("GET", f"/v1/releases/real-{keycloak}@1/findings", role="viewer").status_code == 200

    bad = release(api, "app", "1", sbom=cdx(LOG4J.format("2.14.1"), "pkg:pypi/Django@2.2.0"))
    assert bad.status_code == 201, bad.text
    assert bad.json()["sbom"]["components"] == 2 and bad.json()["sbom"]["incomplete"] == []
    good = release(api, "app", "2", sbom=cdx(LOG4J.format("2.17.1")))
    assert good.status_code == 201, good.text

    found = api.call("GET", "/v1/releases/app@1/findings", role="viewer").json()["findings"]
    log4shell = [f for f in found if _ids(f) & LOG4SHELL]
    assert len(log4shell) == 1
    assert log4shell[0]["severity"] == "critical" and log4shell[0]["fixed"] == "2.15.0"
    assert log4shell[0]["component"]["version"] == "2.14.1" and log4shell[0]["waived"] is False
    assert any(f["component"]["name"] == "Django" for f in found)  # PyPA records match PyPI purls
    clean = api.call("GET", "/v1/releases/app@2/findings", role="viewer").json()["findings"]
    assert not [f for f in clean if _ids(f) & LOG4SHELL]

    _fleet(api, clock)
    where = api.call("GET", "/v1/vulns/CVE-2021-44228/where", role="viewer").json()
    assert [r["release"] for r in where["releases"]] == ["app@1"]
    assert where["releases"][0]["components"][0]["fixed"] == "2.15.0"
    assert where["releases"][0]["hosts"] == ["h1", "h2"]
    assert where["by_tenant"] == {"acme": {"payments": ["h1"]}, "beta": {"search": ["h2"]}}
    assert api.call("GET", "/v1/vulns/GHSA-jfh8-c2jp-5v3q/where", role="viewer").json()["releases"] == where["releases"]
    comp = api.call("GET", "/v1/components/where", role="viewer",
                    params={"purl": "pkg:maven/org.apache.logging.log4j/log4j-core"}).json()
    assert {r["release"] for r in comp["releases"]} == {"app@1", "app@2"}
    assert comp["hosts"] == 3 and comp["by_tenant"]["acme"] == {"(no service)": ["h3"], "payments": ["h1"]}
    exact = api.call("GET", "/v1/components/where", role="viewer", params={"purl": LOG4J.format("2.17.1")}).json()
    assert [r["release"] for r in exact["releases"]] == ["app@2"] and exact["hosts"] == 1
    _problem(api.call("GET", "/v1/vulns/CVE-1999-0001/where", role="viewer"), 404)
    body = _problem(api.call("GET", "/v1/components/where", role="viewer", params={"purl": "log4j-core"}), 422)
    assert body["errors"][0]["field"] == "purl"


def test_disjoint_ranges_and_withdrawn_records(api: Api) -> None:
    """passenger: [0, 3.0.21) ∪ [4.0.1, 4.0.5) in one range; a withdrawn advisory never matches."""
    files = [("files", (p.name, p.read_bytes(), "application/json"))
             for p in (OSV / "ghsa-conversion" / "multiple_ranges_in_package.osv.json",
                       OSV / "ghsa-conversion" / "withdrawn.osv.json")]
    assert api.call("POST", "/v1/vulns/import", role="operator", files=files).json()["withdrawn"] == 1
    cases = {"3.0.5": True, "3.0.21": False, "4.0.0": False, "4.0.2": True, "4.0.5": False}
    for k, (version, affected) in enumerate(cases.items()):
        sbom = cdx(f"pkg:gem/passenger@{version}", "pkg:gem/activesupport@4.2.1")
        assert release(api, "rails", str(k), sbom=sbom).status_code == 201
        found = api.call("GET", f"/v1/releases/rails@{k}/findings", role="viewer").json()["findings"]
        assert bool([f for f in found if f["advisory"] == "GHSA-9qj7-jvg4-qr2x"]) is affected, version
        assert not [f for f in found if "CVE-2015-3227" in _ids(f)]  # withdrawn: activesupport 4.2.1 is in range
    where = api.call("GET", "/v1/vulns/CVE-2015-3227/where", role="viewer").json()
    assert where["withdrawn"] == ["GHSA-35c4-f3rq-f9g3"] and where["releases"] == []


def test_vex_waives_only_not_affected_with_justification_for_named_products(api: Api) -> None:
    """CycloneDX VEX by BOM-Link and OpenVEX by purl waive; other products and states do not."""
    files = [("files", ("log4shell.json", (OSV / "github-advisories" / "GHSA-jfh8-c2jp-5v3q.json").read_bytes(),
                        "application/json"))]
    assert api.call("POST", "/v1/vulns/import", role="operator", files=files).status_code == 200
    serial = "3e671687-395b-41f5-a30f-a58921a69b79"
    assert release(api, "svc", "1", sbom=cdx(LOG4J.format("2.14.1"), serial=serial, name="svc")).status_code == 201
    assert release(api, "other", "1", sbom=cdx(LOG4J.format("2.14.1"), name="other")).status_code == 201
    assert release(api, "third", "1", sbom=cdx(LOG4J.format("2.14.0"), name="third")).status_code == 201
    vex = {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "vulnerabilities": [
        {"id": "CVE-2021-44228", "analysis": {"state": "not_affected", "justification": "code_not_reachable"},
         "affects": [{"ref": f"urn:cdx:{serial}/1#svc"}]},
        {"id": "CVE-2021-44228", "analysis": {"state": "exploitable"}, "affects": [{"ref": "other@1"}]}]}
    stored = api.call("POST", "/v1/vex", role="operator",
                      files=[("file", ("vex.cdx.json", json.dumps(vex).encode(), "application/json"))])
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"document": "vex.cdx.json", "statements": 2, "waiving": 1,
                             "by_status": {"exploitable": 1, "not_affected": 1}}
    svc = api.call("GET", "/v1/releases/svc@1/findings", role="viewer").json()["findings"]
    assert svc[0]["waived"] is True and svc[0]["waived_by"].startswith("VEX vex.cdx.json: CVE-2021-44228 not_affected")
    assert "code_not_reachable" in svc[0]["waived_by"]
    other = api.call("GET", "/v1/releases/other@1/findings", role="viewer").json()["findings"]
    assert other[0]["waived"] is False
    openvex = {"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/1", "author": "sec",
               "timestamp": "2026-11-01T00:00:00Z", "version": 1, "statements": [
                   {"vulnerability": {"name": "GHSA-jfh8-c2jp-5v3q"}, "status": "not_affected",
                    "justification": "vulnerable_code_not_in_execute_path",
                    "products": [{"@id": LOG4J.format("2.14.0")}]}]}
    assert api.call("POST", "/v1/vex", role="operator",
                    files=[("file", ("x.openvex.json", json.dumps(openvex).encode(), "application/json"))]).status_code == 200
    third = api.call("GET", "/v1/releases/third@1/findings", role="viewer").json()["findings"]
    assert third[0]["waived"] is True and "x.openvex.json" in third[0]["waived_by"]
    assert api.call("GET", "/v1/releases/other@1/findings", role="viewer").json()["findings"][0]["waived"] is False
    # A not_affected statement without justification is rejected, naming the field; nothing is stored.
    openvex["statements"][0].pop("justification")
    body = _problem(api.call("POST", "/v1/vex", role="operator",
                             files=[("file", ("bad.json", json.dumps(openvex).encode(), "application/json"))]), 422)
    assert body["errors"][0]["field"] == "statements[0].justification"
    assert len(api.call("GET", "/v1/vex", role="viewer").json()["statements"]) == 3
    real = (SHARED_DATA / "sbom" / "vex-case-9" / "vex.json").read_bytes()
    assert api.call("POST", "/v1/vex", role="operator",
                    files=[("file", ("vex.json", real, "application/json"))]).json()["statements"] == 57


def test_bad_sboms_osv_and_roles_are_4xx_and_change_nothing(api: Api, db: Database) -> None:
    """Schema violations name the field; a bad OSV file rejects the whole import; viewers cannot write."""
    assert release(api, "app", "1").status_code == 201
    doc = json.loads(cdx(LOG4J.format("2.14.1")))
    doc["components"][0]["type"] = "gizmo"  # only the CycloneDX schema knows the component types
    body = _problem(api.call("POST", "/v1/releases/app@1/sbom", role="operator",
                             files=[("file", ("bad.cdx.json", json.dumps(doc).encode(), "application/json"))]), 422)
    assert body["errors"][0]["field"] == "components[0].type"
    assert '"gizmo" is not one of' in body["errors"][0]["message"]
    spdx = json.loads((SHARED_DATA / "sbom" / "examplemaven-0.0.1-enriched.spdx.json").read_text())
    del spdx["SPDXID"]
    body = _problem(api.call("POST", "/v1/releases/app@1/sbom", role="operator",
                             files=[("file", ("bad.spdx.json", json.dumps(spdx).encode(), "application/json"))]), 422)
    assert "spdx_id" in body["detail"]
    # --sbom on release create: a bad SBOM refuses the release too.
    _problem(release(api, "app", "2", sbom=json.dumps(doc).encode()), 422)
    _problem(api.call("GET", "/v1/releases/app@2", role="viewer"), 404)
    _problem(api.call("GET", "/v1/releases/app@1/sbom", role="viewer"), 404)
    # One malformed record among good ones: nothing is imported.
    good = (OSV / "github-advisories" / "GHSA-jfh8-c2jp-5v3q.json").read_bytes()
    broken = json.dumps({"id": "BAD-1", "modified": "yesterday"}).encode()
    body = _problem(api.call("POST", "/v1/vulns/import", role="operator", files=[
        ("files", ("ok.json", good, "application/json")), ("files", ("bad.json", broken, "application/json"))]), 422)
    assert any(e["field"] == "modified" and e["location"].endswith("bad.json") for e in body["errors"])
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM advisories").scalar() == 0
    _problem(api.call("POST", "/v1/vulns/import", role="viewer", files=[("files", ("ok.json", good, "x"))]), 403)
    _problem(api.call("POST", "/v1/vulns/import", role="operator", files=[("files", ("notes.txt", b"x", "x"))]), 422)
    _problem(api.call("POST", "/v1/releases/nope@1/sbom", role="operator",
                      files=[("file", ("b.json", cdx(LOG4J.format("1.0")), "application/json"))]), 404)


def test_xml_sbom_validates_and_spdx_rule_messages_are_warnings(api: Api) -> None:
    """CycloneDX XML goes through the XML schema validator; SPDX rule messages come back as warnings."""
    assert release(api, "app", "1").status_code == 201
    xml = (Path(__file__).parent / "fixtures" / "sbom" / "app-1.6.cdx.xml").read_bytes()
    ok = api.call("POST", "/v1/releases/app@1/sbom", role="operator", files=[("file", ("app.cdx.xml", xml, "text/xml"))])
    assert ok.status_code == 200, ok.text
    assert ok.json()["spec_version"] == "1.6" and len(ok.json()["incomplete"]) == 1
    broken = xml.replace(b"</component>", b"<bogus/></component>", 1)
    body = _problem(api.call("POST", "/v1/releases/app@1/sbom", role="operator",
                             files=[("file", ("broken.cdx.xml", broken, "text/xml"))]), 422)
    assert "bogus" in body["errors"][0]["message"] and body["errors"][0]["field"].startswith("line ")
    spdx = (SHARED_DATA / "sbom" / "appbomination.spdx.json").read_bytes()
    warned = api.call("POST", "/v1/releases/app@1/sbom", role="operator",
                      files=[("file", ("appbomination.spdx.json", spdx, "application/json"))]).json()
    assert warned["format"] == "spdx" and warned["replaced"] is True
    assert any("files_analyzed" in w for w in warned["warnings"])
    shown = api.call("GET", "/v1/releases/app@1/sbom", role="viewer").json()
    assert shown["format"] == "spdx" and {c["name"] for c in shown["incomplete"]} <= {c["name"] for c in shown["components"]}


def test_sbom_export_writes_valid_cyclonedx_that_imports_again(api: Api) -> None:
    """GET …/sbom/cyclonedx is written by cyclonedx-python-lib, passes the 1.5 schema and round-trips."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    laravel = (SHARED_DATA / "sbom" / "laravel-7.12.0.cdx.json").read_bytes()
    assert release(api, "laravel", "7.12.0").status_code == 201
    assert api.call("POST", "/v1/releases/laravel@7.12.0/sbom", role="operator",
                    files=[("file", ("laravel.json", laravel, "application/json"))]).status_code == 200
    exported = api.call("GET", "/v1/releases/laravel@7.12.0/sbom/cyclonedx", role="viewer")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/vnd.cyclonedx+json")
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(exported.text) is None
    doc = exported.json()
    assert doc["metadata"]["component"]["bom-ref"] == "laravel@7.12.0" and len(doc["components"]) == 62
    assert release(api, "laravel", "copy").status_code == 201
    again = api.call("POST", "/v1/releases/laravel@copy/sbom", role="operator",
                     files=[("file", ("exported.json", exported.content, "application/json"))])
    assert again.status_code == 200 and again.json()["components"] == 62
    _problem(api.call("GET", "/v1/releases/nope@1/sbom/cyclonedx", role="viewer"), 404)
