"""The enrolment routes refuse bad ids and text with a 4xx naming the field, the same on both databases (issue 14).

Each row answered 500 on one database or was stored on one and refused by the other before: an id
beyond the INTEGER column (PostgreSQL overflows, SQLite stores 64 bits), a NUL character (PostgreSQL
cannot store it) and over-long text (SQLite stores any length, PostgreSQL refuses past the column).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api_support import Api, _problem
from tests.test_enrol import HOST, _enrol, _token


def _fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


@pytest.mark.parametrize("token_id", ["-281474976710656", "0", "7771022027147657496640880640", "2147483648"])
def test_enrolment_token_ids_beyond_the_column_range_are_422(api: Api, token_id: str) -> None:
    body = _problem(api.call("POST", f"/v1/enrolment-tokens/{token_id}/revoke", role="operator",
                             json={"reason": "x"}), 422)
    assert _fields(body) == ["token_id"], body


def test_largest_enrolment_token_id_is_a_404(api: Api) -> None:
    _problem(api.call("POST", "/v1/enrolment-tokens/2147483647/revoke", role="operator", json={"reason": "x"}), 404)


@pytest.mark.parametrize(("path", "payload", "field"), [
    ("/v1/enrolment-tokens", {"tenant": "ac\u0000me"}, "tenant"),
    ("/v1/enrolment-tokens", {"tenant": "acme", "reason": "a\u0000b"}, "reason"),
    ("/v1/enrolment-tokens", {"tenant": "acme", "expires": "1\u0000h"}, "expires"),
    ("/v1/enrolment-tokens", {"tenant": "t" * 201}, "tenant"),
    ("/v1/enrolment-tokens", {"tenant": "acme", "reason": "r" * 2001}, "reason"),
    ("/v1/enrolment-tokens/1/revoke", {"reason": "a\u0000b"}, "reason"),
    ("/v1/hosts/h1/reenrolment-token", {"reason": "a\u0000b"}, "reason"),
    ("/v1/hosts/h1/reenrolment-token", {"expires": "x" * 17}, "expires"),
    ("/v1/hosts/h1/credentials/revoke", {"reason": "a\u0000b"}, "reason"),
    ("/v1/hosts/h1/credentials/revoke", {"reason": "r" * 2001}, "reason"),
])
def test_nul_and_over_long_text_in_enrolment_bodies_is_422(api: Api, path: str, payload: dict[str, Any],
                                                           field: str) -> None:
    body = _problem(api.call("POST", path, role="operator", json=payload), 422)
    assert _fields(body) == [field], body


@pytest.mark.parametrize("path", ["/v1/hosts/{}/reenrolment-token", "/v1/hosts/{}/credentials/revoke"])
def test_over_long_host_ids_in_the_path_are_422(api: Api, path: str) -> None:
    body = _problem(api.call("POST", path.format("h" * 201), role="operator", json={"reason": "x"}), 422)
    assert _fields(body) == ["host_id"], body


@pytest.mark.parametrize(("change", "field"), [
    ({"hostname": "ws\u0000"}, "hostname"), ({"hostname": "h" * 300}, "hostname"), ({"id": "h" * 201}, "id"),
    ({"labels": {"k\u0000": "v"}}, "labels"),
])
def test_nul_and_over_long_host_facts_are_422_and_leave_the_token_unused(api: Api, change: dict[str, Any],
                                                                        field: str) -> None:
    token = _token(api)
    body = _problem(_enrol(api, token["token"], {**HOST, **change}), 422)
    assert any(field in f for f in _fields(body)), body
    assert _enrol(api, token["token"]).status_code == 201  # the refused attempt did not use the token
