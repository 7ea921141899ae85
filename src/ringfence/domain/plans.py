"""Plans as data: parse the YAML mapping a user writes into a :class:`Plan`, with errors naming the field.

The default plan (:func:`default_plan`) allows changes Monday–Thursday
09:00–16:00 in each host's own time zone, never on weekends or the public
holidays of the host's country and subdivision, and spreads a release through
four waves: canaries (1 %, every stratum covered), early (10 %), broad (50 %)
and everyone, each baking before the gate may promote it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import date, time, timedelta
from typing import Any

from ringfence.domain.channel import check_name
from ringfence.domain.gate import GateConfig, Signal
from ringfence.domain.rollout import Plan, WaveSpec
from ringfence.domain.selector import parse as parse_selector
from ringfence.domain.windows import DEFAULT_WINDOWS, END_OF_DAY, FreezeCalendar, parse_window
from ringfence.errors import FieldIssue, InputError, describe, shown

__all__ = ["default_plan", "plan_from_mapping", "plan_to_mapping"]

_PLAN_KEYS = {"name", "selector", "windows", "freeze", "disruption_budgets", "tier0_last", "auto_rollback",
              "silence_grace_minutes", "max_data_age_minutes", "min_per_stratum", "gate", "waves", "description", "notify"}
_WAVE_KEYS = {"name", "fraction", "count", "selector", "min_bake_minutes", "min_observed_hosts",
              "max_rate_per_minute", "needs_approval", "max_bake_minutes", "max_in_flight",
              "in_flight_slow_start"}


#: The default plan's limit on an inconclusive bake: past it the wave goes to HOLD and a person decides.
_MAX_BAKE = timedelta(hours=24)


def default_plan() -> Plan:
    """ringfence's default plan (also written out in examples/plans/default.yaml)."""
    return Plan(
        name="default",
        waves=(
            WaveSpec("canary", fraction=0.01, selector="label=canary", min_bake=timedelta(hours=1),
                     min_observed_hosts=10, max_rate_per_minute=5, max_in_flight=5, max_bake=_MAX_BAKE,
                     in_flight_slow_start=True),
            WaveSpec("early", fraction=0.10, min_bake=timedelta(hours=4), min_observed_hosts=50,
                     max_rate_per_minute=50, max_bake=_MAX_BAKE),
            WaveSpec("broad", fraction=0.50, min_bake=timedelta(hours=8), min_observed_hosts=200,
                     max_rate_per_minute=500, max_bake=_MAX_BAKE),
            WaveSpec("everyone", fraction=1.0, min_bake=timedelta(hours=1), min_observed_hosts=200,
                     max_bake=_MAX_BAKE),
        ),
        windows=DEFAULT_WINDOWS,
    )


class _Issues:
    def __init__(self) -> None:
        self.items: list[FieldIssue] = []

    def add(self, field: str, message: str, expected: str = "") -> None:
        self.items.append(FieldIssue(field=field, message=message, expected=expected, location="plan"))


def _num(raw: Mapping[str, Any], key: str, field: str, issues: _Issues, *, lo: float, hi: float | None = None,
         integer: bool = False) -> Any:
    value = raw.get(key)
    if value is None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and (not integer or isinstance(value, int))
    if not ok or value < lo or (hi is not None and value > hi):
        kind = "an integer" if integer else "a number"
        rng = f" between {lo} and {hi}" if hi is not None else f" ≥ {lo}"
        issues.add(field, f"is {shown(value)}", expected=kind + rng)
        return None
    return value


