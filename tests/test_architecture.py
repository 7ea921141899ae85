"""Layering and public-API checks."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

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
