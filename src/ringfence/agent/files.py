"""Atomic file writes: a staging file in the same directory, fsync, rename over the target, fsync the directory.

A crash at any point leaves either the old file or the new one, never a torn
mix, because :func:`os.replace` is atomic within one file system and the data
reaches the disk before the name does.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_copy", "atomic_write", "fsync_dir", "read_json", "write_json"]


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_from(target: Path, fill: Any, mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".staging")
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(staging, mode)
        os.replace(staging, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        raise
    fsync_dir(target.parent)


def atomic_write(target: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``target`` with ``data`` atomically and durably."""
    _replace_from(target, lambda out: out.write(data), mode)


def atomic_copy(source: Path, target: Path, *, mode: int = 0o644) -> None:
    """Replace ``target`` with a copy of ``source`` atomically and durably."""
    with source.open("rb") as src:
        _replace_from(target, lambda out: shutil.copyfileobj(src, out, 1 << 20), mode)


def write_json(target: Path, value: Any, *, mode: int = 0o600) -> None:
    """Write JSON atomically (state files are private to the agent: 0600 by default)."""
    atomic_write(target, (json.dumps(value, indent=1, sort_keys=True) + "\n").encode(), mode=mode)


def read_json(path: Path, default: Any) -> Any:
    """Read a JSON file, or ``default`` when it does not exist."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
