"""The API against its own OpenAPI document: schemathesis over /openapi.json on a live server (issue 14, defect 10).

A real `ringfence serve` on 127.0.0.1 (SQLite, and PostgreSQL when RINGFENCE_TEST_DATABASE_URL is set)
with channel keys made, so every operation can succeed; schemathesis (the CLI, from the package index)
generates requests from the document and fails on any 5xx, any status code or content type the
document does not list, and any response body that does not match its schema.

A second run generates only schema-valid requests (``--mode positive``) and fails when one is refused
(positive data acceptance); tests/schemathesis.toml names the operations that take a file or an expression
whose content a JSON Schema cannot describe, where a 422 is the right answer.

Bounded: ``--max-time`` for each run (45 s + 30 s per database in ``make test``; the deeper run
marked ``deep`` has 300 s + 120 s and runs with ``make test-deep``), one worker, a per-request timeout.
One operation is left out of the generated requests: ``POST /v1/tokens/{token_id}/revoke`` would revoke the very token the run
authenticates with (after which every operation answers 401); its bounds are tested in
tests/test_input_limits.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ringfence.services.channel import init_keys
from ringfence.services.context import system_clock
from tests.api_support import Api
from tests.servers import Server

CONFIG = Path(__file__).with_name("schemathesis.toml")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def _schemathesis() -> str:
    found = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    if not Path(found).exists():
        pytest.fail("schemathesis is not installed: `make install` (it is a dev dependency)")
    return found


def _schemathesis_run(server: Server, tmp_path: Path, name: str, max_time: int, *args: str) -> None:
    token = server.env["RINGFENCE_TOKEN"]
    result = subprocess.run(
        [_schemathesis(), "--config-file", str(CONFIG), "run", f"{server.url}/openapi.json", *args,
         "--max-time", str(max_time), "--workers", "1", "--request-timeout", "20",
         "--exclude-path", "/v1/tokens/{token_id}/revoke",
         "--header", f"Authorization: Bearer {token}", "--no-color"],
        capture_output=True, text=True, timeout=max_time + 120, check=False, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"})
    (tmp_path / f"schemathesis-{name}.out").write_text(result.stdout + result.stderr)  # the whole run, to read after
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    assert " 0 failures" in summary or "failures" not in summary.split("SUMMARY")[-1], summary


def _run(tmp_path: Path, db_url: str, max_time: int, positive_time: int) -> None:
    (tmp_path / "var").mkdir()
    init_keys(tmp_path / "var", root_keys=1, root_threshold=1, bins=4, clock=system_clock)
    # schemathesis sends requests without or with broken credentials on purpose (401s): the server's own
    # throttle settings let those reach the handlers instead of turning the run into a wall of 429s
    server = Server(tmp_path, db_url, RINGFENCE_AUTH_FAILURES_PER_MINUTE_PER_SOURCE="1000000",
                    RINGFENCE_AUTH_FAILURES_PER_MINUTE_PER_CREDENTIAL="1000000")
    try:
        _schemathesis_run(server, tmp_path, "all", max_time, "--checks", CHECKS,
                          "--phases", "examples,coverage,fuzzing")
        # positive data only: every request the document allows must be accepted (tests/schemathesis.toml
        # lists the operations whose file content no JSON Schema can describe)
        _schemathesis_run(server, tmp_path, "positive", positive_time, "--mode", "positive",
                          "--checks", "positive_data_acceptance,not_a_server_error", "--phases", "coverage,fuzzing")
    finally:
        server.stop()


def test_api_matches_its_openapi_document(tmp_path: Path, db_url: str) -> None:
    """db_url: an empty, migrated SQLite database, and PostgreSQL schema when configured (conftest)."""
    _run(tmp_path, db_url, max_time=45, positive_time=30)


@pytest.mark.deep  # `make test-deep`: 300 s per database (0 failures in 6,235 cases on PostgreSQL once the throttle
# setting let the generated requests reach the handlers; the earlier 5xx and undocumented status did not come back)
def test_api_matches_its_openapi_document_deeper(tmp_path: Path, db_url: str) -> None:
    _run(tmp_path, db_url, max_time=300, positive_time=120)


def test_every_operation_documents_its_problem_responses(api: Api) -> None:
    """The fast half: the document lists the problem answers (schemathesis found 48 operations that did not)."""
    doc = api.client.get("/openapi.json").json()
    assert doc["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status", "detail", "instance"]
    operations = [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]
    assert len(operations) > 50
    for path, method, op in operations:
        for code in ("401", "403", "404", "422", "429"):
            content = op["responses"][code]["content"]
            assert list(content) == ["application/problem+json"], (method, path, code)
        if method in ("post", "put"):
            assert {"400", "409", "413", "415"} <= set(op["responses"]), (method, path)
    assert list(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
