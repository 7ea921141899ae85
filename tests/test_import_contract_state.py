"""No hidden process-global state (issue 12, step 6): what a use case needs travels in the application context.

An AST scan over every module of ``src/ringfence`` fails when a module-level registry or cache comes back:

* a ``global`` statement (a module variable rebound at run time);
* a module-level dict, list or set that code anywhere in the package writes to after import
  (``X[k] = v``, ``del X[k]``, ``X.append(...)``, ``X.update(...)`` …), in its own module or through an import;
* a module-level object that exists only to be changed (``defaultdict``, ``deque``, ``Counter``, weak
  dictionaries, locks) or that holds resources or settings (``…Cache``, ``…Registry``, ``…Store``,
  ``Database``, ``Settings``, an engine or a client);
* a memoised module-level function (``functools.cache``/``lru_cache``).

Each exception is listed below with why it is not per-application state; docs/architecture.md ("State
a process keeps") says the same.  Constants (a dict or set that nothing writes to) need no entry.  The cases
at the end prove that the scan catches each kind, including the two registries it replaced
(``release_gates._ARTIFACTS`` and ``stores/audit._KEYS``).
"""

from __future__ import annotations

import ast
import functools
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import ringfence

SRC = Path(ringfence.__file__).parent

#: ``global`` statements that are not per-application state, as (module, name): reason.
ALLOWED_GLOBALS: dict[tuple[str, str], str] = {
    ("runtime.py", "_active"): "the garbage collector is process state; this counts the pauses that hold it",
    ("runtime.py", "_restore"): "whether the collector was on when the first pause began (process state)",
    ("adapters/inventory/records.py", "_TIMEZONES"): "the tz database's names, loaded once: the same for every app",
}
#: Module-level objects that exist to change or hold resources, as (module, name): reason.
ALLOWED_OBJECTS: dict[tuple[str, str], str] = {
    ("runtime.py", "_lock"): "guards the collector-pause counter above",
    ("adapters/sbom/validate.py", "_VALIDATORS"): "compiled CycloneDX schema validators, one per schema version "
                                                  "shipped in the library: the same for every app",
}
#: Memoised pure functions of immutable arguments (no database, no settings, no clock), as (module, name): reason.
ALLOWED_MEMOS: dict[tuple[str, str], str] = {
    ("domain/vulns.py", "_key"): "version key of (ordering, version string)",
    ("domain/vulns.py", "_sorted_events"): "sorted OSV events of an immutable tuple",
    ("domain/vulns.py", "parse_purl"): "PackageURL of a string (PackageURL is immutable)",
    ("domain/vulns.py", "_component_key"): "match key of a frozen Component",
    ("domain/windows.py", "_resolve_region"): "holiday-region codes of (country, subdivision)",
    ("domain/windows.py", "_calendar"): "one year of public holidays of a region",
    ("sim/fleetgen.py", "_catalogue"): "the fleet generator's fixed tables",
    ("adapters/reports/assessment.py", "_environment"): "the Jinja environment over the packaged templates",
}

MUTABLE_DISPLAYS = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)
MUTABLE_CALLS = frozenset({"dict", "list", "set", "bytearray"})
#: Objects whose only use is being changed, or that hold a lock.
CHANGING_CALLS = frozenset({"defaultdict", "OrderedDict", "Counter", "deque", "WeakKeyDictionary",
                            "WeakValueDictionary", "WeakSet", "Lock", "RLock", "local", "ChainMap"})
#: Objects that hold resources or settings: they belong to an application context, not to a module.
RESOURCE_CALL = re.compile(r"(Cache|Registry|Store|Database|Engine|Settings|Pool|Client|Session)$|^create_engine$")
MUTATING_METHODS = frozenset({"append", "extend", "insert", "add", "update", "setdefault", "pop", "popitem",
                              "remove", "discard", "clear", "appendleft", "extendleft", "sort", "reverse",
                              "difference_update", "intersection_update", "symmetric_difference_update"})
