"""The simulator drives the real engine: the CrowdStrike replay in CI size, gate settings matter, bad input, reports."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ringfence.cli.main import app
from ringfence.domain.gate import Signal
from ringfence.errors import InputError
from ringfence.services.fleet_port import count_streams, silent_now
from ringfence.sim.runner import RESULT_KEYS, simulate
from ringfence.sim.scenario import load_plan, load_scenario, plan_names, scenario_names
from ringfence.sim.service import run_simulations
from tests.api_support import Api, _problem


def test_crowdstrike_replay_cli_200k(tmp_path: Path) -> None:
    """The issue's done-when: big-bang crashes most online Windows hosts, default halts and crashes far fewer."""
    out = tmp_path / "out.json"
    report = tmp_path / "out.html"
    result = CliRunner().invoke(app, ["simulate", "--scenario", "crowdstrike-2024", "--plan", "big-bang",
                                      "--policy", "default", "--hosts", "200000", "--json", str(out),
                                      "--report", str(report)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [r["plan"] for r in rows] == ["big-bang", "default"]  # --policy: the hidden old name still works
    assert all(tuple(r) == RESULT_KEYS for r in rows)
    big, default = rows
    assert big["hosts"] == default["hosts"] == 200_000
    # ~87 % of the fleet is online at 04:09 UTC on a Friday; nearly all of them crash under big-bang.
    assert big["crashed_hosts"] > 0.75 * big["hosts"]
    assert big["manual_recovery_hosts"] > 0.7 * big["hosts"] and big["recovery_hours"] > 5
    assert default["halted"] and not default["false_halt"]
    assert default["crashed_hosts"] * 100 < big["crashed_hosts"]
    assert default["exposed_hosts"] < 1_000 and default["time_to_full_s"] is None
    html = report.read_text()
    assert "<svg" in html and "evidence at the halt" in html and "e-value" in html
    assert not re.search(r"(src|href)=\"https?:", html)  # self-contained: no CDN


def test_a_gate_setting_changes_the_result() -> None:
    """The simulator runs the engine's gate: a stricter alpha halts later and exposes more hosts."""
    scenario = load_scenario("crowdstrike-2024")
    plan = load_plan("default")
    strict = replace(plan, gate=replace(plan.gate, alpha=1e-9))
    loose = simulate(scenario, "default", plan, hosts=20_000, seed=3).figures
    tight = simulate(scenario, "strict", strict, hosts=20_000, seed=3).figures
    assert loose["halted"] and tight["halted"]
    assert tight["time_to_halt_s"] > loose["time_to_halt_s"]
    assert tight["exposed_hosts"] > loose["exposed_hosts"]


def test_examples_are_listed_and_load() -> None:
    """Every scenario and plan in examples/ parses; "default" is the default plan file."""
    assert {"crowdstrike-2024"} <= set(scenario_names())
    assert {"big-bang", "linear-appconfig", "default", "content-fast"} <= set(plan_names())
    for name in scenario_names():
        assert load_scenario(name).name == name
    for name in plan_names():
        assert load_plan(name).name == name


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"scenario": "no-such-scenario", "plans": ["default"]}, "scenario"),
    ({"scenario": "crowdstrike-2024", "plans": ["no-such-plan"]}, "plan"),
    ({"scenario": "crowdstrike-2024", "plans": []}, "plan"),
    ({"scenario": "crowdstrike-2024", "plans": ["default"], "hosts": 5}, "hosts"),
    ({"scenario": "crowdstrike-2024", "plans": ["default"], "replications": 0}, "replications"),
    ({"scenario": "crowdstrike-2024", "plans": ["default", "default"]}, "plan"),
    ({"scenario": {"name": "x", "failures": [{"p_crash": 2}]}, "plans": ["default"]}, "failures[0].p_crash"),
    ({"scenario": {"name": "x", "bogus": 1}, "plans": ["default"]}, "bogus"),
])
def test_bad_input_names_the_field(kwargs: dict[str, object], field: str) -> None:
    """Bad input is an InputError naming the field, before any simulation runs."""
    scenario = kwargs.pop("scenario")
    plans = kwargs.pop("plans")
    with pytest.raises(InputError) as info:
        run_simulations(scenario, plans, **kwargs)  # type: ignore[arg-type]
    assert field in {i.field for i in info.value.issues}


