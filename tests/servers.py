"""A `ringfence serve` subprocess on loopback, restartable, and a CLI runner pointed at it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["Server", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """Starts `python -m ringfence.cli serve`; `kill()` sends SIGKILL, `start()` starts it again."""

    def __init__(self, workdir: Path, db_url: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_url = db_url
        self.workdir = workdir
        self.env = {**os.environ, "RINGFENCE_DATABASE_URL": db_url, "RINGFENCE_SERVER_URL": self.url,
                    "RINGFENCE_PORT": str(self.port), "RINGFENCE_HOST": "127.0.0.1",
                    "RINGFENCE_DATA_DIR": str(workdir / "var"), **env}
        self.env.pop("RINGFENCE_TOKEN", None)
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.starts += 1
        log_path = self.workdir / f"server-{self.starts}.log"
        self.log = log_path.open("w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "ringfence.cli", "serve"], cwd=self.workdir,
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.log.seek(0)
        output = self.log.read()
        assert self.proc.poll() is None, output
        match = re.search(r"RINGFENCE_TOKEN=(rf_\S+)", output)
        if self.starts == 1:
            assert match, output
            self.env["RINGFENCE_TOKEN"] = match.group(1)
        else:
            assert match is None, "a restart must not create another admin token"

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flush."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=15)
        self.log.close()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "ringfence.cli", *args], cwd=self.workdir, env=self.env,
                                capture_output=True, text=True, timeout=300, check=False)
        if check:
            assert result.returncode == 0, result.stderr + result.stdout
        return result

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
