"""Reading and verifying the audit log; its key (outside the database) and signed checkpoints of its head.

* **Key**: :func:`audit_key` reads the HMAC key from ``audit_key`` (``RINGFENCE_AUDIT_KEY``) or
  ``audit_key_file`` (default ``<data_dir>/audit.key``); :func:`use_audit_key` sets it on a
  database and, the first time, writes the switch-over entry from which the chain is keyed.
* **Checkpoints**: :func:`write_checkpoint` verifies the chain, then signs its head
  ``(seq, hash, keyed_from, key_id)`` with an Ed25519 key of its own (``audit_checkpoint_key_file``)
  and writes it as JSON outside the database.  :func:`read_checkpoint` checks such a file's
  signature against a trusted public key; :func:`verify` with it proves that nothing up to the
  checkpoint was changed, dropped or inserted, and that the tail was not cut.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.config import Settings
from ringfence.domain.access import Role
from ringfence.domain.audit import AuditEntry, ChainBreak, Checkpoint, key_id, verify_chain
from ringfence.errors import InputError
from ringfence.services.context import Actor, Clock

__all__ = [
    "VerifyResult",
    "audit_key",
    "checkpoint_folder",
    "checkpoint_key",
    "latest_checkpoint",
    "list_entries",
    "parse_checkpoint",
    "read_checkpoint",
    "use_audit_key",
    "verify",
    "write_checkpoint",
]

_FORMAT = "ringfence-audit-checkpoint/1"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of a chain check."""

    entries: int
    head_seq: int
    broken: ChainBreak | None
    keyed: bool = False
    checkpoint_seq: int | None = None

    @property
    def ok(self) -> bool:
        """True when the chain is intact."""
        return self.broken is None

    def as_dict(self) -> dict[str, Any]:
        """JSON form (what ``audit verify --json`` prints)."""
        broken = self.broken
        return {"ok": self.ok, "entries": self.entries, "head_seq": self.head_seq, "keyed": self.keyed,
                "checkpoint_seq": self.checkpoint_seq,
                "broken": None if broken is None else {"seq": broken.seq, "kind": broken.kind,
                                                       "message": broken.message}}


def _key_path(settings: Settings) -> Path:
    return settings.audit_key_file or settings.data_dir / "audit.key"


def audit_key(settings: Settings, *, create: bool = False) -> bytes | None:
    """The audit key from the settings or the key file; ``create`` makes a key file (0600) when there is none."""
    if settings.audit_key:
        return settings.audit_key.encode("utf-8")
    path = _key_path(settings)
    if path.is_file():
        key = path.read_bytes().strip()
        if len(key) < 16:
            raise InputError.single("audit_key_file", f"{path} holds fewer than 16 bytes",
                                    expected="a random key of at least 16 bytes (e.g. 64 hex digits)")
        return key
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return path.read_bytes().strip()


def use_audit_key(db: Database, key: bytes | None, *, clock: Clock) -> None:
    """Write audit entries of ``db`` with ``key``; the first time, start the keyed chain (a switch-over entry)."""
    db.audit_key = key
    if key is None:
        return
    with db.transaction() as conn:
        keyed_from, _ = audit_store.keyed_from(conn)
        if keyed_from is None:
            audit_store.append(conn, at=clock(), actor="ringfence", action="audit.key.configured", target="audit",
                               details={"key_id": key_id(key)})


def verify(db: Database, *, actor: Actor | None = None, checkpoint: Checkpoint | None = None,
           key: bytes | None = None) -> VerifyResult:
    """Walk the whole chain and report the first entry that was changed, deleted, reordered or forged.

    ``actor`` is None for local use (the CLI reading the database directly).  The chain is checked
    with ``key`` or else the audit key configured for ``db`` (:func:`use_audit_key`), and against
    ``checkpoint`` if given.
    """
    if actor is not None:
        actor.require(Role.ADMIN, "verifying the audit log")
    key = key if key is not None else db.audit_key
    with db.transaction() as conn:
        head = audit_store.head(conn)
        count, broken = verify_chain(audit_store.iter_entries(conn), head,
                                     lambda digest: audit_store.find_hash(conn, digest), key=key,
                                     checkpoint=checkpoint)
    return VerifyResult(entries=count, head_seq=head[0], broken=broken, keyed=key is not None,
                        checkpoint_seq=checkpoint.seq if checkpoint else None)


def list_entries(db: Database, *, actor: Actor, limit: int = 50, before: int | None = None, action: str = "",
                 who: str = "") -> list[AuditEntry]:
    """The newest entries first."""
    actor.require(Role.VIEWER, "reading the audit log")
    with db.transaction() as conn:
        return audit_store.list_entries(conn, limit=limit, before=before, action=action, actor=who)


# --- checkpoints ------------------------------------------------------------------------------

