"""Input that was quietly wrong and accepted is refused or reported (issue 14, defect 7)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ringfence.adapters.db.engine import Database
from ringfence.domain.channel import NAME_RULE, check_name, require_names
from ringfence.errors import InputError
from tests.api_support import Api, _problem
from tests.supply_support import cdx, release

PLAN = """
name: {name}
waves:
  - {{name: all, fraction: 1.0}}
"""


def _advisory(vid: str, introduced: str = "1.0.0", fixed: str = "1.2.0") -> bytes:
    return json.dumps({"id": vid, "modified": "2026-01-01T00:00:00Z", "affected": [{
        "package": {"ecosystem": "npm", "name": "left-pad"},
        "ranges": [{"type": "SEMVER", "events": [{"introduced": introduced}, {"fixed": fixed}]}]}]}).encode()


def _hosts(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM hosts").scalar() or 0)


@pytest.mark.parametrize(("value", "ok"), [
    ("falcon-sensor", True), ("7.16.18605", True), ("C-291_x+y.sys", True),
    ("../../etc/x", False), ("C 291 (copy).sys", False), ("", False), ("a" * 201, False), ("a..b", False),
    (".hidden", False), ("a/b", False),
])
def test_channel_names(value: str, ok: bool) -> None:
    assert (check_name("file", value) == []) is ok
    if not ok:
        with pytest.raises(InputError) as err:
            require_names([("file", value), ("product", "fine")], "release")
        assert [i.field for i in err.value.issues] == ["file"]
        assert err.value.issues[0].expected == NAME_RULE


def test_csv_rows_with_missing_or_extra_values_are_refused(api: Api, db: Database) -> None:
    text = "id,hostname,tenant,os_family,timezone,tier,country\nh1,h1,acme,linux,Europe/Berlin,1,DE\nh2,h2,acme\n"
    body = _problem(api.call("POST", "/v1/inventory", role="operator", content=text,
                             headers={"content-type": "text/csv"}), 422)
    assert [(e["location"], e["message"]) for e in body["errors"]] == [("body.csv row 3", "has 3 values for 7 columns")]
    text = "id,hostname,tenant,os_family\nh1,h1,acme,linux,extra\n"
    body = _problem(api.call("POST", "/v1/inventory", role="operator", content=text,
                             headers={"content-type": "text/csv"}), 422)
    assert body["errors"][0]["message"] == "has 5 values for 4 columns"
    assert _hosts(db) == 0


@pytest.mark.parametrize("name", ["../../etc/x", "C 291 (copy)", "p" * 10_000])
def test_plan_names_the_channel_cannot_publish_are_refused(api: Api, name: str) -> None:
    body = _problem(api.call("PUT", "/v1/plans", role="operator", content=PLAN.format(name=json.dumps(name)),
                             headers={"content-type": "application/yaml"}), 422)
    assert [e["field"] for e in body["errors"]] == ["name"], body
    assert len(body["detail"]) < 1000  # the value is shortened, not echoed whole


def test_artifact_names_the_channel_cannot_publish_are_refused(api: Api) -> None:
    body = _problem(release(api, "app", "1", files=[("C 291 (copy).sys", b"x"), ("ok.sys", b"y")]), 422)
    assert [e["field"] for e in body["errors"]] == ["file"], body
    _problem(api.call("GET", "/v1/releases/app@1", role="viewer"), 404)
    assert release(api, "app", "1", files=[("C-291.sys", b"x")]).status_code == 201


def test_unorderable_semver_events_and_duplicate_ids_are_reported(api: Api) -> None:
    files = [("files", ("a.json", _advisory("BAN-1", introduced="banana"), "application/json")),
             ("files", ("b.json", _advisory("DUP-1"), "application/json")),
             ("files", ("c.json", _advisory("DUP-1", fixed="1.3.0"), "application/json")),
             ("files", ("d.json", _advisory("OK-1"), "application/json"))]
    data = api.call("POST", "/v1/vulns/import", role="operator", files=files).json()
    assert data["records"] == 3
    assert data["duplicate_ids"] == ["DUP-1"]
    assert data["duplicates"] == [{"id": "DUP-1", "records": 2, "sources": ["b.json", "c.json"]}]
    assert [(b["id"], b["source"]) for b in data["not_evaluable"]] == [("BAN-1", "a.json")]
    assert "banana" in data["not_evaluable"][0]["problems"][0]
    assert data["not_evaluable_count"] == 1


def test_errors_show_neither_temporary_paths_nor_python_type_names(api: Api) -> None:
    body = _problem(api.call("POST", "/v1/vulns/import", role="operator", files=[
        ("files", ("bad.json", json.dumps({"id": "X-1", "modified": "yesterday"}).encode(), "application/json"))]), 422)
    text = json.dumps(body)
    assert "ringfence-osv-" not in text and "/tmp" not in text, text
    assert any(e["location"] == "bad.json" for e in body["errors"]), body
    assert release(api, "app", "1").status_code == 201
    doc: dict[str, Any] = json.loads(cdx("pkg:pypi/requests@2.31.0"))
    doc["components"][0]["version"] = 2
    doc["components"].append(None)
    body = _problem(api.call("POST", "/v1/releases/app@1/sbom", role="operator",
                             files=[("file", ("b.cdx.json", json.dumps(doc).encode(), "application/json"))]), 422)
    messages = [e["message"] for e in body["errors"]]
    assert messages == ["is a number", "is empty (null)"], messages
    assert not any(t in json.dumps(body) for t in ("NoneType", "is int", "is dict", "is list", "is str"))