def _bool(raw: Mapping[str, Any], key: str, field: str, issues: _Issues, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        issues.add(field, f"is {shown(value)}", expected="true or false")
        return default
    return value


def _selector(value: Any, field: str, issues: _Issues) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        issues.add(field, f"is {shown(value)}", expected="a selector string such as label=canary")
        return ""
    try:
        parse_selector(value)
    except InputError as e:
        issue = e.issues[0]
        issues.add(field, issue.message, expected=issue.expected)
    return value


def _wave(raw: Any, i: int, issues: _Issues) -> WaveSpec | None:
    field = f"waves[{i}]"
    if not isinstance(raw, Mapping):
        issues.add(field, f"is {describe(raw)}", expected="a mapping with name and fraction, count or selector")
        return None
    for key in sorted(set(raw) - _WAVE_KEYS):
        issues.add(f"{field}.{key}", "is not a wave setting", expected="one of " + ", ".join(sorted(_WAVE_KEYS)))
    name = raw.get("name") or f"wave-{i}"
    fraction = _num(raw, "fraction", f"{field}.fraction", issues, lo=0.0, hi=1.0)
    count = _num(raw, "count", f"{field}.count", issues, lo=1, integer=True)
    selector = _selector(raw.get("selector"), f"{field}.selector", issues)
    if fraction is None and count is None and not selector and "fraction" not in raw and "count" not in raw:
        issues.add(field, "says nothing about which hosts it reaches", expected="fraction, count and/or selector")
    bake = _num(raw, "min_bake_minutes", f"{field}.min_bake_minutes", issues, lo=0)
    observed = _num(raw, "min_observed_hosts", f"{field}.min_observed_hosts", issues, lo=0, integer=True)
    rate = _num(raw, "max_rate_per_minute", f"{field}.max_rate_per_minute", issues, lo=0.001)
    max_bake = _num(raw, "max_bake_minutes", f"{field}.max_bake_minutes", issues, lo=1)
    if max_bake is not None and max_bake < (bake if bake is not None else 60):
        issues.add(f"{field}.max_bake_minutes", f"is {shown(max_bake)}, shorter than min_bake_minutes",
                   expected="at least min_bake_minutes (a wave must bake before it can be put on hold)")
    in_flight = _num(raw, "max_in_flight", f"{field}.max_in_flight", issues, lo=0, integer=True)
    return WaveSpec(name=str(name), fraction=float(fraction) if fraction is not None else None, count=count,
                    selector=selector, min_bake=timedelta(minutes=bake if bake is not None else 60),
                    min_observed_hosts=observed if observed is not None else 10,
                    max_rate_per_minute=float(rate) if rate is not None else None,
                    needs_approval=_bool(raw, "needs_approval", f"{field}.needs_approval", issues, False),
                    max_bake=timedelta(minutes=max_bake) if max_bake is not None else None,
                    max_in_flight=in_flight,
                    in_flight_slow_start=_bool(raw, "in_flight_slow_start", f"{field}.in_flight_slow_start", issues,
                                               False))


def plan_from_mapping(raw: Any) -> Plan:
    """Build a plan from a parsed YAML/JSON mapping; one InputError lists every problem."""
    issues = _Issues()
    if not isinstance(raw, Mapping):
        raise InputError("plan rejected", [FieldIssue("plan", f"is {describe(raw)}",
                                                      expected="a mapping with name and waves")])
    for key in sorted(set(raw) - _PLAN_KEYS):
        issues.add(key, "is not a plan setting", expected="one of " + ", ".join(sorted(_PLAN_KEYS)))
    if "notify" in raw and not isinstance(raw["notify"], Mapping):
        # Who hears about this plan's rollouts; the server validates the section in full when the plan is
        # applied (ringfence.adapters.notify.rules.plan_rules); the engine and the simulator ignore it.
        issues.add("notify", f"is {shown(raw['notify'])}", expected="a mapping with targets and rules (docs/notifications.md)")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        issues.add("name", "is missing", expected="a name such as default or content-fast")
        name = ""
    issues.items.extend(check_name("name", name, "plan") if name else [])
    raw_waves = raw.get("waves")
    waves: list[WaveSpec] = []
    if not isinstance(raw_waves, list) or not raw_waves:
        issues.add("waves", "is missing or empty", expected="a list of at least one wave")
    else:
        for i, w in enumerate(raw_waves):
            wave = _wave(w, i, issues)
            if wave is not None:
                waves.append(wave)
        fractions = [w.fraction for w in waves if w.fraction is not None]
        if fractions != sorted(fractions):
            issues.add("waves", "fractions decrease from one wave to the next",
                       expected="cumulative fractions that never decrease, e.g. 0.01, 0.1, 0.5, 1.0")
        if waves and waves[-1].fraction not in (None, 1.0):
            issues.add(f"waves[{len(waves) - 1}].fraction", f"is {waves[-1].fraction}",
                       expected="1.0 in the last wave, so the release reaches every targeted host")
    windows = DEFAULT_WINDOWS
    if "windows" in raw:
        raw_windows = raw["windows"]
        if not isinstance(raw_windows, list) or not raw_windows:
            issues.add("windows", f"is {describe(raw_windows)}", expected="a list of {days, start, end}")
        else:
            parsed = []
            for i, w in enumerate(raw_windows):
                try:
                    parsed.append(parse_window(w))
                except InputError as e:
                    for issue in e.issues:
                        issues.add(f"windows[{i}].{issue.field}", issue.message, issue.expected)
            windows = tuple(parsed)
    freeze = FreezeCalendar()
    if "freeze" in raw:
        raw_freeze = raw["freeze"]
        if not isinstance(raw_freeze, Mapping):
            issues.add("freeze", f"is {describe(raw_freeze)}", expected="a mapping with public_holidays and dates")
        else:
            dates: set[date] = set()
            raw_dates = raw_freeze.get("dates") or []
            if not isinstance(raw_dates, list):
                issues.add("freeze.dates", f"is {describe(raw_dates)}", expected="a list of dates such as 2026-12-24")
                raw_dates = []
            for i, d in enumerate(raw_dates):
                if isinstance(d, date):
                    dates.add(d)
                else:
                    try:
                        dates.add(date.fromisoformat(str(d)))
                    except ValueError:
                        issues.add(f"freeze.dates[{i}]", f"is {shown(d)}", expected="a date such as 2026-12-24")
            freeze = FreezeCalendar(public_holidays=_bool(raw_freeze, "public_holidays", "freeze.public_holidays",
                                                          issues, True), dates=frozenset(dates))
    gate = GateConfig()
    if "gate" in raw:
        raw_gate = raw["gate"]
        known = {f.name for f in dataclasses.fields(GateConfig)}
        if not isinstance(raw_gate, Mapping):
            issues.add("gate", f"is {describe(raw_gate)}", expected="a mapping of gate settings")
        else:
            bad = sorted(set(raw_gate) - known)
            for key in bad:
                issues.add(f"gate.{key}", "is not a gate setting", expected="one of " + ", ".join(sorted(known)))
            if not bad:
                try:
                    gate = GateConfig(**_gate_kwargs(raw_gate))
                except InputError as e:  # GateConfig names the setting and what it expects
                    for issue in e.issues:
                        issues.add(issue.field, issue.message, issue.expected)
                except (TypeError, ValueError):  # _gate_kwargs could not read the signals or the alternatives
                    issues.add(*_gate_shape_issue(raw_gate))
    grace = _num(raw, "silence_grace_minutes", "silence_grace_minutes", issues, lo=1)
    age = _num(raw, "max_data_age_minutes", "max_data_age_minutes", issues, lo=1)
    per_stratum = _num(raw, "min_per_stratum", "min_per_stratum", issues, lo=0, integer=True)
    plan = Plan(
        name=str(name), waves=tuple(waves), windows=windows, freeze=freeze,
        selector=_selector(raw.get("selector"), "selector", issues),
        disruption_budgets=_bool(raw, "disruption_budgets", "disruption_budgets", issues, True),
        tier0_last=_bool(raw, "tier0_last", "tier0_last", issues, True),
        auto_rollback=_bool(raw, "auto_rollback", "auto_rollback", issues, True),
        gate=gate,
        silence_grace=timedelta(minutes=grace if grace is not None else 15),
        max_data_age=timedelta(minutes=age if age is not None else 10),
        min_per_stratum=per_stratum if per_stratum is not None else 1,
    )
    if issues.items:
        raise InputError("plan rejected", issues.items)
    return plan


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _hhmm(t: time) -> str:
    return "24:00" if t == END_OF_DAY else t.strftime("%H:%M")


def _gate_to_mapping(gate: GateConfig) -> dict[str, Any]:
    out: dict[str, Any] = {f.name: getattr(gate, f.name) for f in dataclasses.fields(GateConfig)
                           if f.name not in ("required_signals", "alternatives")}
    out["required_signals"] = sorted(s.value for s in gate.required_signals)
    if gate.alternatives != GateConfig().alternatives:
        out["alternatives"] = [["inf" if math.isinf(r) else r, w] for r, w in gate.alternatives]
    return out


def _gate_shape_issue(raw: Mapping[str, Any]) -> tuple[str, str, str]:
    """Which of the gate's list settings a plan wrote in a shape :func:`_gate_kwargs` cannot read, in words."""
    signals = raw.get("required_signals")
    known = {s.value for s in Signal}
    if "required_signals" in raw and not (isinstance(signals, list) and all(isinstance(s, str) and s in known for s in signals)):
        return ("gate.required_signals", f"is {shown(signals)}", "a list of: " + ", ".join(sorted(known)))
    return ("gate.alternatives", f"is {shown(raw.get('alternatives'))}",
            "a list of [rate ratio, weight] pairs such as [[2.0, 0.5], [4.0, 0.5]]")


def _gate_kwargs(raw: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = dict(raw)
    if "required_signals" in kwargs:
        kwargs["required_signals"] = frozenset(Signal(s) for s in kwargs["required_signals"])
    if "alternatives" in kwargs:
        kwargs["alternatives"] = tuple((float(r), float(w)) for r, w in kwargs["alternatives"])
    return kwargs


def plan_to_mapping(plan: Plan) -> dict[str, Any]:
    """The YAML/JSON form of a plan (what :func:`plan_from_mapping` reads back)."""
    return {
        "name": plan.name,
        "selector": plan.selector,
        "windows": [{"days": [_DAYS[d] for d in sorted(w.days)], "start": _hhmm(w.start), "end": _hhmm(w.end)}
                    for w in plan.windows],
        "freeze": {"public_holidays": plan.freeze.public_holidays,
                   "dates": [d.isoformat() for d in sorted(plan.freeze.dates)]},
        "disruption_budgets": plan.disruption_budgets,
        "tier0_last": plan.tier0_last,
        "auto_rollback": plan.auto_rollback,
        "silence_grace_minutes": plan.silence_grace.total_seconds() / 60,
        "max_data_age_minutes": plan.max_data_age.total_seconds() / 60,
        "min_per_stratum": plan.min_per_stratum,
        "gate": _gate_to_mapping(plan.gate),
        "waves": [
            {k: v for k, v in {
                "name": w.name, "fraction": w.fraction, "count": w.count, "selector": w.selector or None,
                "min_bake_minutes": w.min_bake.total_seconds() / 60, "min_observed_hosts": w.min_observed_hosts,
                "max_rate_per_minute": w.max_rate_per_minute, "needs_approval": w.needs_approval,
                "max_bake_minutes": w.max_bake.total_seconds() / 60 if w.max_bake is not None else None,
                "max_in_flight": w.max_in_flight, "in_flight_slow_start": w.in_flight_slow_start or None,
            }.items() if v is not None}
            for w in plan.waves
        ],
    }
