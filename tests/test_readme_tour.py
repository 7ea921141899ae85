"""The README's CLI tour, run verbatim against a live server, so the README cannot drift from the product.

Every ```sh block between the heading "## A short tour of the CLI" and the next "## " heading runs, line by
line, in one bash session (so ``R=$(…)`` and ``export`` carry over), in a scratch copy of the repository
root: ``examples/`` copied, ``tests/`` and ``.venv`` linked.  The server is a real ``ringfence serve``
subprocess on 127.0.0.1 with a fresh database (SQLite, and PostgreSQL when RINGFENCE_TEST_DATABASE_URL is
set), and the CLI gets its admin token the way the README says (``RINGFENCE_TOKEN``).

A line must exit 0, unless its comment starts with ``# exit N``: then it must exit exactly N.  The only
change made to what the README runs: the copy of ``examples/agent.toml`` names the test server's port instead
of 8400, as the README tells a reader on another address to do.  Blocks added to the tour later run too.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ringfence.adapters.db.engine import Database
from tests.conftest import PG_ENV, _reset_pg
from tests.servers import Server

REPO = Path(__file__).resolve().parents[1]
TOUR_HEADING = "## A short tour of the CLI"
_EXIT = re.compile(r"(?:^|\s)#\s*exit (\d+)\b")


@dataclass(frozen=True, slots=True)
class TourLine:
    """One command of the tour, where it is in the README and the exit code it promises."""

    number: int      # line number in README.md
    command: str
    exit_code: int


def tour_lines(readme: str) -> list[TourLine]:
    """Every command line of every ```sh block in the tour section, in order."""
    lines = readme.splitlines()
    try:
        start = lines.index(TOUR_HEADING)
    except ValueError:
        pytest.fail(f"README.md has no {TOUR_HEADING!r} section")
    found: list[TourLine] = []
    in_block = False
    for number, line in enumerate(lines[start + 1:], start=start + 2):
        if not in_block and line.startswith("## "):
            break
        if line.strip().startswith("```"):
            in_block = not in_block and line.strip() == "```sh"
            continue
        if in_block and line.strip() and not line.lstrip().startswith("#"):
            match = _EXIT.search(line)
            found.append(TourLine(number, line, int(match.group(1)) if match else 0))
    return found


def tour_script(lines: list[TourLine]) -> str:
    """A bash script that runs each line as written and stops at the first one with another exit code."""
    parts = ["set -u"]
    for t in lines:
        parts.append(f"printf '%s\\n' {shlex.quote(f'$ {t.command}')}")
        parts.append(t.command)
        where, expected = shlex.quote(f"README.md line {t.number} exited "), shlex.quote(f", expected {t.exit_code}: {t.command}")
        parts.append(f"rc=$?; if [ $rc -ne {t.exit_code} ]; then printf '%s\\n' {where}\"$rc\"{expected} >&2; exit 99; fi")
    return "\n".join(parts) + "\n"


def test_the_tour_is_found_and_promises_its_failures() -> None:
    """The extractor finds the tour's blocks and reads the '# exit N' promises (a broken extractor tests nothing)."""
    lines = tour_lines((REPO / "README.md").read_text(encoding="utf-8"))
    commands = [t.command for t in lines]
    assert len(lines) >= 30
    assert any(c.startswith("ringfence whoami") for c in commands)
    assert any(c.startswith("ringfence-agent run") for c in commands)
    refused = [t for t in lines if "bad_hosts.csv" in t.command]
    assert refused and refused[0].exit_code == 2
    assert all(t.exit_code == 0 for t in lines if t.command.startswith("ringfence whoami"))
    sample = tour_lines(f"{TOUR_HEADING}\n\n```sh\nfalse   # exit 1: fails\n# a comment\n```\n```\nnot sh\n```\n"
                        "## Next\n```sh\nnot the tour\n```\n")
    assert [(t.command, t.exit_code) for t in sample] == [("false   # exit 1: fails", 1)]
    run = subprocess.run(["bash", "-c", tour_script([TourLine(7, "X=$(echo hi)", 0), TourLine(8, "test $X = hi", 0),
                                                     TourLine(9, "false", 0), TourLine(10, "echo never", 0)])],
                         capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == 99 and "README.md line 9 exited 1, expected 0: false" in run.stderr
    assert "never" not in run.stdout.replace("$ echo never", "")


@pytest.fixture
def tour_dir(tmp_path: Path) -> Path:
    """A scratch repository root: examples copied (agent.toml writes beside it), tests and .venv linked."""
    work = tmp_path / "ringfence"
    work.mkdir()
    shutil.copytree(REPO / "examples", work / "examples")
    (work / "tests").symlink_to(REPO / "tests", target_is_directory=True)
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    return work


#: SQLite in ``make test``; PostgreSQL (when configured) in ``make test-slow``: the tour is ~45 CLI processes,
#: about a minute per database on an idle 2-core machine, and the PostgreSQL run adds no coverage of the README.
_TOUR_DATABASES = ["sqlite"] + ([pytest.param("postgresql", marks=pytest.mark.extended)] if os.environ.get(PG_ENV) else [])


@pytest.fixture(params=_TOUR_DATABASES)
def tour_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database for the server: a new SQLite file, or the session's PostgreSQL schema emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tour.db'}"
    url: str = request.getfixturevalue("pg_url")
    db = Database(url)
    _reset_pg(db)
    db.dispose()
    return url


@pytest.fixture
def server(tour_dir: Path, tour_db_url: str) -> Iterator[Server]:
    srv = Server(tour_dir, tour_db_url)
    agent_toml = tour_dir / "examples" / "agent.toml"
    agent_toml.write_text(agent_toml.read_text().replace("http://127.0.0.1:8400", srv.url))
    yield srv
    srv.stop()


def test_readme_tour_runs_as_written(server: Server, tour_dir: Path) -> None:
    """Every tour command, verbatim, against a live server on a fresh database: each exits as the README says."""
    lines = tour_lines((REPO / "README.md").read_text(encoding="utf-8"))
    env = {**server.env, "PATH": f"{Path(sys.executable).parent}:{server.env.get('PATH', '')}", "COLUMNS": "120"}
    result = subprocess.run(["bash", "-c", tour_script(lines)], cwd=tour_dir, env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{result.stderr[-4000:]}\n--- stdout ---\n{result.stdout[-6000:]}"
    out = result.stdout
    # What the comments promise, checked once where a silent regression would still exit 0.
    assert "admin (admin)" in out
    assert "man1-web-001" in out                                   # hosts show by hostname
    assert "audit log intact" in out
    assert "GHSA-jfh8-c2jp-5v3q aka CVE-2021-44228: log4j-core 2.14.1" in out
    assert "overridden by alice" in out
    assert (tour_dir / "var" / "agent-1" / "credential").exists()  # the agent enrolled with the tour's token
