"""The one YAML loader: alias bombs, deep nesting and oversize documents are refused before anything is built."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ringfence.adapters.inventory.files import parse_files
from ringfence.adapters.vuln.osv import load_path
from ringfence.adapters.yamlfile import YamlLimits, load_yaml
from ringfence.errors import InputError
from ringfence.services.release_gates import parse_gate_policy
from ringfence.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def alias_bomb(levels: int = 9, key: str = "x") -> str:
    """The classic "billion laughs": 9 levels of 9 aliases, 9**9 = 387 M nodes from about 600 bytes."""
    lines = [f'{key}0: &{key}0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*{key}{i - 1}"] * 9)
        lines.append(f"{key}{i}: &{key}{i} [{refs}]")
    return "\n".join(lines) + "\n"


def _issue(e: pytest.ExceptionInfo[InputError]) -> str:
    return str(e.value)


def test_an_alias_bomb_is_refused_naming_the_limit() -> None:
    started = time.monotonic()
    with pytest.raises(InputError) as e:
        load_yaml(alias_bomb(), what="plan", location="bomb.yaml")
    assert time.monotonic() - started < 2
    assert "plan" in _issue(e) and "bomb.yaml" in _issue(e) and "2,000,000 nodes" in _issue(e)
    assert "aliases" in _issue(e)


def test_harmless_aliases_and_anchors_still_load() -> None:
    doc = load_yaml("base: &b {tier: 1}\nweb: *b\ndb: *b\n", what="services")
    assert doc == {"base": {"tier": 1}, "web": {"tier": 1}, "db": {"tier": 1}}


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(InputError, match="recursive alias"):
        load_yaml("a: &a [1, *a]\n", what="plan")


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    deep = "[" * 20_000 + "]" * 20_000  # libyaml's own cap (1,000) or ours, whichever comes first
    with pytest.raises(InputError, match="nest"):
        load_yaml(deep, what="plan")
    with pytest.raises(InputError, match="nested more than 64 deep"):
        load_yaml("[" * 100 + "]" * 100, what="plan")
    nested_maps = "".join(" " * i + f"k{i}:\n" for i in range(100)) + " " * 100 + "v\n"
    with pytest.raises(InputError, match="nested more than 64 deep"):
        load_yaml(nested_maps, what="plan")
    assert load_yaml("[" * 60 + "]" * 60, what="plan") is not None


def test_oversize_documents_are_refused_before_parsing() -> None:
    with pytest.raises(InputError, match="larger than 1,000 bytes"):
        load_yaml("a: " + "x" * 2000, what="policy", limits=YamlLimits(max_bytes=1000))
    with pytest.raises(InputError, match="larger than 1,000 bytes"):
        load_yaml(("a: " + "é" * 600).encode(), what="policy", limits=YamlLimits(max_bytes=1000))


def test_syntax_errors_name_the_document_and_line() -> None:
    with pytest.raises(InputError) as e:
        load_yaml("a: [1, 2\nb: 3\n", what="plan", location="p.yaml")
    assert "plan" in _issue(e) and "line" in _issue(e)


def test_strings_only_keeps_versions_as_written() -> None:
    assert load_yaml("v: 1.10\n", what="osv", strings_only=True) == {"v": "1.10"}
    assert load_yaml("v: 1.10\n", what="osv") == {"v": 1.1}


def test_every_yaml_reader_of_the_project_refuses_the_bomb(tmp_path: Path) -> None:
    """Gate policies, inventory services, scenarios and OSV YAML go through the loader (plans: test_bombs)."""
    bomb = alias_bomb()
    with pytest.raises(InputError, match="nodes"):
        parse_gate_policy(bomb)
    with pytest.raises(InputError, match="nodes"):
        parse_files([("services.yaml", bomb.encode())])
    (tmp_path / "s.yaml").write_text(bomb)
    with pytest.raises(InputError, match="nodes"):
        load_scenario(str(tmp_path / "s.yaml"))
    (tmp_path / "osv").mkdir()
    (tmp_path / "osv" / "GHSA-1.yaml").write_text(bomb)
    with pytest.raises(InputError, match="nodes"):
        load_path(tmp_path / "osv")


def test_no_module_reads_yaml_except_through_the_loader() -> None:
    """A grep, so a new YAML reader cannot bypass the limits: only ringfence/adapters/yamlfile.py calls yaml.load."""
    offenders = []
    for path in (ROOT / "src" / "ringfence").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name != "yamlfile.py" and any(f"yaml.{f}(" in text for f in ("safe_load", "load", "full_load",
                                                                              "unsafe_load", "compose", "load_all",
                                                                              "safe_load_all")):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_bomb_is_refused_within_200_mb_of_memory() -> None:
    """Measured in a fresh process: peak RSS after refusing the bomb minus the RSS before it."""
    code = (
        "import resource, sys\n"
        "from ringfence.adapters.yamlfile import load_yaml\n"
        "from ringfence.errors import InputError\n"
        f"bomb = {alias_bomb()!r}\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    load_yaml(bomb, what='plan')\nexcept InputError:\n    pass\nelse:\n    sys.exit(3)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10
    extra_kib = int(result.stdout.strip())
    assert extra_kib < 200 * 1024, f"{extra_kib} KiB extra"
