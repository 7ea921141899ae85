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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["GENESIS", "AuditEntry", "ChainBreak", "canonical_time", "entry_digest", "verify_chain"]

GENESIS = "0" * 64


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


def entry_digest(entry: AuditEntry) -> str:
    """SHA-256 over the canonical JSON of every field but ``hash``."""
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
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where and how the chain is broken."""

    seq: int
    kind: str  # "changed" | "deleted" | "reordered"
    message: str


def verify_chain(entries: Iterable[AuditEntry], head: tuple[int, str] | None = None,
                 find_hash: Callable[[str], int | None] | None = None) -> tuple[int, ChainBreak | None]:
    """Check the chain; return (entries checked, first break or None).

    ``head`` is the (seq, hash) the log recorded for its last entry; without
    it, deletions at the very end cannot be seen.  ``find_hash`` looks up the
    sequence number of the entry with a given hash anywhere in the log, so a
    broken link that points at another entry is reported as *reordered*.
    """
    prev_hash = GENESIS
    expected_seq = 1
    seen: set[str] = set()
    count = 0
    for entry in entries:
        count += 1
        if entry_digest(entry) != entry.hash:
            return count, ChainBreak(entry.seq, "changed",
                                     f"entry {entry.seq} ({entry.action} by {entry.actor}) was changed: "
                                     "its content no longer matches its hash")
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
        seen.add(entry.hash)
        prev_hash = entry.hash
        expected_seq += 1
    if head is not None:
        head_seq, head_hash = head
        if head_seq != expected_seq - 1 or (head_seq > 0 and head_hash != prev_hash):
            if head_seq >= expected_seq:
                return count, ChainBreak(expected_seq, "deleted",
                                         f"entries {expected_seq}-{head_seq} deleted from the end of the log")
            return count, ChainBreak(max(head_seq, 1), "changed",
                                     f"the log's head records entry {head_seq}, but the log ends at {expected_seq - 1}")
    return count, None
