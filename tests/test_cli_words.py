"""One word per idea (docs/glossary.md): the CLI shows the chosen spelling and still runs the retired one."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from ringfence.cli.main import app


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return re.sub(r"\x1b\[[0-9;]*m", "", result.output)


def test_rollout_gate_override_mirrors_the_api_and_the_old_spelling_is_hidden() -> None:
    shown = _help("rollout")
    assert "gate-override" in shown and "override-gates" not in shown
    assert "--reason" in _help("rollout", "override-gates")  # the hidden alias still runs


def test_simulate_takes_plans_and_hides_the_old_policy_option() -> None:
    shown = _help("simulate")
    assert "--plan" in shown and "--policy" not in shown


def test_assess_takes_what_ifs_and_hides_the_old_scenario_option() -> None:
    shown = _help("assess")
    assert "--what-if" in shown and "--scenario" not in shown
