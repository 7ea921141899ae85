"""The built wheel works on its own: installed into a fresh venv outside the repository, it finds its scenarios,
plans, templates and migrations, simulates the 2024 replay and serves the demo dashboard.

To stay fast enough for ``make test`` the wheel is built without its dependencies (``pip wheel --no-deps``), and
the fresh venv sees the dependencies already installed in ``.venv`` through a ``.pth`` file that names
``.venv``'s site-packages.  A plain path in a ``.pth`` file does not process that directory's own ``.pth`` files,
so the editable install of ringfence (``__editable__.ringfence-*.pth`` → ``src/``) is not visible there; the
test checks that ``ringfence`` is imported from the installed wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{args} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh venv outside the repository with the wheel built from this checkout installed in it."""
    work = tmp_path_factory.mktemp("wheel")
    assert not work.resolve().is_relative_to(ROOT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RINGFENCE_", "PYTHON"))}
    # Build from a copy so that setuptools' build/ and egg-info never land in the checkout.
    source = work / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    dist = work / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", dist, source], cwd=work, env=env)
    (wheel,) = dist.glob("ringfence-*.whl")

    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=work, env=env)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work,
                     env=env).strip())
    (site / "_ringfence_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel],
         cwd=work, env=env)
    imported = _run([python, "-c", "import ringfence; print(ringfence.__file__)"], cwd=work, env=env).strip()
    assert Path(imported).is_relative_to(site), f"ringfence imported from {imported}, not from the installed wheel"
    return venv, env


def test_installed_wheel_simulates_and_serves_the_demo(installed: tuple[Path, dict[str, str]],
                                                       tmp_path: Path) -> None:
    """`ringfence serve --demo` answers on loopback, and `ringfence simulate` replays 2024, from the wheel alone."""
    venv, base_env = installed
    ringfence = venv / "bin" / "ringfence"
    port = free_port()
    env = {**base_env, "RINGFENCE_DATA_DIR": str(tmp_path / "var"), "RINGFENCE_HOST": "127.0.0.1",
           "RINGFENCE_PORT": str(port)}
    log = (tmp_path / "serve.log").open("w+")
    server = subprocess.Popen([str(ringfence), "serve", "--demo", "--demo-hosts", "20"], cwd=tmp_path, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        # The simulation runs while the server starts (both take seconds on a loaded machine).
        _run([ringfence, "simulate", "--scenario", "crowdstrike-2024", "--hosts", "20000",  # policy: default
              "--json", tmp_path / "sim.json"], cwd=tmp_path, env=env)
        (summary,) = json.loads((tmp_path / "sim.json").read_text(encoding="utf-8"))
        assert summary["hosts"] == 20000 and summary["plan"] == "default"
        assert summary["halted"] is True
        assert 0 < summary["crashed_hosts"] <= 100

        page = None
        deadline = time.monotonic() + 90
        while page is None and time.monotonic() < deadline and server.poll() is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", follow_redirects=True, timeout=2)
            except httpx.TransportError:
                time.sleep(0.3)
        log.seek(0)
        output = log.read()
        assert page is not None, f"the demo server never answered\n{output}"
        assert page.status_code == 200, f"{page.status_code}\n{page.text[:500]}\n{output}"
        assert "ringfence" in page.text.lower()
        assert "demo" in output
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
