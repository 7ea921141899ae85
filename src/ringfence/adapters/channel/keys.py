"""Signing keys of the channel: ed25519 keys in PEM files, one file per key, readable only by their owner.

Keys are made and used through securesystemslib's :class:`CryptoSigner`; this module only decides
where they live.  The online keys (targets, snapshot, timestamp and the one key shared by every
cohort role) stay on the server in ``<channel>/keys/``; the root keys are written to a separate
directory whose files are meant to be moved offline (docs/channel.md, key ceremony).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]  # re-exported without __all__

from ringfence.errors import InputError, NotFoundError

__all__ = ["ONLINE_ROLES", "generate", "load", "load_many", "write"]

#: Roles whose keys the server keeps to sign as desired state changes (``cohorts`` = every cohort role).
ONLINE_ROLES = ("targets", "snapshot", "timestamp", "cohorts")


def generate() -> CryptoSigner:
    """A new ed25519 key."""
    return CryptoSigner.generate_ed25519()


def write(path: Path, signer: CryptoSigner, *, replace: bool = False) -> Path:
    """Write a private key (PKCS#8 PEM) with mode 0600; refuse to overwrite unless ``replace``."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists() and not replace:
        raise InputError.single("key", f"{path} exists already", expected="an empty key directory (or `keys rotate`)")
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(signer.private_bytes)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load(path: Path) -> CryptoSigner:
    """The signer of a key file written by :func:`write`."""
    if not path.is_file():
        raise NotFoundError(f"key file {path} not found")
    try:
        private = load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise InputError.single("key", f"{path} is not an unencrypted PEM private key ({e})",
                                expected="a key file written by `ringfence keys init`") from None
    return CryptoSigner(private)


def load_many(paths: list[Path]) -> list[CryptoSigner]:
    """Several key files (e.g. the root keys brought back for a ceremony)."""
    return [load(p) for p in paths]
