"""Enrolment tokens (hashes only) and remediation scripts of the signed channel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ringfence.adapters.db.stores.base import utc
from ringfence.adapters.db.tables import EnrolmentTokenRow, HostCredentialRow, RemediationRow

__all__ = [
    "EnrolmentToken",
    "add_remediation",
    "consume_enrolment_token",
    "create_enrolment_token",
    "enrolment_token_by_hash",
    "get_remediation",
    "has_active_credential",
    "list_enrolment_tokens",
    "remediations",
    "revoke_enrolment_token",
    "revoke_host_credential",
]


@dataclass(frozen=True, slots=True)
class EnrolmentToken:
    """What is known of an enrolment token: never the token itself."""

    id: int
    tenant: str
    prefix: str
    uses: int
    uses_left: int
    expires_at: datetime
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    host_id: str | None = None  # a re-enrolment token: it enrols this host only

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"id": self.id, "tenant": self.tenant, "prefix": self.prefix, "uses": self.uses,
                "uses_left": self.uses_left, "expires_at": self.expires_at.isoformat(),
                "created_at": self.created_at.isoformat(), "created_by": self.created_by,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None, "host_id": self.host_id}


def _token(r: Any) -> EnrolmentToken:
    expires, created = utc(r.expires_at), utc(r.created_at)
    assert expires is not None
    assert created is not None
    return EnrolmentToken(id=r.id, tenant=r.tenant, prefix=r.prefix, uses=r.uses, uses_left=r.uses_left,
                          expires_at=expires, created_at=created, created_by=r.created_by, revoked_at=utc(r.revoked_at),
                          host_id=r.host_id)


def create_enrolment_token(conn: Connection, *, tenant: str, token_hash: str, prefix: str, uses: int,
                           expires_at: datetime, now: datetime, actor: str,
                           host_id: str | None = None) -> EnrolmentToken:
    """Store a new token's hash (``host_id``: a re-enrolment token bound to that host)."""
    result = conn.execute(insert(EnrolmentTokenRow).values(
        tenant=tenant, token_hash=token_hash, prefix=prefix, uses=uses, uses_left=uses, expires_at=expires_at,
        created_at=now, created_by=actor, version=1, host_id=host_id))
    pk = result.inserted_primary_key
    assert pk is not None
    row = conn.execute(select(EnrolmentTokenRow).where(EnrolmentTokenRow.id == int(pk[0]))).one()
    return _token(row)


def enrolment_token_by_hash(conn: Connection, token_hash: str) -> EnrolmentToken | None:
    """The token with this hash (spent, expired and revoked ones included)."""
    row = conn.execute(select(EnrolmentTokenRow).where(EnrolmentTokenRow.token_hash == token_hash)).first()
    return _token(row) if row is not None else None


def lock_enrolment_token(conn: Connection, token_id: int) -> None:
    """Hold the token's row until the transaction ends (PostgreSQL; SQLite has one writer at a time), so two
    enrolments with one token are decided one after the other, each seeing what the other committed."""
    conn.execute(select(EnrolmentTokenRow.id).where(EnrolmentTokenRow.id == token_id).with_for_update())


def consume_enrolment_token(conn: Connection, token_id: int, now: datetime) -> bool:
    """Use the token once if it still has uses, is not revoked and has not expired.

    One conditional UPDATE: two agents racing for the last use cannot both win.
    """
    result = conn.execute(update(EnrolmentTokenRow).where(
        EnrolmentTokenRow.id == token_id, EnrolmentTokenRow.uses_left > 0, EnrolmentTokenRow.revoked_at.is_(None),
        EnrolmentTokenRow.expires_at > now).values(uses_left=EnrolmentTokenRow.uses_left - 1,
                                                   version=EnrolmentTokenRow.version + 1))
    return int(result.rowcount) == 1


def list_enrolment_tokens(conn: Connection, tenant: str = "") -> list[EnrolmentToken]:
    """Every enrolment token, newest first."""
    stmt = select(EnrolmentTokenRow).order_by(EnrolmentTokenRow.id.desc())
    if tenant:
        stmt = stmt.where(EnrolmentTokenRow.tenant == tenant)
    return [_token(r) for r in conn.execute(stmt)]


def revoke_enrolment_token(conn: Connection, token_id: int, now: datetime) -> bool:
    """Revoke a token; False if unknown or revoked already."""
    result = conn.execute(update(EnrolmentTokenRow).where(EnrolmentTokenRow.id == token_id,
                                                          EnrolmentTokenRow.revoked_at.is_(None))
                          .values(revoked_at=now, version=EnrolmentTokenRow.version + 1))
    return int(result.rowcount) == 1


def add_remediation(conn: Connection, *, remediation_id: str, selector: str, file_name: str, sha256: str, size: int,
                    hosts: Sequence[str] | str, reason: str, actor: str, now: datetime) -> None:
    """Store a remediation script's record (its bytes are in the artifact store)."""
    conn.execute(insert(RemediationRow).values(id=remediation_id, selector=selector, file_name=file_name,
                                               sha256=sha256, size=size, hosts=hosts if isinstance(hosts, str)
                                               else list(hosts), reason=reason, active=True, created_at=now,
                                               created_by=actor))


def _remediation(r: Any) -> dict[str, Any]:
    return {"id": r.id, "selector": r.selector, "file_name": r.file_name, "sha256": r.sha256, "size": int(r.size),
            "hosts": r.hosts, "reason": r.reason, "active": bool(r.active), "created_at": utc(r.created_at),
            "created_by": r.created_by}


def get_remediation(conn: Connection, remediation_id: str) -> dict[str, Any] | None:
    """One remediation by id."""
    row = conn.execute(select(RemediationRow).where(RemediationRow.id == remediation_id)).first()
    return _remediation(row) if row is not None else None


def remediations(conn: Connection, *, active_only: bool = False) -> list[dict[str, Any]]:
    """Remediation scripts, oldest first."""
    stmt = select(RemediationRow).order_by(RemediationRow.created_at, RemediationRow.id)
    if active_only:
        stmt = stmt.where(RemediationRow.active.is_(True))
    return [_remediation(r) for r in conn.execute(stmt)]


def has_active_credential(conn: Connection, host_id: str) -> bool:
    """Whether the host holds a credential that is not revoked."""
    row = conn.execute(select(HostCredentialRow.host_id).where(HostCredentialRow.host_id == host_id,
                                                               HostCredentialRow.revoked_at.is_(None))).first()
    return row is not None


def revoke_host_credential(conn: Connection, host_id: str, now: datetime) -> bool:
    """Revoke a host's credential; False if it has none or it is revoked already."""
    result = conn.execute(update(HostCredentialRow).where(HostCredentialRow.host_id == host_id,
                                                          HostCredentialRow.revoked_at.is_(None))
                          .values(revoked_at=now))
    return int(result.rowcount) == 1
