"""Messages about bad input say what was expected, never a Python type name (issue 14, defect 7).

Every value of a valid plan, gate policy, OSV record and VEX document (CycloneDX and OpenVEX) is replaced,
one at a time, by each kind of wrong value a YAML or JSON file can hold (empty, a list, a mapping, text, a
number, true); the parser must either accept the document or raise :class:`InputError`, and no message,
field or expectation it gives may read like Python ("is NoneType", "is dict", "'str' object ...").
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ringfence.adapters.notify.rules import parse_rules
from ringfence.adapters.vuln.osv import parse_record
from ringfence.adapters.vuln.vex import parse_vex
from ringfence.domain.plans import plan_from_mapping
from ringfence.domain.recovery import model_from_mapping, runbooks_from_mapping
from ringfence.domain.windows import parse_window
from ringfence.errors import InputError, describe, shown
from ringfence.services.release_gates import parse_gate_policy

ROOT = Path(__file__).resolve().parents[1]
PYTHON_WORDS = re.compile(r"NoneType|\bdict\b|\bstr\b|\bint\b|\bfloat\b|\bbool\b|\btuple\b|\blist object|"
                          r"object has no attribute|not subscriptable|not iterable|Traceback")
#: Python's spelling of values a file wrote as null, true, false or a JSON list/mapping: every parser quotes values
#: as the file does (``ringfence.errors.shown``).
PYTHON_LITERALS = re.compile(r"\bNone\b|\bTrue\b|\bFalse\b|\{'|\['|, '")
WRONG: list[Any] = [None, [], ["x"], {}, {"k": "v"}, "", "banana", 0, -1, 2.5, True]

OSV = {"schema_version": "1.6.0", "id": "GHSA-aaaa-bbbb-cccc", "modified": "2024-01-02T00:00:00Z",
       "published": "2024-01-01T00:00:00Z", "aliases": ["CVE-2024-0001"], "summary": "s", "details": "d",
       "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
       "affected": [{"package": {"ecosystem": "PyPI", "name": "demo", "purl": "pkg:pypi/demo"},
                     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2"}]}],
                     "versions": ["1.0"], "database_specific": {"severity": "HIGH"}}]}
CDX_VEX = {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "vulnerabilities": [
    {"id": "CVE-2021-44228", "analysis": {"state": "not_affected", "justification": "code_not_reachable"},
     "affects": [{"ref": "svc@1"}]}]}
OPENVEX = {"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/1", "author": "sec",
           "timestamp": "2026-11-01T00:00:00Z", "version": 1, "statements": [
               {"vulnerability": {"name": "GHSA-jfh8-c2jp-5v3q"}, "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
                "products": [{"@id": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.0"}]}]}


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*prefix, i))


def _replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    out = copy.deepcopy(doc)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


def _messages(parse: Callable[[Any], object], doc: Any) -> list[str]:
    """Every text the parser shows for each wrong value at each place of ``doc``."""
    texts: list[str] = []
    for path in _paths(doc):
        for wrong in WRONG:
            try:
                parse(_replaced(doc, path, wrong))
            except InputError as e:
                texts.append(str(e))
                texts += [f"{i.field} | {i.message} | {i.expected}" for i in e.issues]
    return texts


def _plan(doc: Any) -> object:
    return plan_from_mapping(doc)


def _policy(doc: Any) -> object:
    return parse_gate_policy(yaml.safe_dump(doc))


def _osv(doc: Any) -> object:
    return parse_record(doc, source="GHSA-aaaa-bbbb-cccc.json")


def _vex(doc: Any) -> object:
    return parse_vex("vex.json", json.dumps(doc).encode())


def _plan_with_gate_lists() -> Any:
    """The default plan with the gate's list settings written out (required signals, alternatives)."""
    doc = yaml.safe_load((ROOT / "examples/plans/default.yaml").read_text())
    doc["gate"] = {**doc["gate"], "required_signals": ["crashed", "silent"], "alternatives": [[2.0, 0.5], [4.0, 0.5]]}
    return doc


RUNBOOKS = {"runbooks": [
    {"name": "server-redfish", "match": "oob_management=true", "path": "redfish", "minutes": 30,
     "automated": {"concurrency": 10, "cap_minutes": 60, "executor": "redfish"}, "needs_key": False,
     "steps": [{"name": "insert", "executor": "redfish", "action": "insert_media", "image": "https://example.com/r.iso"},
               {"name": "fix", "executor": "ansible", "playbook": "fix.yml"},
               {"name": "rescue", "executor": "cloud", "provider": "azure"},
               {"name": "run", "executor": "command", "command": ["true"]}]}]}
RECOVERY_MODEL = {"pc_minutes": 5, "technicians_per_site": 3, "technicians": {"fra-1": 4},
                  "shifts": {"fra-1": [{"start": "08:00", "hours": 8, "technicians": 3, "days": [0, 1, 2]}]},
                  "default_shifts": [{"start": "09:00", "hours": 8, "technicians": 2}]}


CASES = {
    "plan": (_plan, yaml.safe_load((ROOT / "examples/plans/default.yaml").read_text())),
    "plan with gate lists": (_plan, _plan_with_gate_lists()),
    "change window": (parse_window, {"days": "mon-thu", "start": "09:00", "end": "16:00"}),
    "runbooks": (runbooks_from_mapping, RUNBOOKS),
    "recovery model": (model_from_mapping, RECOVERY_MODEL),
    "notification rules": (parse_rules, yaml.safe_load((ROOT / "examples/notify.yaml").read_text())),
    "gate policy": (_policy, yaml.safe_load((ROOT / "examples/release-gates/default.yaml").read_text())),
    "osv record": (_osv, OSV),
    "cyclonedx vex": (_vex, CDX_VEX),
    "openvex": (_vex, OPENVEX),
}


