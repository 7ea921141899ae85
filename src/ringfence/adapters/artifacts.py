"""Content-addressed artifact storage on the local disk: ``<root>/sha256/<ab>/<full digest>``.

Writes are atomic (temporary file, fsync, rename), so a crash never leaves a
half-written artifact under its digest; storing the same bytes twice is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from ringfence.errors import NotFoundError

__all__ = ["ArtifactStore"]


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

    def get(self, sha256: str) -> bytes:
        """The bytes of an artifact."""
        target = self.path(sha256)
        if not target.is_file():
            raise NotFoundError(f"artifact {sha256} not found")
        return target.read_bytes()
