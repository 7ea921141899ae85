"""Every example plan parses, and examples/plans/default.yaml is exactly the built-in default plan."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ringfence.domain.plans import default_plan, plan_from_mapping

PLANS = sorted((Path(__file__).parent.parent / "examples" / "plans").glob("*.yaml"))


@pytest.mark.parametrize("path", PLANS, ids=[p.name for p in PLANS])
def test_example_plan_parses(path: Path) -> None:
    """Each example is a valid plan whose last wave reaches everyone."""
    plan = plan_from_mapping(yaml.safe_load(path.read_text()))
    assert plan.name == path.stem
    assert plan.waves[-1].fraction == 1.0


def test_default_yaml_is_the_builtin_default() -> None:
    """The documented default and the code's default cannot drift apart."""
    parsed = plan_from_mapping(yaml.safe_load((PLANS[0].parent / "default.yaml").read_text()))
    assert parsed == default_plan()