@pytest.mark.parametrize("case", list(CASES))
def test_no_message_names_a_python_type(case: str) -> None:
    parse, doc = CASES[case]
    parse(doc)  # the document itself is valid
    texts = _messages(parse, doc)
    assert len(texts) > 20, texts  # wrong values were refused, so there were messages to read
    bad = sorted({t for t in texts if PYTHON_WORDS.search(t)})
    assert not bad, "\n".join(bad[:20])
    literal = sorted({t for t in texts if PYTHON_LITERALS.search(t)})
    assert not literal, "\n".join(literal[:20])


@pytest.mark.parametrize(("wrong", "words"), [(True, "is true"), (False, "is false"), ([0.5], "is [0.5]"),
                                              ({"a": None}, '{"a": null}'), ("half", "is 'half'")])
def test_a_plan_quotes_a_wrong_fraction_as_the_file_wrote_it(wrong: Any, words: str) -> None:
    doc = yaml.safe_load((ROOT / "examples/plans/default.yaml").read_text())
    doc["waves"][0]["fraction"] = wrong
    with pytest.raises(InputError) as caught:
        plan_from_mapping(doc)
    issue = next(i for i in caught.value.issues if i.field == "waves[0].fraction")
    assert words in issue.message, issue
    assert f"plan: waves[0].fraction: {issue.message}" in str(caught.value), caught.value


def test_an_empty_plan_names_the_plan_once() -> None:
    with pytest.raises(InputError) as caught:
        plan_from_mapping(None)
    assert str(caught.value) == "plan rejected: plan: is empty (expected a mapping with name and waves)"


@pytest.mark.parametrize(("parse", "doc"), [(_plan, None), (_policy, None), (_osv, None), (_vex, None)])
def test_an_empty_document_is_called_empty(parse: Callable[[Any], object], doc: Any) -> None:
    with pytest.raises(InputError, match="is empty"):
        parse(doc)


def test_shown_quotes_values_as_the_file_wrote_them() -> None:
    assert [shown(v) for v in (None, True, False, 3, "x", ["a", None], {"k": True})] == [
        "empty (null)", "true", "false", "3", "'x'", '["a", null]', '{"k": true}']
    assert shown("y" * 100).endswith("...") and len(shown("y" * 100)) == 60


def test_describe_uses_the_file_s_words() -> None:
    assert [describe(v) for v in (None, [], {"a": 1}, "x", 3, False)] == [
        "empty", "an empty list", "a mapping", "the text 'x'", "the number 3", "false"]


# --- the domain's own checks of what ports hand it (gate counts, log-rank ticks, scenarios, versions) ---------

@pytest.mark.parametrize("wrong", [None, {"signal": "silent", "stratum": "a"}, ["x"], "counts", 3])
def test_gate_counts_of_the_wrong_kind_are_named_in_words(wrong: Any) -> None:
    from ringfence.domain.gate import GateConfig, Verdict, evaluate

    result = evaluate([wrong], GateConfig())
    assert result.verdict is Verdict.ERROR
    reason = result.streams[0].reason
    assert "expected the counts of one signal in one stratum" in reason, reason
    assert describe(wrong) in reason, reason
    assert not PYTHON_WORDS.search(reason) and "StreamCounts" not in reason, reason


@pytest.mark.parametrize("wrong", [None, {"signal": "silent"}, ("x",), "tick", 2.5])
def test_log_rank_ticks_of_the_wrong_kind_are_named_in_words(wrong: Any) -> None:
    from ringfence.domain.gate import GateConfig
    from ringfence.domain.logrank import accumulate

    _, problems = accumulate((), [wrong], GateConfig())
    assert len(problems) == 1, problems
    assert "expected one tick of one signal in one stratum" in problems[0], problems
    assert describe(wrong) in problems[0], problems
    assert not PYTHON_WORDS.search(problems[0]) and "RiskTick" not in problems[0], problems


@pytest.mark.parametrize(("wrong", "words"), [(None, "is empty"), (["a"], "is a list"), ("crowdstrike", "is the text")])
def test_a_scenario_that_is_not_a_mapping_is_named_in_words(wrong: Any, words: str) -> None:
    from ringfence.sim.scenario import scenario_from_mapping

    with pytest.raises(InputError) as caught:
        scenario_from_mapping(wrong)
    message = caught.value.issues[0].message
    assert message.startswith(words), message
    assert not PYTHON_WORDS.search(message), message


@pytest.mark.parametrize(("ordering", "words"), [("nuget", "a NuGet version"), ("debian", "a Debian version"),
                                                 ("alpine", "an Alpine version"), ("go", "a Go module version")])
def test_an_unorderable_version_names_the_ecosystem_not_a_class(ordering: str, words: str) -> None:
    from ringfence.domain.vulns import VersionOrderError, compare_versions

    with pytest.raises(VersionOrderError) as caught:
        compare_versions(ordering, "!!banana!!", "1.0.0")
    assert f"'!!banana!!' is not {words}" in str(caught.value), caught.value
    assert "Version" not in str(caught.value).replace("version", ""), caught.value
