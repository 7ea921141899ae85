"""The hash chain of the audit log.

Every state-changing action appends one :class:`AuditEntry`.  Each entry's
``hash`` is the SHA-256 of its own canonical content *including* the hash of
the entry before it (``prev_hash``); the first entry links to
:data:`GENESIS`.  Rules checked by :func:`verify_chain`, in this order, for
entries read in ``seq`` order:

1. an entry's stored hash equals the digest of its content → else *changed*;
2. ``seq`` numbers are contiguous from 1 → else entries were *deleted*;
3. ``prev_hash`` equals the previous entry's hash → else *reordered* (when
   it names another entry in the log) or *changed*;
4. the last entry matches the recorded head (sequence and hash) → else
   entries at the end were *deleted*.

The first rule broken is reported with the ``seq`` of the entry where the
chain breaks.  Pure functions; the store does the reading.

**Keyed chain.**  From the entry whose action is :data:`KEYED_ACTION` (the
*switch-over*) on, every ``hash`` is an HMAC-SHA256 under a key held outside
the database (configuration, environment or a key file), so nobody who can
only write the database can recompute it.  Entries before the switch-over (logs
written before keys existed) keep their plain SHA-256 and still verify; the
switch-over entry links to them, so changing one of them breaks the link.
With a key, :func:`verify_chain` also requires the switch-over to exist (else
the whole log may have been rewritten unkeyed) and every later entry to carry
a valid HMAC.

**Checkpoints.**  A :class:`Checkpoint` is the head ``(seq, hash)`` at some
moment, signed and kept outside the database.  Verified against one, the
entry at the checkpoint's ``seq`` must carry exactly its hash, which — each
hash covering the one before — proves that no entry up to it was changed,
dropped, inserted or reordered, and the log must reach at least that ``seq``
(else its tail was cut).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["GENESIS", "KEYED_ACTION", "AuditEntry", "ChainBreak", "Checkpoint", "canonical_time", "entry_digest",
           "key_id", "verify_chain"]

GENESIS = "0" * 64
#: The action of the switch-over entry: it and every entry after it are keyed (HMAC-SHA256).
KEYED_ACTION = "audit.chain.keyed"


def key_id(key: bytes) -> str:
    """A fingerprint of an audit key that reveals nothing of it (names the key in errors and checkpoints)."""
    return hashlib.sha256(b"ringfence-audit-key:" + key).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The head of the chain at one moment, as signed and stored outside the database."""

    seq: int
    hash: str
    keyed_from: int | None = None
    key_id: str = ""


def canonical_time(at: datetime) -> str:
    """UTC ISO-8601 with microseconds; naive datetimes are taken as UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One appended action: who did what to which object, when, from where and why."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    source: str = ""
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""


def entry_digest(entry: AuditEntry, key: bytes | None = None) -> str:
    """SHA-256 (or, with ``key``, HMAC-SHA256) over the canonical JSON of every field but ``hash``."""
    doc = {
        "seq": entry.seq,
        "at": canonical_time(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "source": entry.source,
        "reason": entry.reason,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
    if key is not None:
        return hmac.new(key, blob, hashlib.sha256).hexdigest()
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where and how the chain is broken."""

    seq: int
    kind: str  # "changed" | "deleted" | "reordered" | "appended" | "unkeyed"
    message: str