MEMO_DECORATORS = frozenset({"cache", "lru_cache"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of module-level state: where, which name, what kind."""

    module: str
    line: int
    name: str
    kind: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.name} ({self.kind})"


def _call_name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        func = node.func
        return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    return ""


def _module_containers(tree: ast.Module) -> dict[str, int]:
    """Module-level names bound to a mutable container: name -> line."""
    out: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if isinstance(value, MUTABLE_DISPLAYS) or _call_name(value) in MUTABLE_CALLS:
            for t in targets:
                if isinstance(t, ast.Name) and t.id != "__all__":
                    out[t.id] = node.lineno
    return out


def _local_names(func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names a function binds itself (arguments and assignments), which shadow module names."""
    args = func.args
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _written(target: ast.expr) -> ast.expr | None:
    """The container expression that a statement writes into (``X`` in ``X[k] = v`` or ``X.append(v)``)."""
    if isinstance(target, ast.Subscript):
        return target.value
    return None


def _writes(tree: ast.Module) -> list[tuple[ast.expr, int, ast.AST]]:
    """Every (container expression, line, enclosing function or module) that code writes into."""
    out: list[tuple[ast.expr, int, ast.AST]] = []

    def visit(scope: ast.AST, body: ast.AST) -> None:
        for node in ast.iter_child_nodes(body):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(node, node)
                continue
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
                targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
                for t in targets:
                    written = _written(t)
                    if written is not None:
                        out.append((written, node.lineno, scope))
                    elif isinstance(node, ast.AugAssign) and isinstance(t, ast.Name | ast.Attribute):
                        out.append((t, node.lineno, scope))
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in MUTATING_METHODS):
                out.append((node.func.value, node.lineno, scope))
            visit(scope, node)

    visit(tree, tree)
    return out


def _globals_and_imports(tree: ast.Module, package: str) -> tuple[list[ast.Global], dict[str, str], dict[str, str]]:
    """``global`` statements, and (alias -> module for ``import``/``from p import module``, name -> module for
    ``from module import name``), in one walk."""
    found: list[ast.Global] = []
    modules: dict[str, str] = {}
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            found.append(node)
        elif isinstance(node, ast.Import):
            for a in node.names:
                modules[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            parent = package.split(".")[:len(package.split(".")) - node.level + 1]
            base = node.module if node.level == 0 else ".".join([*parent, node.module])
            for a in node.names:
                names[a.asname or a.name] = base
                modules[a.asname or a.name] = f"{base}.{a.name}"
    return found, modules, names


def scan(sources: dict[str, str]) -> list[Finding]:
    """Module-level state in ``sources`` (dotted module name -> source text)."""
    trees = {m: ast.parse(text) for m, text in sources.items()}
    containers = {m: _module_containers(t) for m, t in trees.items()}
    findings: list[Finding] = []
    for module, tree in trees.items():
        for node in tree.body:  # objects that change or hold resources, and memoised functions
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                called = _call_name(node.value)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name) and called in CHANGING_CALLS:
                        findings.append(Finding(module, node.lineno, t.id, f"{called}() at module level"))
                    elif isinstance(t, ast.Name) and called and RESOURCE_CALL.search(called):
                        findings.append(Finding(module, node.lineno, t.id, f"{called}() built at import"))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for d in node.decorator_list:
                    name = _call_name(d) if isinstance(d, ast.Call) else (
                        d.id if isinstance(d, ast.Name) else d.attr if isinstance(d, ast.Attribute) else "")
                    if name in MEMO_DECORATORS:
                        findings.append(Finding(module, node.lineno, node.name, f"@{name}: a process-wide cache"))
        statements, aliases, from_names = _globals_and_imports(tree, module.rsplit(".", 1)[0])
        for g in statements:
            findings.extend(Finding(module, g.lineno, n, "global statement") for n in g.names)
        own = containers[module]
        locals_of: dict[int, set[str]] = {}
        for expr, line, scope in _writes(tree):
            if id(scope) not in locals_of:
                locals_of[id(scope)] = (_local_names(scope) if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef)
                                        else set())
            local = locals_of[id(scope)]
            if isinstance(expr, ast.Name):
                if scope is not tree and expr.id in own and expr.id not in local:
                    findings.append(Finding(module, line, expr.id, f"module-level container written at run time "
                                                                   f"(defined at line {own[expr.id]})"))
                elif expr.id in from_names and expr.id not in local:
                    origin = from_names[expr.id]
                    if expr.id in containers.get(origin, {}):
                        findings.append(Finding(module, line, f"{origin}.{expr.id}",
                                                "another module's container written through an import"))
            elif isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
                origin = aliases.get(expr.value.id, "")
                if expr.value.id not in local and expr.attr in containers.get(origin, {}):
                    findings.append(Finding(module, line, f"{origin}.{expr.attr}",
                                            "another module's container written through an import"))
    return findings


@functools.cache
def _package_findings() -> tuple[Finding, ...]:
    return tuple(scan(_package_sources()))


