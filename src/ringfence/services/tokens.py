"""Operator API tokens: created, shown once, stored as hashes, checked, revoked."""

from __future__ import annotations

import hashlib
import re
import secrets

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.adapters.db.stores import tokens as token_store
from ringfence.adapters.db.stores.tokens import TokenRecord
from ringfence.domain.access import Role
from ringfence.errors import AuthenticationError, InputError, shown
from ringfence.services.context import Actor, Clock

__all__ = ["TOKEN_PREFIX", "authenticate", "create_token", "ensure_admin_token", "hash_token", "list_tokens",
           "revoke_token"]

TOKEN_PREFIX = "rf_"  # noqa: S105 - a prefix that makes leaked tokens easy to find, not a secret
#: A token name (also the JSON Schema pattern of the API field that takes one).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"
_NAME = re.compile(NAME_PATTERN)


def hash_token(token: str) -> str:
    """SHA-256 of the token.  Tokens carry 256 random bits, so a fast hash is enough."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _parse_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InputError.single("role", f"is {shown(role)}", expected="one of viewer, operator, approver, admin") from None


def create_token(db: Database, *, name: str, role: str, actor: Actor, clock: Clock,
                 reason: str = "") -> tuple[str, TokenRecord]:
    """Create a token; return the plaintext (shown once, never stored) and its record."""
    actor.require(Role.ADMIN, "creating tokens")
    if not _NAME.match(name):
        raise InputError.single("name", f"is {shown(name)}", expected="1-100 letters, digits and . _ @ -")
    parsed = _parse_role(role)
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock()
    with db.transaction() as conn:
        record = token_store.create(conn, name=name, role=parsed, token_hash=hash_token(plaintext),
                                    prefix=plaintext[:8], now=now, created_by=actor.name)
        audit_store.append(conn, at=now, actor=actor.name, action="token.create", target=f"token/{record.id}",
                           source=actor.source, reason=reason, details={"name": name, "role": parsed.value})
    return plaintext, record


def authenticate(db: Database, token: str, *, source: str, clock: Clock) -> Actor:
    """The actor a bearer token stands for; :class:`AuthenticationError` if unknown or revoked."""
    if not token:
        raise AuthenticationError("no token: send 'Authorization: Bearer <token>' (see `ringfence token create`)")
    with db.transaction() as conn:
        record = token_store.find_by_hash(conn, hash_token(token))
        if record is None:
            raise AuthenticationError("unknown token")
        if not record.active:
            raise AuthenticationError(f"token {shown(record.name)} was revoked")
        now = clock()
        if record.last_used_at is None or (now - record.last_used_at).total_seconds() > 60:
            token_store.touch(conn, record.id, now)  # at most once a minute: a stamp, not a write per request
    return Actor(name=record.name, role=record.role, source=source)


def list_tokens(db: Database, *, actor: Actor, include_revoked: bool = False) -> list[TokenRecord]:
    """Every token's record (never the token)."""
    actor.require(Role.ADMIN, "listing tokens")
    with db.transaction() as conn:
        return token_store.list_all(conn, include_revoked=include_revoked)


def revoke_token(db: Database, token_id: int, *, actor: Actor, clock: Clock, reason: str = "") -> TokenRecord:
    """Revoke a token; it stops working at once."""
    actor.require(Role.ADMIN, "revoking tokens")
    now = clock()
    with db.transaction() as conn:
        current = token_store.get(conn, token_id)
        if not current.active:
            return current
        record = token_store.revoke(conn, token_id, now=now, expected_version=current.version)
        audit_store.append(conn, at=now, actor=actor.name, action="token.revoke", target=f"token/{token_id}",
                           source=actor.source, reason=reason, details={"name": record.name})
    return record


def ensure_admin_token(db: Database, *, clock: Clock) -> str | None:
    """On first start, create an admin token and return it; None when an active admin token exists."""
    with db.transaction() as conn:
        if any(t.role is Role.ADMIN for t in token_store.list_all(conn)):
            return None
    system = Actor(name="ringfence-bootstrap", role=Role.ADMIN, source="local")
    plaintext, _ = create_token(db, name="admin", role=Role.ADMIN.value, actor=system, clock=clock,
                                reason="first start: no active admin token")
    return plaintext
