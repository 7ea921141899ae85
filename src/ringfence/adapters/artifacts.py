"""Content-addressed artifact storage on the local disk: ``<root>/sha256/<ab>/<full digest>``.

Writes are atomic (temporary file, fsync, rename), so a crash never leaves a
half-written artifact under its digest; storing the same bytes twice is a no-op.
:meth:`ArtifactStore.put_stream` copies an upload from where it is spooled a buffer at a time, hashing
as it goes, so an artifact is never held whole in memory.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO

from ringfence.errors import NotFoundError

__all__ = ["ArtifactStore"]

_CHUNK = 1024 * 1024


class ArtifactStore:
    """Files stored under their SHA-256."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where the artifact with this digest lives."""
        return self.root / "sha256" / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store bytes; return their SHA-256 hex digest."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def put_stream(self, stream: IO[bytes]) -> tuple[str, int]:
        """Store what ``stream`` holds from where it is, a buffer at a time; return its SHA-256 and size."""
        incoming = self.root / "sha256"
        incoming.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=incoming, prefix=".incoming-")
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            target = self.path(digest.hexdigest())
            if target.exists():
                Path(tmp).unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, target)  # the same file system: an atomic rename
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest.hexdigest(), size

    def get(self, sha256: str) -> bytes:
        """The bytes of an artifact."""
        target = self.path(sha256)
        if not target.is_file():
            raise NotFoundError(f"artifact {sha256} not found")
        return target.read_bytes()