def _package_sources() -> dict[str, str]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if "migrations" in rel.parts:
            continue
        parts = ["ringfence", *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path.read_text(encoding="utf-8")
    return out


def _rel(module: str) -> str:
    """``ringfence.adapters.db.engine`` -> ``adapters/db/engine.py`` (the allow-lists' spelling)."""
    parts = module.split(".")[1:]
    return "/".join(parts) + ".py" if parts else "__init__.py"


def _allowed(f: Finding) -> bool:
    key = (_rel(f.module), f.name)
    if f.kind == "global statement":
        return key in ALLOWED_GLOBALS
    if f.kind.startswith("@"):
        return key in ALLOWED_MEMOS
    return key in ALLOWED_OBJECTS


def test_no_module_level_registry_or_cache_in_the_package() -> None:
    """Every piece of module-level state is a constant or an allow-listed, justified exception."""
    findings = [f for f in _package_findings() if not _allowed(f)]
    assert not findings, ("module-level mutable state (issue 12, step 6): pass it in the application context "
                          "(ringfence.appcontext.AppContext, or the Database object) instead, or justify it in this "
                          "test's allow-lists and docs/architecture.md:\n  " + "\n  ".join(map(str, findings)))


def test_every_allowed_exception_still_exists() -> None:
    """An allow-list entry whose state was removed is removed too, so the list stays the true inventory."""
    found = {(_rel(f.module), f.name) for f in _package_findings()}
    stale = sorted((set(ALLOWED_GLOBALS) | set(ALLOWED_OBJECTS) | set(ALLOWED_MEMOS)) - found)
    assert not stale, f"allow-list entries with nothing left to allow: {stale}"


# --- the scan catches each kind of state -------------------------------------------------------------------

def _one(source: str, **others: str) -> list[str]:
    sources = {"ringfence.services.x": textwrap.dedent(source), **{k: textwrap.dedent(v) for k, v in others.items()}}
    return sorted(f"{f.name}: {f.kind.split(' (')[0]}" for f in scan(sources))


@pytest.mark.parametrize(("source", "expected"), [
    pytest.param("""
        _ARTIFACTS: dict[str, object] = {}
        def configure(url, store):
            _ARTIFACTS[url] = store
        """, ["_ARTIFACTS: module-level container written at run time"], id="the artifact-store registry"),
    pytest.param("""
        import weakref
        _KEYS = weakref.WeakKeyDictionary()
        """, ["_KEYS: WeakKeyDictionary() at module level"], id="the audit-key registry"),
    pytest.param("""
        _SEEN = []
        def remember(x):
            _SEEN.append(x)
        """, ["_SEEN: module-level container written at run time"], id="a list appended to"),
    pytest.param("""
        _CACHE = {}
        def forget(k):
            del _CACHE[k]
        """, ["_CACHE: module-level container written at run time"], id="a dict deleted from"),
    pytest.param("""
        _N = 0
        def bump():
            global _N
            _N += 1
        """, ["_N: global statement"], id="a global counter"),
    pytest.param("""
        import functools
        @functools.lru_cache(maxsize=8)
        def index(db):
            return db.read()
        """, ["index: @lru_cache: a process-wide cache"], id="a memoised function"),
    pytest.param("""
        from ringfence.adapters.db.engine import Database
        DB = Database("sqlite:///x.db")
        """, ["DB: Database() built at import"], id="a database built at import"),
    pytest.param("""
        from ringfence.services import y
        def register(k, v):
            y._REGISTRY[k] = v
        """, ["ringfence.services.y._REGISTRY: another module's container written through an import"],
        id="another module's registry"),
    pytest.param("""
        _LABELS = {"a": 1, "b": 2}
        _WORDS = {"x", "y"}
        def label(k):
            labels = dict(_LABELS)
            labels[k] = 3
            _LABELS.get(k)
            return labels
        def shadow(_LABELS):
            _LABELS[1] = 2
        """, [], id="constants and local copies are fine"),
])
def test_the_scan_catches_each_kind_of_state(source: str, expected: list[str]) -> None:
    assert _one(source, **{"ringfence.services.y": "_REGISTRY = {}\n"}) == expected


def test_only_the_runtime_module_switches_the_garbage_collector() -> None:
    """The collector is process state: one switch (ringfence.runtime.collector_paused), so pauses nest."""
    switching = []
    for module, text in _package_sources().items():
        for node in ast.walk(ast.parse(text)):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "gc"
                    and node.attr in ("disable", "enable", "freeze", "unfreeze", "set_threshold")):
                switching.append(f"{module}:{node.lineno}: gc.{node.attr}")
    assert all(s.startswith("ringfence.runtime:") for s in switching), switching
    assert switching, "ringfence.runtime no longer pauses the collector: update this test"
