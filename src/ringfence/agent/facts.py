"""What this host is, as an inventory record: from osquery when ``osqueryi`` is installed, else the platform module.

The record uses the inventory's own field names (docs/inventory.md), so the
server checks it exactly as it checks an imported file.  Fields set in the
config's ``[facts]`` table are reported as they are, over collected ones.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

__all__ = ["collect_facts", "host_id", "osquery"]

log = logging.getLogger("ringfence.agent")

_FAMILIES = {"windows": "windows", "linux": "linux", "darwin": "macos"}


def osquery(sql: str, *, timeout: float = 15.0) -> list[dict[str, Any]] | None:
    """Rows of one osquery SQL query, or None when osqueryi is not installed or fails."""
    binary = shutil.which("osqueryi")
    if binary is None:
        return None
    try:
        result = subprocess.run([binary, "--json", sql], capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603 - fixed argv
        if result.returncode != 0:
            log.warning("osqueryi failed (%s); using the platform module", result.stderr.strip()[:200])
            return None
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        return rows
    except (OSError, subprocess.TimeoutExpired, ValueError) as e:
        log.warning("osqueryi cannot be used (%s); using the platform module", e)
        return None


def host_id(configured: str, state_root: Path) -> str:
    """The host's stable id: configured, else osquery ``system_info.uuid``, else generated once and kept."""
    if configured:
        return configured
    rows = osquery("SELECT uuid FROM system_info")
    if rows and rows[0].get("uuid"):
        return str(rows[0]["uuid"])
    path = state_root / "host_id"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        from ringfence.agent.files import atomic_write  # noqa: PLC0415 - only on first start

        new = str(uuid.uuid4())
        atomic_write(path, (new + "\n").encode(), mode=0o600)
        return new


def _timezone() -> str:
    tz = os.environ.get("TZ", "")
    if tz and "/" in tz:
        return tz.lstrip(":")
    try:
        link = os.readlink("/etc/localtime")
        if "zoneinfo/" in link:
            return link.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return "UTC"


def _from_platform() -> dict[str, Any]:
    system = platform.system().lower()
    rec: dict[str, Any] = {"hostname": socket.gethostname(), "os_family": _FAMILIES.get(system, "other"),
                           "os_name": platform.system(), "os_version": platform.release(), "arch": platform.machine(),
                           "timezone": _timezone()}
    if system == "linux":
        try:
            release = platform.freedesktop_os_release()
            rec["os_name"] = release.get("NAME", rec["os_name"])
            rec["os_version"] = release.get("VERSION_ID", rec["os_version"])
            rec["os_build"] = platform.release()
        except OSError:
            pass
    elif system == "windows":
        rec["os_version"], rec["os_build"] = platform.release(), platform.version().rsplit(".", 1)[-1]
    elif system == "darwin":
        rec["os_name"], rec["os_version"] = "macOS", platform.mac_ver()[0]
    return rec


def _from_osquery() -> dict[str, Any] | None:
    info = osquery("SELECT hostname, hardware_vendor, hardware_model, cpu_type FROM system_info")
    osv = osquery("SELECT name, version, build, platform FROM os_version")
    if not info or not osv:
        return None
    family = str(osv[0].get("platform", "")).lower()
    family = {"darwin": "macos", "windows": "windows"}.get(family, "linux" if family else "other")
    return {"hostname": info[0].get("hostname", ""), "hardware_vendor": info[0].get("hardware_vendor", ""),
            "hardware_model": info[0].get("hardware_model", ""), "arch": info[0].get("cpu_type", "") or platform.machine(),
            "os_family": family, "os_name": osv[0].get("name", ""), "os_version": osv[0].get("version", ""),
            "os_build": osv[0].get("build", ""), "timezone": _timezone()}


def collect_facts(host: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The host's inventory record (without tenant: the enrolment token names it)."""
    rec = _from_osquery() or _from_platform()
    rec = {k: v for k, v in rec.items() if v not in (None, "")}
    rec.update(overrides)
    rec["id"] = host
    return rec