def test_shared_counting_rules_by_hand() -> None:
    """Silence and stream counts as docs/gate.md says, on a four-host fleet counted by hand."""
    exposed = np.array([0.0, 0.0, np.nan, np.nan])  # hosts 0, 1 exposed at t=0
    beat = np.array([100.0, 3000.0, 3000.0, 50.0])
    control = np.array([False, False, True, True])
    rolled_back = np.zeros(4, dtype=bool)
    treated_silent, control_silent = silent_now(exposed_s=exposed, rolled_back=rolled_back, control=control,
                                                beat_s=beat, now_s=3600.0, grace_s=900.0)
    assert treated_silent.tolist() == [True, False, False, False]
    assert control_silent.tolist() == [False, False, False, True]
    silent_t = np.where(treated_silent, 3600.0, np.nan)
    silent_c = np.where(control_silent, 1800.0, np.nan)
    streams = count_streams(strata=["a"], stratum=np.zeros(4, dtype=np.int64), treated=~control, control=control,
                            exposed_s=exposed, treated_first_s={Signal.SILENT: silent_t},
                            control_first_s={Signal.SILENT: silent_c}, started_s=0.0, now_s=3600.0, min_treated=1)
    silent = next(s for s in streams if s.signal is Signal.SILENT)
    assert (silent.treated_hosts, silent.treated_failed, silent.control_hosts, silent.control_failed) == (2, 1, 2, 1)
    assert silent.treated_host_hours == pytest.approx(2.0)
    assert silent.control_host_hours == pytest.approx(1.5)  # one host at risk all hour, one until 00:30
    installs = next(s for s in streams if s.signal is Signal.INSTALL_FAILED)
    assert installs.control_hosts == 0 and installs.treated_failed == 0


def test_api_simulations(api: Api) -> None:
    """POST /v1/simulations: operator role, bounded, names or inline mappings only, problems name the field."""
    body = {"scenario": "crowdstrike-2024", "plans": ["big-bang", "default"], "hosts": 5_000, "seed": 2,
            "html": True}
    assert api.call("POST", "/v1/simulations", role="viewer", json=body).status_code == 403
    answer = api.call("POST", "/v1/simulations", role="operator", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert [tuple(r) for r in data["results"]] == [RESULT_KEYS, RESULT_KEYS]
    assert [r["plan"] for r in data["results"]] == ["big-bang", "default"]
    big, default = data["results"]
    assert big["crashed_hosts"] > 10 * max(1, default["crashed_hosts"])
    assert "<svg" in data["html"]
    too_big = _problem(api.call("POST", "/v1/simulations", role="operator", json={**body, "hosts": 10_000_000}), 422)
    assert "hosts" in json.dumps(too_big)
    path = _problem(api.call("POST", "/v1/simulations", role="operator",
                             json={**body, "scenario": "/etc/passwd"}), 422)
    assert "scenario" in json.dumps(path)
    inline = api.call("POST", "/v1/simulations", role="operator", json={
        "scenario": {"name": "tiny", "hosts": 500, "horizon_hours": 2, "release": {"platforms": ["windows"]},
                     "fleet": {"template_hosts": 500, "os_families": ["windows"]}},
        "plans": [{"name": "all-now", "windows": [{"days": "mon-sun", "start": "00:00", "end": "24:00"}],
                      "waves": [{"name": "all", "fraction": 1.0, "min_bake_minutes": 0, "min_observed_hosts": 0}]}],
        "hosts": 500})
    assert inline.status_code == 200, inline.text
    assert inline.json()["results"][0]["false_halt"] is False
    # The body field's former name is still accepted (docs/api.md); both at once, or neither, is bad input.
    small = {"scenario": "crowdstrike-2024", "hosts": 500}
    old = api.call("POST", "/v1/simulations", role="operator", json={**small, "policies": ["big-bang"]})
    assert old.status_code == 200 and old.json()["results"][0]["plan"] == "big-bang", old.text
    bad = _problem(api.call("POST", "/v1/simulations", role="operator", json={**small, "policies": ["no-such"]}), 422)
    assert "policies[0]" in json.dumps(bad)
    for wrong in ({**small, "plans": ["default"], "policies": ["default"]}, small):
        assert "plans" in json.dumps(_problem(api.call("POST", "/v1/simulations", role="operator", json=wrong), 422))


def test_tenant_policies_hold_and_delay_simulated_hosts() -> None:
    """The simulator applies tenant policies through the shared rules: a paused tenant gets nothing, a delay waits."""
    scenario = replace(load_scenario("crowdstrike-2024"), horizon=timedelta(hours=4))
    plan = load_plan("big-bang")
    paused = simulate(replace(scenario, tenant_policies=({"tenant": "sim", "ring": "pause"},)), "big-bang", plan,
                      hosts=2_000, seed=1)
    assert paused.figures["exposed_hosts"] == 0 and paused.figures["crashed_hosts"] == 0
    assert paused.log[-1]["message"].endswith("passed (it has no hosts in reach)")  # every host held back
    delayed = simulate(replace(scenario, tenant_policies=({"tenant": "sim", "delay_hours": 2.0},)), "big-bang", plan,
                       hosts=2_000, seed=1)
    first = next(h for h, exposed, _ in delayed.series if exposed > 0)
    assert first >= 2.0 and delayed.figures["exposed_hosts"] > 1_000