def verify_chain(entries: Iterable[AuditEntry], head: tuple[int, str] | None = None,
                 find_hash: Callable[[str], int | None] | None = None, *, key: bytes | None = None,
                 checkpoint: Checkpoint | None = None) -> tuple[int, ChainBreak | None]:
    """Check the chain; return (entries checked, first break or None).

    ``head`` is the (seq, hash) the log recorded for its last entry; without
    it, deletions at the very end cannot be seen.  ``find_hash`` looks up the
    sequence number of the entry with a given hash anywhere in the log, so a
    broken link that points at another entry is reported as *reordered*.
    ``key`` is the audit key: keyed entries are checked with it, and a log
    without a switch-over is reported.  ``checkpoint`` is a trusted head from
    the past (see the module docstring).
    """
    prev_hash = GENESIS
    expected_seq = 1
    seen: set[str] = set()
    count = 0
    keyed_from: int | None = None
    for entry in entries:
        count += 1
        if entry.action == KEYED_ACTION and keyed_from is None:
            keyed_from = entry.seq
        if keyed_from is not None and key is None:
            return count, ChainBreak(entry.seq, "unkeyed", f"entries from {keyed_from} on are keyed (HMAC); verifying "
                                     "them needs the audit key (audit_key or audit_key_file)")
        if entry_digest(entry, key if keyed_from is not None else None) != entry.hash:
            if keyed_from is not None and entry_digest(entry) == entry.hash:
                return count, ChainBreak(entry.seq, "appended",
                                         f"entry {entry.seq} ({entry.action} by {entry.actor}) was not written with "
                                         "the audit key: forged or rewritten without it")
            return count, ChainBreak(entry.seq, "changed",
                                     f"entry {entry.seq} ({entry.action} by {entry.actor}) was changed: "
                                     "its content no longer matches its hash"
                                     + (" (or the audit key is not the one it was written with)"
                                        if keyed_from is not None else ""))
        if entry.seq != expected_seq:
            missing = (f"entry {expected_seq}" if entry.seq == expected_seq + 1
                       else f"entries {expected_seq}-{entry.seq - 1}")
            return count, ChainBreak(expected_seq, "deleted",
                                     f"{missing} deleted: the log jumps from {expected_seq - 1} to {entry.seq}")
        if entry.prev_hash != prev_hash:
            linked = find_hash(entry.prev_hash) if find_hash is not None else None
            if entry.prev_hash in seen or linked is not None:
                where = f" but was written after entry {linked}" if linked is not None else ""
                return count, ChainBreak(entry.seq, "reordered",
                                         f"entry {entry.seq} does not follow entry {entry.seq - 1}{where}: "
                                         "entries were reordered")
            return count, ChainBreak(entry.seq, "changed",
                                     f"entry {entry.seq} does not follow entry {entry.seq - 1}: its link was changed")
        if checkpoint is not None and entry.seq == checkpoint.seq and entry.hash != checkpoint.hash:
            return count, ChainBreak(entry.seq, "changed",
                                     f"entry {entry.seq} is not the one checkpoint {checkpoint.seq} signed: entries up "
                                     "to it were changed, dropped, inserted or the chain rewritten")
        seen.add(entry.hash)
        prev_hash = entry.hash
        expected_seq += 1
    last = expected_seq - 1
    if checkpoint is not None:
        if last < checkpoint.seq:
            return count, ChainBreak(last + 1, "deleted", f"entries {last + 1}-{checkpoint.seq} deleted from the end of "
                                     f"the log: checkpoint {checkpoint.seq} signed them, the log ends at {last}")
        if checkpoint.keyed_from is not None and keyed_from != checkpoint.keyed_from:
            return count, ChainBreak(checkpoint.keyed_from, "changed",
                                     f"the checkpoint says the keyed chain starts at entry {checkpoint.keyed_from}, "
                                     f"the log says {keyed_from}")
    if key is not None and keyed_from is None and count:
        return count, ChainBreak(1, "unkeyed", "an audit key is configured but no entry of the log is keyed: the "
                                 "log was written or rewritten without the key")
    if head is not None:
        head_seq, head_hash = head
        if head_seq != last or (head_seq > 0 and head_hash != prev_hash):
            if head_seq >= expected_seq:
                return count, ChainBreak(expected_seq, "deleted",
                                         f"entries {expected_seq}-{head_seq} deleted from the end of the log")
            return count, ChainBreak(max(head_seq, 1), "changed",
                                     f"the log's head records entry {head_seq}, but the log ends at {last}")
    return count, None