def _signed_part(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def checkpoint_key(settings: Settings, *, create: bool = False) -> tuple[Ed25519PrivateKey | None, Path]:
    """The checkpoint signing key and its path; ``create`` makes one (0600, public key beside it as .pub)."""
    path = settings.audit_checkpoint_key_file or settings.data_dir / "audit-checkpoint.key"
    if path.is_file():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise InputError.single("audit_checkpoint_key_file", f"{path} is not an Ed25519 private key",
                                    expected="a PEM Ed25519 key (delete it to have a new one made)")
        return loaded, path
    if not create:
        return None, path
    private = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    path.with_suffix(".pub").write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, path


def write_checkpoint(db: Database, settings: Settings, *, clock: Clock, out: Path | None = None,
                     key: bytes | None = None) -> tuple[Path, dict[str, Any]]:
    """Verify the chain (with ``key`` or the key configured for ``db``), sign its head, write the checkpoint file.

    Refused when the chain is broken: no checkpoint signs a rewritten log.
    """
    key = key if key is not None else db.audit_key
    result = verify(db, key=key)
    if result.broken is not None:
        raise InputError.single("audit log", f"is broken at entry {result.broken.seq} ({result.broken.kind}): "
                                f"{result.broken.message}", expected="an intact chain (no checkpoint signs a broken one)")
    private, _ = checkpoint_key(settings, create=True)
    assert private is not None
    with db.transaction() as conn:
        head = audit_store.head(conn)
        keyed_from, _ = audit_store.keyed_from(conn)
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    doc: dict[str, Any] = {"format": _FORMAT, "seq": head[0], "hash": head[1], "keyed_from": keyed_from,
                           "key_id": key_id(key) if key is not None else "", "at": clock().isoformat(),
                           "signer": public.hex()}
    doc["signature"] = private.sign(_signed_part(doc)).hex()
    path = out if out is not None else checkpoint_folder(settings) / f"checkpoint-{head[0]:012d}.json"
    if path.is_dir():
        path = path / f"checkpoint-{head[0]:012d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path, doc


def _public_key(settings: Settings, public_key_file: Path | None) -> Ed25519PublicKey:
    if public_key_file is None:
        private, path = checkpoint_key(settings)
        if private is not None:
            return private.public_key()
        public_key_file = path.with_suffix(".pub")
    if not public_key_file.is_file():
        raise InputError.single("public-key", f"{public_key_file} does not exist",
                                expected="the checkpoint signer's public key (audit-checkpoint.pub)")
    loaded = serialization.load_pem_public_key(public_key_file.read_bytes())
    if not isinstance(loaded, Ed25519PublicKey):
        raise InputError.single("public-key", f"{public_key_file} is not an Ed25519 public key",
                                expected="audit-checkpoint.pub as `ringfence audit checkpoint` wrote it")
    return loaded


def checkpoint_folder(settings: Settings) -> Path:
    """Where signed checkpoints are written (``audit_checkpoint_dir``, default <data_dir>/audit-checkpoints)."""
    return settings.audit_checkpoint_dir or settings.data_dir / "audit-checkpoints"


def latest_checkpoint(folder: Path) -> dict[str, Any] | None:
    """The newest checkpoint document in ``folder`` (highest entry), as written; None when there is none.

    Served at ``GET /v1/audit/checkpoint`` and copied into every cohort manifest of the signed channel,
    so agents and mirrors hold it outside the database.  Its signature is checked by whoever verifies
    against it (:func:`parse_checkpoint`), never trusted here.
    """
    best: tuple[int, dict[str, Any]] | None = None
    for path in folder.glob("checkpoint-*.json") if folder.is_dir() else ():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("format") == _FORMAT and isinstance(doc.get("seq"), int) \
                and (best is None or doc["seq"] > best[0]):
            best = (doc["seq"], doc)
    return best[1] if best else None


def read_checkpoint(path: Path, settings: Settings, *, public_key_file: Path | None = None) -> Checkpoint:
    """A checkpoint file whose signature verifies under the trusted public key (never the one it names)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError.single("against", f"{path} cannot be read: {e}",
                                expected="a file `ringfence audit checkpoint` wrote") from e
    return parse_checkpoint(text, str(path), settings, public_key_file=public_key_file)


def parse_checkpoint(text: str, source: str, settings: Settings, *, public_key_file: Path | None = None) -> Checkpoint:
    """A checkpoint (a file, ``GET /v1/audit/checkpoint``, or a cohort manifest holding ``audit_checkpoint``)
    whose signature verifies under the trusted public key (never the one it names)."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise InputError.single("against", f"{source} cannot be read as JSON: {e}",
                                expected="a file `ringfence audit checkpoint` wrote") from e
    if isinstance(doc, dict) and isinstance(doc.get("audit_checkpoint"), dict):
        doc = doc["audit_checkpoint"]  # a cohort manifest of the signed channel, as an agent or a mirror holds it
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise InputError.single("against", f"{source} is not an audit checkpoint", expected=f"format {_FORMAT}")
    path = source
    try:
        _public_key(settings, public_key_file).verify(bytes.fromhex(str(doc.get("signature", ""))), _signed_part(doc))
    except (InvalidSignature, ValueError) as e:
        raise InputError.single("against", f"{path}: the signature does not verify under the checkpoint key",
                                expected="a checkpoint signed with audit-checkpoint.key, unchanged") from e
    seq, digest, keyed = doc.get("seq"), doc.get("hash"), doc.get("keyed_from")
    if not isinstance(seq, int) or not isinstance(digest, str) or not (keyed is None or isinstance(keyed, int)):
        raise InputError.single("against", f"{path} has no valid seq/hash", expected="a checkpoint as written")
    return Checkpoint(seq=seq, hash=digest, keyed_from=keyed, key_id=str(doc.get("key_id", "")))
