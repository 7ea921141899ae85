"""What the CLI prints, read as a person reads it (issue 16): states in words with their real reason, a
`rollout list` whose long decisions fold inside their own column, no blank lines from `vulns import`, advisory
release gates that say they block nothing, and the engine's bracketed words kept as text.

The real CLI verbs run in-process (Typer's runner) against the real app over its ASGI transport, on the test
database (SQLite, and PostgreSQL when configured), so no server process is started.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.cli import rollout_cli, supply_cli
from ringfence.cli.client import ApiClient
from ringfence.cli.main import app
from ringfence.domain.words import STATE_WORDS
from ringfence.services import rollouts
from tests.api_support import Api
from tests.conftest import SHARED_DATA, FakeClock
from tests.rollout_harness import OPERATOR, Fleet, make_hosts, start

WIDTH = 100
SNAKE = re.compile(r"\b(?:" + "|".join(s for s in STATE_WORDS if "_" in s) + r")\b")


@pytest.fixture
def cli(api: Api, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The CLI's verbs talk to the test app (as its admin); output is WIDTH columns wide, as on a terminal."""
    transport = api.client._transport  # the TestClient's ASGI transport: real routes, roles and audit

    def client(*_args: object) -> ApiClient:
        return ApiClient("http://testserver", api.tokens["admin"], transport=transport)

    monkeypatch.setattr(rollout_cli, "_client", client)
    monkeypatch.setattr(supply_cli, "_client", client)
    wide = Console(width=WIDTH)  # writes to whatever sys.stdout is at the time: the runner's capture
    monkeypatch.setattr(rollout_cli, "out", wide)
    monkeypatch.setattr(supply_cli, "out", wide)
    return CliRunner()


def _run(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args), env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def _fleet(db: Database, clock: FakeClock, tmp_path: Path, n: int = 40) -> Fleet:
    return Fleet(db=db, clock=clock, hosts=make_hosts(n), artifacts=ArtifactStore(tmp_path / "artifacts"))


def test_states_are_words_with_their_real_reason_and_long_decisions_fold_in_their_column(
        cli: CliRunner, api: Api, db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """A closed window is named as a change window; a rolled-back rollout says so in words; every line of
    `rollout list` is a row's first line (its id first) or a continuation inside the decision column."""
    fleet = _fleet(db, clock, tmp_path)
    fleet.release("290")
    bad = start(fleet, fleet.release("291"))
    fleet.run(bad, minutes=4)
    rollouts.operate(db, bad, "rollback", actor=OPERATOR, clock=clock, reason="boot loops on every canary host")
    clock.advance(days=4)  # Saturday: the default plan's windows (Monday to Thursday) are closed
    waiting = rollouts.create_rollout(db, release_id=fleet.release("292"), plan_name="default", actor=OPERATOR,
                                      clock=clock, start=True).spec.id
    fleet.run(waiting, minutes=10, step=5)
    status = rollouts.get_rollout(db, waiting).status
    assert status.state.value == "waiting_window" and ": closed:" in status.message, status.message

    listed = _run(cli, "rollout", "list")
    assert not SNAKE.search(listed), listed  # no waiting_window, rolling_back, rolled_back …
    assert "waiting for a change window" in listed and "waiting for a window" not in listed
    assert re.search(r"ROLLING BACK|rolled back", listed), listed
    lines = [ln for ln in listed.splitlines() if ln.strip()]
    header = lines[0]
    column = header.index("latest decision")
    ids = {bad, waiting}
    for line in lines[1:]:
        assert len(line) <= WIDTH, line
        first = line.split(maxsplit=1)[0]
        assert first in ids or line[:column].strip() == "", f"wrapped outside its column: {line!r}\n{listed}"
    assert sum(line.split(maxsplit=1)[0] in ids for line in lines[1:]) == 2

    shown = _run(cli, "rollout", "status", waiting)
    assert "waiting for a change window" in shown and not SNAKE.search(shown.splitlines()[0]), shown
    explained = _run(cli, "rollout", "explain", bad)
    assert f"[{OPERATOR.name}]" in explained and "[ringfence-engine]" in explained, explained  # who decided, kept
    assert not SNAKE.search("\n".join(ln[:40] for ln in explained.splitlines())), explained


def test_vulns_import_prints_no_blank_lines_and_advisory_gates_say_they_block_nothing(
        cli: CliRunner, api: Api, db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """`vulns import` of a directory prints its one summary line and nothing blank; an unsigned release under the
    default gate policy (only the content contract enforced) starts, and its failed signature gate reads
    "failed (advisory, not blocking)" in the CLI, the rollout page and the releases page, never a bare FAILED."""
    imported = _run(cli, "vulns", "import", str(SHARED_DATA / "osv" / "ghsa-conversion"), "--reason", "feed")
    assert imported.startswith("imported ") and "" not in imported.rstrip("\n").split("\n"), repr(imported)

    fleet = _fleet(db, clock, tmp_path, n=10)
    fleet.release("290")
    rid = start(fleet, fleet.release("291"))
    shown = _run(cli, "rollout", "status", rid)
    gate_lines = [ln for ln in shown.splitlines() if ln.strip().startswith("gate signature")]
    assert gate_lines and "failed (advisory, not blocking)" in gate_lines[0], shown

    api.client.cookies.clear()
    page_login = api.client.get("/login").text
    nonce = re.search(r'name="csrf" value="([^"]+)"', page_login)
    assert nonce
    api.client.post("/login", data={"csrf": nonce.group(1), "token": api.tokens["viewer"], "next": "/"})
    for path in (f"/rollouts/{rid}", "/releases"):
        page = api.client.get(path).text
        gates = page[page.index("Release gates"):]
        signature = re.search(r"<li>signature (.*?)</li>", gates, re.S)
        assert signature, (path, gates[:2000])
        assert "failed (advisory, not blocking)" in signature.group(1) and 'class="badge bad"' not in signature.group(1)
        assert "advisory gates are shown only" in gates, path


def test_a_bracketed_actor_or_override_is_printed_not_swallowed() -> None:
    """Rich reads "[olga]" as a style tag and drops it; the CLI prints the engine's and people's words as text."""
    from io import StringIO

    buf = StringIO()
    saved = supply_cli.out
    supply_cli.out = Console(file=buf, width=WIDTH, color_system=None)
    try:
        supply_cli.print_gates([{"gate": "vulnerabilities", "verdict": "failed", "enforced": True,
                                 "overridden_by": "ciso", "message": "log4j [CVE-2021-44228] in shop"}])
    finally:
        supply_cli.out = saved
    text = buf.getvalue()
    assert "[overridden by ciso]" in text and "log4j [CVE-2021-44228] in shop" in text, text
