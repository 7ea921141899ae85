"""Reading and verifying the audit log."""

from __future__ import annotations

from dataclasses import dataclass

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.domain.access import Role
from ringfence.domain.audit import AuditEntry, ChainBreak, verify_chain
from ringfence.services.context import Actor

__all__ = ["VerifyResult", "list_entries", "verify"]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of a chain check."""

    entries: int
    head_seq: int
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        """True when the chain is intact."""
        return self.broken is None


def verify(db: Database, *, actor: Actor | None = None) -> VerifyResult:
    """Walk the whole chain and report the first entry that was changed, deleted or reordered.

    ``actor`` is None for local use (the CLI reading the database directly).
    """
    if actor is not None:
        actor.require(Role.ADMIN, "verifying the audit log")
    with db.transaction() as conn:
        head = audit_store.head(conn)
        count, broken = verify_chain(audit_store.iter_entries(conn), head,
                                     lambda digest: audit_store.find_hash(conn, digest))
    return VerifyResult(entries=count, head_seq=head[0], broken=broken)


def list_entries(db: Database, *, actor: Actor, limit: int = 50, before: int | None = None, action: str = "",
                 who: str = "") -> list[AuditEntry]:
    """The newest entries first."""
    actor.require(Role.VIEWER, "reading the audit log")
    with db.transaction() as conn:
        return audit_store.list_entries(conn, limit=limit, before=before, action=action, actor=who)
