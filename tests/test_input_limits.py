"""Bad input is a 4xx naming the field, never a 500, and the same on SQLite and PostgreSQL (issue 14, defect 6).

Each row is one input that answered 500 (or was stored on one database and refused by the other) in the
attack run: deep nesting, an over-long CSV field, ids beyond the column's integer range, NUL characters,
over-long text.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ringfence.adapters.bounded_json import MAX_DEPTH, check_depth, loads
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.tables import HostRow, SbomComponentRow
from ringfence.adapters.inventory import records
from ringfence.adapters.sbom.parse import COMPONENT_TEXT_LIMITS, parse_sbom
from ringfence.errors import InputError
from tests.api_support import Api, _problem
from tests.supply_support import cdx, release

HOST = {"id": "h1", "hostname": "h1", "tenant": "acme", "os_family": "linux"}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


def _hosts(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM hosts").scalar() or 0)


def test_depth_is_checked_without_recursion() -> None:
    check_depth(json.loads(_nested(MAX_DEPTH)), location="x")
    with pytest.raises(InputError, match="more than 64 levels"):
        check_depth(json.loads(_nested(MAX_DEPTH + 1)), location="x")
    with pytest.raises(InputError, match="more than 64 levels"):
        loads(_nested(100_000), location="x")  # json.loads itself raises RecursionError here


def test_deep_json_inventory_is_422(api: Api, db: Database) -> None:
    deep = '{"hosts": [{"id": "h1", "labels": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}]}"
    for ctype in ("application/json", "application/x-ndjson"):
        body = _problem(api.call("POST", "/v1/inventory", role="operator", content=deep,
                                 headers={"content-type": ctype}), 422)
        assert "document" in _fields(body), body
    assert _hosts(db) == 0


def test_deep_sboms_are_422(api: Api) -> None:
    assert release(api, "app", "1").status_code == 201
    deep = b'{"bomFormat": "CycloneDX", "specVersion": "1.5", "x": ' + _nested(100_000).encode() + b"}"
    nested = (b'{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": '
              + b'[{"type": "library", "name": "c", "components": ' * 900 + b"[]" + b"}]" * 900 + b"}")
    for data in (deep, nested):
        body = _problem(api.call("POST", "/v1/releases/app@1/sbom", role="operator",
                                 files=[("file", ("deep.cdx.json", data, "application/json"))]), 422)
        assert _fields(body) == ["document"], body
    _problem(api.call("GET", "/v1/releases/app@1/sbom", role="viewer"), 404)


def test_csv_field_over_the_csv_limit_is_422_naming_the_row(api: Api, db: Database) -> None:
    text = "id,hostname,tenant,os_family,site\nh1,h1,acme,linux," + "x" * 140_000 + "\n"
    body = _problem(api.call("POST", "/v1/inventory", role="operator", content=text,
                             headers={"content-type": "text/csv"}), 422)
    assert body["errors"][0]["location"].startswith("body.csv row"), body
    assert "131,072" in body["errors"][0]["message"]
    assert _hosts(db) == 0


@pytest.mark.parametrize("path", ["/v1/tokens/7771022027147657496640880640/revoke", "/v1/tokens/-281474976710656/revoke",
                                  "/v1/tokens/2147483648/revoke", "/v1/audit?before=7771022027147657496640880640"])
def test_ids_beyond_the_column_range_are_422(api: Api, path: str) -> None:
    method = "GET" if path.startswith("/v1/audit") else "POST"
    body = _problem(api.call(method, path, json={"reason": "x"} if method == "POST" else None), 422)
    assert _fields(body) in (["token_id"], ["before"]), body


def test_largest_token_id_is_a_404_not_an_overflow(api: Api) -> None:
    _problem(api.call("POST", "/v1/tokens/2147483647/revoke", json={"reason": "x"}), 404)


@pytest.mark.parametrize(("method", "path", "payload", "field"), [
    ("POST", "/v1/killswitch/app", {"reason": "a\u0000b"}, "reason"),
    ("PUT", "/v1/policies", {"tenant": "acme", "ring": "early", "reason": "a\u0000b"}, "reason"),
    ("PUT", "/v1/policies", {"tenant": "ac\u0000me", "ring": "early"}, "tenant"),
    ("POST", "/v1/tokens", {"name": "n\u0000", "role": "viewer"}, "name"),
    ("POST", "/v1/tokens", {"name": "n", "role": "viewer", "reason": "r" * 2001}, "reason"),
    ("POST", "/v1/recovery/campaigns", {"name": "c\u0000", "runbooks": "x"}, "name"),
    ("POST", "/v1/recovery/campaigns", {"name": "c", "runbooks": "x", "model": {"k": "a\u0000"}}, "model"),
    ("POST", "/v1/recovery/campaigns/c1/assign", {"hosts": ["h1"], "technician": "t\u0000"}, "technician"),
    ("POST", "/v1/recovery/campaigns/c1/hosts/h1/mark", {"state": "start", "message": "m\u0000"}, "message"),
])
def test_nul_and_over_long_text_in_json_bodies_is_422(api: Api, method: str, path: str, payload: dict[str, Any],
                                                       field: str) -> None:
    body = _problem(api.call(method, path, json=payload), 422)
    assert _fields(body) == [field], body


def test_nul_in_the_url_is_422(api: Api) -> None:
    body = _problem(api.call("POST", "/v1/killswitch/a%00b", json={"reason": "x"}), 422)
    assert _fields(body) == ["path"]
    body = _problem(api.call("GET", "/v1/hosts?after=a%00b", role="viewer"), 422)
    assert _fields(body) == ["query"]


@pytest.mark.parametrize(("change", "field"), [
    ({"hostname": "h" * 300}, "hostname"),
    ({"hostname": "h" * 55_000_000}, "hostname"),
    ({"site": "s\u0000"}, "site"),
    ({"labels": {"k": "v" * 401}}, "labels.k"),
    ({"agents": [{"vendor": "V" * 201, "product": "P", "version": "1"}]}, "agents[0].vendor"),
])
def test_over_long_or_nul_host_text_is_422_on_both_databases(api: Api, db: Database, change: dict[str, Any],
                                                             field: str) -> None:
    payload = {"tenants": [{"id": "acme", "name": "ACME"}], "hosts": [{**HOST, **change}]}
    body = _problem(api.call("POST", "/v1/inventory", role="operator", json=payload), 422)
    assert field in _fields(body), body
    assert _hosts(db) == 0


def test_host_text_limits_are_the_column_lengths() -> None:
    for name, limit in records.HOST_TEXT_LIMITS.items():
        assert HostRow.__table__.c[name].type.length == limit, name  # type: ignore[attr-defined]
    for name, limit in COMPONENT_TEXT_LIMITS.items():
        assert SbomComponentRow.__table__.c[name].type.length == limit, name  # type: ignore[attr-defined]


def test_over_long_sbom_component_text_is_refused() -> None:
    doc = json.loads(cdx("pkg:pypi/requests@2.31.0"))
    doc["components"][0]["name"] = "n" * 401
    doc["components"][0]["purl"] = "pkg:" + "t" * 70 + "/x@1"
    with pytest.raises(InputError) as err:
        parse_sbom("long.cdx.json", json.dumps(doc).encode())
    assert [i.field for i in err.value.issues] == ["component 1 name", "component 1 ecosystem"]


def test_nul_or_over_long_text_in_multipart_forms_is_422(api: Api) -> None:
    body = _problem(release(api, "app", "1", reason="a\u0000b"), 422)
    assert [e["field"] for e in body["errors"]] == ["reason"], body
    body = _problem(release(api, "app", "1", reason="r" * 2001), 422)
    assert [e["field"] for e in body["errors"]] == ["reason"], body
    assert release(api, "app", "1").status_code == 201
    body = _problem(api.call("POST", "/v1/releases/app@1/sbom", role="operator", data={"reason": "x\u0000"},
                             files=[("file", ("b.cdx.json", cdx("pkg:pypi/requests@2.31.0"), "application/json"))]), 422)
    assert [e["field"] for e in body["errors"]] == ["reason"], body


@pytest.mark.parametrize("body", ["Hostname,KeyID,RecoveryKey\r\nh1,k\r1,x\n", "x" * 140_000 + "\n",
                                  "Hostname,KeyID,RecoveryKey\nh1,k1," + "9" * 140_000 + "\n"])
def test_recovery_key_csv_that_the_csv_module_cannot_read_is_422(api: Api, body: str) -> None:
    """schemathesis found a lone CR in a key CSV answering 500 (_csv.Error) on both databases."""
    response = api.call("POST", "/v1/recovery/keys", content=body.encode(), headers={"content-type": "text/csv"})
    problem = _problem(response, 422)
    assert _fields(problem)[0] in ("header", "row", "Hostname"), problem


def test_escrow_csv_field_over_the_csv_limit_is_422(api: Api) -> None:
    text = "host_id,key_id,location,verified\nh1,k1," + "x" * 140_000 + ",true\n"
    body = _problem(api.call("POST", "/v1/escrow", role="operator",
                             files=[("files", ("escrow.csv", text.encode(), "text/csv"))]), 422)
    assert "cannot be read as CSV" in body["detail"], body


def _walk(node: Any) -> Any:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def test_the_openapi_document_refuses_nul_in_mapping_keys_too(api: Api) -> None:
    """A constrained key type (health `versions`: product → version) gets pydantic's propertyNames without a
    pattern; the document must still say that a NUL is refused there, as the API does (schemathesis ST202)."""
    doc = api.client.get("/openapi.json").json()
    versions = doc["components"]["schemas"]["Report"]["properties"]["versions"]
    assert re.fullmatch(versions["propertyNames"]["pattern"], "a\u0000b") is None
    assert re.fullmatch(versions["propertyNames"]["pattern"], "app") is not None
    for item in _walk(doc):
        if isinstance(item.get("propertyNames"), dict):
            assert "pattern" in item["propertyNames"], item
    host = api.call("POST", "/v1/health", role="operator", json={"host_id": "h", "at": "2026-11-24T09:00:00Z",
                                                                   "versions": {"a\u0000": "1"}})
    assert host.status_code in (401, 422)


def test_a_blank_override_reason_is_invalid_in_the_document_as_in_the_api(api: Api) -> None:
    """The service strips the reason and refuses a blank one; the document says so with a pattern that
    treats exactly Python's whitespace as blank (schemathesis found "\\r\\r" schema-valid but refused)."""
    doc = api.client.get("/openapi.json").json()
    pattern = doc["components"]["schemas"]["OverrideIn"]["properties"]["reason"]["pattern"]
    spaces = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
    for blank in ("\r\r", " ", spaces, "\u3000\u2028"):
        assert re.fullmatch(pattern, blank) is None, repr(blank)
    for text in ("ok", " fixed upstream \n", "\u00e9"):
        assert re.fullmatch(pattern, text) is not None
    assert re.fullmatch(pattern, "a\u0000b") is None
    body = _problem(api.call("POST", "/v1/rollouts/r1/gate-override", role="approver", json={"reason": "\r\r"}), 422)
    assert body["errors"][0]["field"] == "reason"
