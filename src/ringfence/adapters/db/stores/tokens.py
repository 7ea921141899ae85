"""Operator API tokens, stored only as SHA-256 hashes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ringfence.adapters.db.stores.base import update_versioned, utc
from ringfence.adapters.db.tables import ApiTokenRow
from ringfence.domain.access import Role
from ringfence.errors import NotFoundError

__all__ = ["TokenRecord", "create", "find_by_hash", "get", "list_all", "revoke", "touch"]


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What is known of a token: never the token itself."""

    id: int
    name: str
    role: Role
    prefix: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None
    version: int

    @property
    def active(self) -> bool:
        """False once revoked."""
        return self.revoked_at is None




def _record(r: Any) -> TokenRecord:
    return TokenRecord(id=r.id, name=r.name, role=Role(r.role), prefix=r.prefix, created_at=utc(r.created_at)
                       or r.created_at, created_by=r.created_by, revoked_at=utc(r.revoked_at),
                       last_used_at=utc(r.last_used_at), version=r.version)


def create(conn: Connection, *, name: str, role: Role, token_hash: str, prefix: str, now: datetime,
           created_by: str) -> TokenRecord:
    """Store a new token's hash."""
    result = conn.execute(insert(ApiTokenRow).values(name=name, role=role.value, token_hash=token_hash, prefix=prefix,
                                                     created_at=now, created_by=created_by, version=1))
    pk = result.inserted_primary_key
    assert pk is not None
    return get(conn, int(pk[0]))


def get(conn: Connection, token_id: int) -> TokenRecord:
    """One token by id."""
    row = conn.execute(select(ApiTokenRow).where(ApiTokenRow.id == token_id)).first()
    if row is None:
        raise NotFoundError(f"token {token_id} not found")
    return _record(row)


def find_by_hash(conn: Connection, token_hash: str) -> TokenRecord | None:
    """The token with this hash, if any (revoked ones included)."""
    row = conn.execute(select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash)).first()
    return _record(row) if row is not None else None


def list_all(conn: Connection, *, include_revoked: bool = False) -> list[TokenRecord]:
    """Every token, oldest first."""
    stmt = select(ApiTokenRow).order_by(ApiTokenRow.id)
    if not include_revoked:
        stmt = stmt.where(ApiTokenRow.revoked_at.is_(None))
    return [_record(r) for r in conn.execute(stmt)]


def revoke(conn: Connection, token_id: int, *, now: datetime, expected_version: int) -> TokenRecord:
    """Revoke a token (optimistic: fails if it changed since it was read)."""
    update_versioned(conn, ApiTokenRow.__table__, {"id": token_id}, expected_version,  # type: ignore[arg-type]
                     {"revoked_at": now}, what=f"token {token_id}")
    return get(conn, token_id)


def touch(conn: Connection, token_id: int, now: datetime) -> None:
    """Record when a token was last used (not versioned: a usage stamp, not state)."""
    conn.execute(update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_used_at=now))
