"""Layering and public-API checks."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import ringfence
import ringfence.domain

FORBIDDEN = ("sqlalchemy", "fastapi", "httpx", "tuf", "starlette", "psycopg", "alembic", "uvicorn")


def test_domain_imports_no_io_libraries() -> None:
    """Importing every module of ringfence.domain pulls in none of the I/O libraries."""
    modules = [m.name for m in pkgutil.walk_packages(ringfence.domain.__path__, "ringfence.domain.")]
    code = (
        "import sys\n"
        f"for m in {modules!r}: __import__(m)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"ringfence.domain imports {result.stdout.strip()}"
    assert len(modules) >= 4


def test_every_module_has_an_honest_all() -> None:
    """Every name in a module's __all__ exists, and every module declares __all__."""
    for info in pkgutil.walk_packages(ringfence.__path__, "ringfence."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            continue
        for name in exported:
            assert hasattr(module, name), f"{info.name}.__all__ names {name!r}, which does not exist"


# --- the import contract (docs/adr/0001-layers.md) ---------------------------------------------------------

SRC = Path(ringfence.__file__).parent
#: Pure computation libraries the domain may use (no I/O): statistics, calendars, graphs, package URLs and
#: version ranges.  Anything else in the domain is a layer break.
THIRD_PARTY_IN_DOMAIN = ("numpy", "scipy", "holidays", "networkx", "packageurl", "univers")
SERVER_SIDE = ("ringfence.services", "ringfence.adapters", "ringfence.cli", "ringfence.sim", "ringfence.demo")
IO_LIBRARIES = ("sqlalchemy", "alembic", "psycopg", "fastapi", "starlette", "uvicorn")


def _forbidden(module: str, imported: str) -> str:
    """Why ``module`` may not import ``imported`` ("" when it may)."""
    top = imported.split(".", maxsplit=1)[0]

    def under(*prefixes: str) -> bool:
        return any(imported == p or imported.startswith(p + ".") for p in prefixes)

    if module.startswith("ringfence.domain"):
        if under("ringfence.domain", "ringfence.errors") or top in THIRD_PARTY_IN_DOMAIN:
            return ""
        if top in sys.stdlib_module_names and top != "ringfence":
            return ""
        return ("the domain imports only the domain, ringfence.errors, the standard library and "
                + "/".join(THIRD_PARTY_IN_DOMAIN))
    if module.startswith("ringfence.services"):
        if under("sqlalchemy", "ringfence.adapters.db.tables", "fastapi", "starlette", "httpx"):
            return "services call the stores; they import no sqlalchemy, table rows, fastapi, starlette or httpx"
        return ""
    if module.startswith("ringfence.agent"):
        if under(*SERVER_SIDE, *IO_LIBRARIES):
            return "the endpoint agent imports nothing server-side"
        return ""
    if module.startswith("ringfence.sim"):
        if under("ringfence.adapters.db", "ringfence.adapters.api", *IO_LIBRARIES, "httpx"):
            return "the simulator imports no database or API adapter"
        return ""
    return ""


def _imports(module: str, source: str, is_package: bool) -> list[tuple[int, str]]:
    """Every module ``source`` imports (anywhere: top level, functions, TYPE_CHECKING), with its line."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # `from ringfence.adapters.db import tables` imports the module ringfence.adapters.db.tables
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


#: What a service may not touch on a Database or a connection even without importing sqlalchemy: the engine
#: (its pool, its autocommit mode) and statement execution belong to adapters/db (Database.transaction/read
#: and the stores).
DB_INTERNALS = ("engine", "execute", "exec_driver_sql", "execution_options", "scalar", "scalars")


def _db_internals(source: str) -> list[tuple[int, str]]:
    """Every ``x.engine`` / ``conn.execute(...)``-style use of database internals in ``source``, with its line."""
    return [(node.lineno, node.attr) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and node.attr in DB_INTERNALS
            and not (isinstance(node.value, ast.Attribute) and node.value.attr == "domain")]  # ringfence.domain.engine


def _violations(module: str, source: str, is_package: bool = False) -> list[str]:
    out = []
    for line, imported in _imports(module, source, is_package):
        why = _forbidden(module, imported)
        if why:
            out.append(f"{module}:{line} imports {imported}: {why}")
    if module.startswith("ringfence.services"):
        out += [f"{module}:{line} uses .{attr}: services call the stores and Database.transaction/read; "
                "the engine and SQL execution live in adapters/db" for line, attr in _db_internals(source)]
    return out


def _all_modules() -> list[tuple[str, Path, bool]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out.append((".".join(parts), path, is_package))
    return out


def test_every_module_keeps_the_import_contract() -> None:
    """Every module of the package (not only those with __all__), every import statement in it."""
    modules = _all_modules()
    assert len(modules) > 100
    assert {m for m, _, _ in modules} >= {"ringfence.domain.engine", "ringfence.services.rollouts",
                                          "ringfence.agent.config", "ringfence.sim.fleet"}
    problems = [v for name, path, pkg in modules for v in _violations(name, path.read_text(encoding="utf-8"), pkg)]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(("module", "source"), [
    ("ringfence.domain.x", "import sqlalchemy"),
    ("ringfence.domain.x", "from ringfence.services.codec import status_to_doc"),
    ("ringfence.domain.x", "def f():\n    from ringfence.adapters.db import engine\n"),
    ("ringfence.domain.x", "import yaml"),
    ("ringfence.domain.x", "from ..services import rollouts"),
    ("ringfence.services.x", "from sqlalchemy import select"),
    ("ringfence.services.x", "from ringfence.adapters.db.tables import HostRow"),
    ("ringfence.services.x", "from ringfence.adapters.db import tables"),
    ("ringfence.services.x", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sqlalchemy import Connection\n"),
    ("ringfence.services.x", "import httpx"),
    ("ringfence.services.x", "def f(db):\n    return db.engine.execution_options(isolation_level='AUTOCOMMIT')\n"),
    ("ringfence.services.x", "def f(db):\n    with db.engine.connect() as conn:\n        pass\n"),
    ("ringfence.services.x", "def f(db, stmt):\n    with db.transaction() as conn:\n        conn.execute(stmt)\n"),
    ("ringfence.services.x", "def f(a, b):\n    return str(a.engine.url) == str(b.engine.url)\n"),
    ("ringfence.services.x", "from fastapi import Request"),
    ("ringfence.agent.x", "from ringfence.adapters.inventory.records import HOST_FIELDS"),
    ("ringfence.agent.x", "from ringfence.services.context import Clock"),
    ("ringfence.sim.x", "from ringfence.adapters.db.engine import Database"),
    ("ringfence.sim.x", "from ringfence.adapters.api import app"),
])
def test_the_import_contract_catches_a_broken_layer(module: str, source: str) -> None:
    """The checker is not blind: each of these imports breaks a layer and is reported."""
    assert _violations(module, source), f"{module} importing {source!r} was not caught"


@pytest.mark.parametrize(("module", "source"), [
    ("ringfence.domain.x", "import numpy as np\nfrom zoneinfo import ZoneInfo\nfrom ringfence.errors import InputError"),
    ("ringfence.services.x", "from ringfence.adapters.db.stores import rollouts\n"
                             "from ringfence.adapters.db.engine import Database"),
    ("ringfence.services.x", "import ringfence.domain.engine\nfrom ringfence.domain import engine\n"
                             "def f(db, s):\n    with db.read() as conn:\n        rollouts.get(conn, s)\n"
                             "    return engine.reconcile, ringfence.domain.engine.command\n"),
    ("ringfence.agent.x", "import httpx\nfrom ringfence.domain.host_record import HOST_FIELDS\n"
                          "from ringfence.clock import Clock"),
    ("ringfence.sim.x", "from ringfence.services.fleet_port import reconcile_step"),
])
def test_the_import_contract_allows_what_the_layers_may_use(module: str, source: str) -> None:
    assert _violations(module, source) == []


def _loaded_by(package: str) -> list[str]:
    """Every module in sys.modules after importing every module of ``package`` in a fresh interpreter."""
    names = [m for m, _, _ in _all_modules() if m == package or m.startswith(package + ".")]
    code = (
        "import sys\n"
        f"for m in {names!r}: __import__(m)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_agent_and_simulator_pull_in_nothing_forbidden_transitively() -> None:
    """Importing every agent module loads nothing server-side; every simulator module no database or API code."""
    agent = _loaded_by("ringfence.agent")
    bad = [m for m in agent if any(m == p or m.startswith(p + ".") for p in (*SERVER_SIDE, *IO_LIBRARIES))]
    assert bad == [], f"ringfence.agent loads {bad}"
    assert "ringfence.agent.core" in agent
    sim = _loaded_by("ringfence.sim")
    bad = [m for m in sim if any(m == p or m.startswith(p + ".")
                                 for p in ("ringfence.adapters.db", "ringfence.adapters.api", *IO_LIBRARIES))]
    assert bad == [], f"ringfence.sim loads {bad}"
    assert "ringfence.sim.runner" in sim
