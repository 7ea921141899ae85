"""The OpenAPI document states the rules the routes enforce (issue 14, item 10; tests/schemathesis.toml).

An operation stays in the positive-data allow-list of tests/schemathesis.toml only for content no JSON Schema can
describe (a YAML or CSV file, a selector expression). Every rule a schema *can* state is in the document, so a
client that follows the document is not refused: the release's channel names and platforms, the assessment's
formats, per-site technicians and the what_ifs / scenarios exclusivity. Each row below is one such rule, with a
value the document now forbids and the route refuses, and one it allows and the route accepts.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from ringfence.domain.channel import NAME_PATTERN, check_name
from tests.api_support import Api, _problem

NAMES = ["agent", "7.16.18605", "C-00000291_x+1", "a" * 200, "../../etc/x", "C 291 (copy).sys", "a..b", ".hidden",
         "-x", "", "a" * 201, "x/y", "ünï", "a\u0000b"]


@pytest.mark.parametrize("name", NAMES)
def test_the_schema_pattern_is_the_channel_s_own_rule(name: str) -> None:
    assert (re.fullmatch(NAME_PATTERN, name) is not None) == (check_name("product", name) == []), name


def _doc(api: Api) -> dict[str, Any]:
    doc: dict[str, Any] = api.client.get("/openapi.json").json()
    return doc


def test_the_release_form_states_the_channel_rule_and_the_platforms(api: Api) -> None:
    form = _doc(api)["paths"]["/v1/releases"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    props = form["properties"]
    assert props["product"]["pattern"] == NAME_PATTERN and props["product"]["maxLength"] == 200
    assert props["version"]["pattern"] == NAME_PATTERN and props["version"]["maxLength"] == 100
    assert props["platforms"]["minItems"] == 1 and props["platforms"]["items"]["enum"] == ["windows", "linux", "macos"]
    for product in ("../../etc/x", "C 291 (copy).sys"):
        body = _problem(api.call("POST", "/v1/releases", role="operator", data={
            "product": product, "version": "1", "kind": "app", "platforms": "linux"},
            files=[("files", ("app.bin", b"x", "application/octet-stream"))]), 422)
        assert any(e["field"] == "product" for e in body["errors"]), body


def _assessment_schema(api: Api) -> dict[str, Any]:
    doc = _doc(api)
    ref = doc["paths"]["/v1/assessments"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def test_the_assessment_states_formats_technicians_and_one_name_for_the_what_ifs(api: Api) -> None:
    schema = _assessment_schema(api)
    assert schema["properties"]["formats"]["items"]["enum"] == ["json", "html", "markdown"]
    assert schema["properties"]["technicians"]["additionalProperties"]["minimum"] == 1
    assert schema["not"] == {"required": ["what_ifs", "scenarios"]}
    assert [next(iter(alt["properties"])) for alt in schema["anyOf"]] == ["what_ifs", "scenarios", "top"]


@pytest.mark.parametrize(("body", "field"), [
    ({"top": 1, "formats": ["pdf"]}, "formats"),
    ({"top": 1, "technicians": {"berlin": 0}}, "technicians"),
    ({"what_ifs": [], "top": 0}, "what_ifs"),
    ({"what_ifs": ["os_family=windows"], "scenarios": ["os_family=linux"]}, "what_ifs"),
])
def test_what_the_assessment_schema_forbids_is_refused_naming_the_field(api: Api, body: dict[str, Any],
                                                                        field: str) -> None:
    problem = _problem(api.call("POST", "/v1/assessments", role="viewer", json=body), 422)
    assert any(field in str(e.get("field", "")) for e in problem["errors"]), problem


def test_what_the_assessment_schema_allows_is_accepted(api: Api) -> None:
    response = api.call("POST", "/v1/assessments", role="viewer",
                        json={"top": 3, "formats": ["json", "markdown"], "technicians": {"berlin": 1}})
    assert response.status_code == 200, response.text
    assert "markdown" in response.json()
