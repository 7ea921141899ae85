"""The API against its own OpenAPI document: schemathesis over /openapi.json on a live server (issue 14, defect 10).

A real `ringfence serve` on 127.0.0.1 (SQLite, and PostgreSQL when RINGFENCE_TEST_DATABASE_URL is set)
with channel keys made, so every operation can succeed; schemathesis (the CLI, from the package index)
generates requests from the document and fails on any 5xx, any status code or content type the
document does not list, and any response body that does not match its schema.

Schema-valid requests must also be accepted (positive data acceptance); tests/schemathesis.toml names the
operations that take a file or an expression whose content a JSON Schema cannot describe, where a 422 is
the right answer.

``make test`` runs a bounded, deterministic pass: every operation, its coverage cases (boundary and
wrong-type values of each parameter, enumerated rather than drawn) and five fuzzed examples each, drawn
derandomized from a fixed seed with no example database, so the same code sends the same ~2,500 requests
on every run (about 40 s per database on 2 cores); the test fails unless every selected operation was
tested.  ``make test-deep`` (marked ``deep``) fuzzes at random for 300 s + 120 s per database; what it
finds becomes a regression test here or in the suite (tests/test_concurrent_writes.py is one).
One worker, a per-request timeout.  One operation is left out of the generated requests:
``POST /v1/tokens/{token_id}/revoke`` would revoke the very token the run authenticates with (after which
every operation answers 401); its bounds are tested in tests/test_input_limits.py.
"""

from __future__ import annotations

import os
import re
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
#: The bounded run's fixed inputs: the same requests on every run of the same code.
SEED = "14"
EXAMPLES = "5"


def _schemathesis() -> str:
    found = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    if not Path(found).exists():
        pytest.fail("schemathesis is not installed: `make install` (it is a dev dependency)")
    return found


def _schemathesis_run(server: Server, tmp_path: Path, name: str, timeout: int, *args: str) -> str:
    """Run schemathesis against ``server``; fail on any failure or error; return its output."""
    token = server.env["RINGFENCE_TOKEN"]
    result = subprocess.run(
        [_schemathesis(), "--config-file", str(CONFIG), "run", f"{server.url}/openapi.json", *args,
         "--workers", "1", "--request-timeout", "20",
         "--exclude-path", "/v1/tokens/{token_id}/revoke",
         "--header", f"Authorization: Bearer {token}", "--no-color"],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"})
    output = result.stdout + result.stderr
    (tmp_path / f"schemathesis-{name}.out").write_text(output)  # the whole run, to read after
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    assert " 0 failures" in summary or "failures" not in summary.split("SUMMARY")[-1], summary
    return output


def _server(tmp_path: Path, db_url: str) -> Server:
    (tmp_path / "var").mkdir()
    init_keys(tmp_path / "var", root_keys=1, root_threshold=1, bins=4, clock=system_clock)
    # schemathesis sends requests without or with broken credentials on purpose (401s): the server's own
    # throttle settings let those reach the handlers instead of turning the run into a wall of 429s
    return Server(tmp_path, db_url, RINGFENCE_AUTH_FAILURES_PER_MINUTE_PER_SOURCE="1000000",
                  RINGFENCE_AUTH_FAILURES_PER_MINUTE_PER_CREDENTIAL="1000000")


def test_api_matches_its_openapi_document(tmp_path: Path, db_url: str) -> None:
    """Every operation, bounded and deterministic: coverage cases plus five derandomized examples from a fixed seed.

    db_url: an empty, migrated SQLite database, and PostgreSQL when configured (conftest).  One run checks all:
    no 5xx, only documented status codes and content types, bodies that match their schemas, and
    schema-valid requests accepted (positive data acceptance applies to the positive cases of the run).
    """
    server = _server(tmp_path, db_url)
    try:
        output = _schemathesis_run(
            server, tmp_path, "bounded", 600, "--checks", f"{CHECKS},positive_data_acceptance",
            "--phases", "examples,coverage,fuzzing", "--max-examples", EXAMPLES, "--seed", SEED,
            "--generation-deterministic")  # derandomized, and no example database
    finally:
        server.stop()
    selected = re.search(r"Selected: (\d+)/\d+", output)
    tested = re.search(r"Tested: (\d+)", output)
    cases = re.search(r"(\d+) generated, (\d+) passed", output)
    assert selected and tested and cases, output[-3000:]
    assert int(selected.group(1)) > 50 and tested.group(1) == selected.group(1), output[-3000:]  # every operation
    assert cases.group(1) == cases.group(2) and int(cases.group(1)) > 1000, output[-3000:]


@pytest.mark.deep  # `make test-deep`: random fuzzing, 300 s + 120 s per database. Session 6: 0 failures in
# 11,486 cases on SQLite and 9,299 on PostgreSQL, and none in 11,600 more with 4 workers. The 5xx seen once
# did not come back; one race that gives a 500 on PostgreSQL (two gate-policy PUTs at once) was found by
# reading the code and is covered by tests/test_concurrent_writes.py
def test_api_matches_its_openapi_document_deeper(tmp_path: Path, db_url: str) -> None:
    server = _server(tmp_path, db_url)
    try:
        _schemathesis_run(server, tmp_path, "all", 420, "--checks", CHECKS, "--max-time", "300",
                          "--phases", "examples,coverage,fuzzing")
        # positive data only: every request the document allows must be accepted (tests/schemathesis.toml
        # lists the operations whose file content no JSON Schema can describe)
        _schemathesis_run(server, tmp_path, "positive", 240, "--mode", "positive", "--max-time", "120",
                          "--checks", "positive_data_acceptance,not_a_server_error", "--phases", "coverage,fuzzing")
    finally:
        server.stop()


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
