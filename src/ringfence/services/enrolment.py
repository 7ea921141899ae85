"""Agent enrolment: one-time enrolment tokens, per-host credentials, facts from agents, revocation.

* An operator creates an enrolment token for a tenant (``rfe_…``, shown once, stored as SHA-256),
  with a number of uses and an expiry.
* An agent enrols with it: in one transaction the token loses one use (a conditional UPDATE, so
  two agents cannot both take the last use), the host is upserted into the inventory under the
  token's tenant, and a new host credential (``rfh_…``) replaces any earlier one of that host.
  Bad facts are rejected before anything changes and do not use the token up.
* A host that holds an active credential cannot be taken over with a tenant's enrolment token: it is
  re-enrolled only with its current credential (``Bearer rfh_…``; the credential is rotated) or with
  a one-use re-enrolment token an operator issued for that host id (``create_reenrolment_token``);
  anything else answers 409 naming those two ways.
* The agent refreshes its facts with its credential; the fields operators own (tenant, services,
  tier and operator labels) are kept.
* Revoking a credential takes effect at once in every server process: credentials are checked
  against the database on every request (one indexed lookup), not cached.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.adapters.db.stores import channel as channel_store
from ringfence.adapters.db.stores import health as health_store
from ringfence.adapters.db.stores import inventory as inventory_store
from ringfence.adapters.db.stores.channel import EnrolmentToken
from ringfence.adapters.inventory.records import Issues, host_from_record
from ringfence.domain.access import Role
from ringfence.domain.model import Host, Tenant, TenantId
from ringfence.errors import AuthenticationError, ConflictError, InputError, NotFoundError, PermissionDeniedError, shown
from ringfence.services.context import Actor, Clock
from ringfence.services.health import HOST_TOKEN_PREFIX
from ringfence.services.host_tokens import record_revocation

__all__ = [
    "ENROL_TOKEN_PREFIX",
    "create_enrolment_token",
    "create_reenrolment_token",
    "enrol",
    "list_enrolment_tokens",
    "refresh_facts",
    "revoke_credential",
    "revoke_enrolment_token",
]

ENROL_TOKEN_PREFIX = "rfe_"  # noqa: S105 - a recognisable prefix, not a secret
MAX_USES = 100_000
MAX_EXPIRY = timedelta(days=365)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_enrolment_token(db: Database, *, tenant: str, uses: int = 1, expires_in: timedelta = timedelta(hours=24),
                           actor: Actor, clock: Clock, reason: str = "") -> tuple[str, EnrolmentToken]:
    """Create an enrolment token for a tenant (created if new); return the token (shown once) and its record."""
    actor.require(Role.OPERATOR, "creating enrolment tokens")
    issues = Issues()
    if not 1 <= uses <= MAX_USES:
        issues.add("", "uses", f"is {uses}", expected=f"1 … {MAX_USES:,}")
    seconds = expires_in.total_seconds()
    if not math.isfinite(seconds) or not 60 <= seconds <= MAX_EXPIRY.total_seconds():
        issues.add("", "expires", f"is {expires_in}", expected="between 1 minute and 365 days, e.g. 24h")
    host_check = Issues()
    host_from_record({"id": "probe", "hostname": "probe", "tenant": tenant, "os_family": "linux"}, "", host_check)
    for issue in host_check.items:
        if issue.field == "tenant":
            issues.add("", "tenant", issue.message, issue.expected)
    if not tenant:
        issues.add("", "tenant", "is missing", expected="the tenant the enrolled hosts belong to")
    issues.raise_if_any("enrolment token")
    plaintext = ENROL_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock()
    with db.transaction() as conn:
        if not inventory_store.existing_tenant_ids(conn, [tenant]):
            inventory_store.upsert_tenants(conn, [Tenant(id=TenantId(tenant), name=tenant)], now)
        record = channel_store.create_enrolment_token(conn, tenant=tenant, token_hash=_hash(plaintext),
                                                      prefix=plaintext[:8], uses=uses, expires_at=now + expires_in,
                                                      now=now, actor=actor.name)
        audit_store.append(conn, at=now, actor=actor.name, action="enrolment-token.create",
                           target=f"enrolment-token/{record.id}", source=actor.source, reason=reason,
                           details={"tenant": tenant, "uses": uses, "expires_at": record.expires_at.isoformat()})
    return plaintext, record


def create_reenrolment_token(db: Database, host_id: str, *, expires_in: timedelta = timedelta(hours=24),
                             actor: Actor, clock: Clock, reason: str = "") -> tuple[str, EnrolmentToken]:
    """A one-use enrolment token bound to one existing host: it may re-enrol that host (and no other).

    For a host whose credential is lost (disk reimaged, agent reinstalled) while its old credential is
    still active; a tenant's ordinary enrolment token cannot re-enrol such a host.
    """
    actor.require(Role.OPERATOR, "issuing re-enrolment tokens")
    seconds = expires_in.total_seconds()
    if not math.isfinite(seconds) or not 60 <= seconds <= MAX_EXPIRY.total_seconds():
        raise InputError.single("expires", f"is {expires_in}", expected="between 1 minute and 365 days, e.g. 24h")
    plaintext = ENROL_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock()
    with db.transaction() as conn:
        host = inventory_store.get_host(conn, host_id)
        if host is None:
            raise NotFoundError(f"host {shown(host_id)} is not in the inventory; a new host enrols with an ordinary "
                                "enrolment token (`ringfence enrol token create`)")
        record = channel_store.create_enrolment_token(conn, tenant=host.tenant, token_hash=_hash(plaintext),
                                                      prefix=plaintext[:8], uses=1, expires_at=now + expires_in,
                                                      now=now, actor=actor.name, host_id=host_id)
        audit_store.append(conn, at=now, actor=actor.name, action="enrolment-token.create-reenrol",
                           target=f"host/{host_id}", source=actor.source, reason=reason,
                           details={"enrolment_token": record.id, "tenant": host.tenant,
                                    "expires_at": record.expires_at.isoformat()})
    return plaintext, record


def list_enrolment_tokens(db: Database, *, actor: Actor, tenant: str = "") -> list[EnrolmentToken]:
    """Every enrolment token's record (never the token)."""
    actor.require(Role.OPERATOR, "listing enrolment tokens")
    with db.transaction() as conn:
        return channel_store.list_enrolment_tokens(conn, tenant)


def revoke_enrolment_token(db: Database, token_id: int, *, actor: Actor, clock: Clock, reason: str = "") -> None:
    """Revoke an enrolment token; agents can no longer enrol with it."""
    actor.require(Role.OPERATOR, "revoking enrolment tokens")
    now = clock()
    with db.transaction() as conn:
        if not channel_store.revoke_enrolment_token(conn, token_id, now):
            raise NotFoundError(f"enrolment token {token_id} not found or revoked already")
        audit_store.append(conn, at=now, actor=actor.name, action="enrolment-token.revoke",
                           target=f"enrolment-token/{token_id}", source=actor.source, reason=reason, details={})


def _parse_host(record: Any, tenant: str) -> Host:
    if not isinstance(record, dict):
        raise InputError.single("host", "is not an object", expected='{"id": …, "hostname": …, "os_family": …}')
    issues = Issues()
    host = host_from_record({**record, "tenant": tenant}, "host", issues)
    issues.raise_if_any("host facts")
    assert host is not None
    return host


def _merge(existing: Host | None, reported: Host) -> Host:
    """Facts from the agent; tenant, services, tier and operator labels stay as operators set them."""
    if existing is None:
        return replace(reported, services=())
    return replace(reported, tenant=existing.tenant, services=existing.services, tier=existing.tier,
                   labels={**reported.labels, **existing.labels})


_ASK_FOR_A_NEW_ONE = "ask an operator for a new one (`ringfence enrol token create --tenant TENANT --uses N`)"


def _why_unusable(token: EnrolmentToken | None, now: datetime) -> str | None:
    if token is None:
        return "unknown enrolment token"
    if token.revoked_at is not None:
        return f"enrolment token {token.prefix}… was revoked; {_ASK_FOR_A_NEW_ONE}"
    if token.expires_at <= now:
        return f"enrolment token {token.prefix}… expired at {token.expires_at.isoformat()}; {_ASK_FOR_A_NEW_ONE}"
    if token.uses_left <= 0:
        return f"enrolment token {token.prefix}… has been used up ({token.uses} use(s)); {_ASK_FOR_A_NEW_ONE}"
    return None


def _unusable(why: str) -> PermissionDeniedError:
    """A token whose secret is right but which may not enrol any more: 403, not 401.

    The caller holds the real secret, so this is no guess: it is not counted by the API's throttle of failed
    credential checks (which counts 401s), and a fleet enrolling behind one address with a shared token that
    ran out is told why, again and again if need be, without locking out the agents whose enrolment succeeds.
    """
    return PermissionDeniedError(why)


def _takeover_refused(host_id: str) -> ConflictError:
    return ConflictError(
        f"host {shown(host_id)} is enrolled and holds an active credential; re-enrol it with its current credential "
        f"(Authorization: Bearer rfh_…) or with a re-enrolment token for this host "
        f"(`ringfence enrol reenrol-token {host_id}`, POST /v1/hosts/{{id}}/reenrolment-token), or revoke its "
        f"credential first (`ringfence hosts revoke-credential {host_id}`)")


#: What a credential an agent proposes must look like: the prefix and at least 256 bits, URL-safe.
PROPOSED_CREDENTIAL = re.compile(r"rfh_[A-Za-z0-9_-]{43,100}")


def enrol(db: Database, token: str, record: Any, *, clock: Clock, source: str = "",
          proposed: str = "") -> dict[str, Any]:
    """Enrol a host: with an enrolment token (one use), or re-enrol it with its current credential.

    A host that holds an active credential is re-enrolled only with that credential or with a
    re-enrolment token bound to its id; a tenant's enrolment token gets 409 (no takeover).

    ``proposed``: the credential the agent generated and kept on disk *before* asking (the server makes
    one when it is empty).  Asking again with the same one, after an answer that was lost on the way,
    returns that enrolment again without using the token a second time: the host already holds that
    credential, and nobody else can know it, so this is no takeover.
    """
    if proposed and not PROPOSED_CREDENTIAL.fullmatch(proposed):
        raise InputError.single("credential", "is not a credential this server accepts",
                                expected="rfh_ followed by 43–100 URL-safe characters (secrets.token_urlsafe(32)), "
                                         "or nothing to let the server make one")
    if token.startswith(HOST_TOKEN_PREFIX):
        return _re_enrol_with_credential(db, token, record, clock=clock, source=source)
    if not token.startswith(ENROL_TOKEN_PREFIX):
        raise AuthenticationError("enrolment needs 'Authorization: Bearer rfe_…' (an enrolment token from "
                                  "`ringfence enrol token create`) or, to re-enrol, the host's current credential "
                                  "(rfh_…)")
    now = clock()
    digest = _hash(token)
    with db.transaction() as conn:
        found = channel_store.enrolment_token_by_hash(conn, digest)
        why = _why_unusable(found, now)
        if found is None:
            raise AuthenticationError("unknown enrolment token")
        if why is not None and not proposed:
            raise _unusable(why)
    host = _parse_host(record, found.tenant)  # bad facts: rejected before the token is used
    if found.host_id is not None and found.host_id != host.id:
        raise PermissionDeniedError(f"enrolment token {found.prefix}… is a re-enrolment token for host "
                                    f"{shown(found.host_id)} only, not for {shown(host.id)}")
    credential = proposed or HOST_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as conn:
        channel_store.lock_enrolment_token(conn, found.id)  # a retry racing its lost first try waits for it
        existing = inventory_store.get_host(conn, host.id)
        if existing is not None and existing.tenant != found.tenant:
            raise PermissionDeniedError(f"host {shown(host.id)} belongs to another tenant; an enrolment token of "
                                        f"tenant {shown(found.tenant)} cannot enrol it")
        if proposed and existing is not None and health_store.credential_host(conn, _hash(proposed)) == host.id:
            # The same agent asking again (its first answer was lost): the same enrolment, the token not used again.
            return {"host_id": host.id, "credential": credential, "server_time": now.isoformat(),
                    "tenant": found.tenant}
        if why is not None:  # spent, revoked or expired, and not this host's own retry
            raise _unusable(why)
        if found.host_id is None and channel_store.has_active_credential(conn, host.id):
            raise _takeover_refused(host.id)
        if not channel_store.consume_enrolment_token(conn, found.id, now):
            raise _unusable(f"enrolment token {found.prefix}… was used up, revoked or expired just now; {_ASK_FOR_A_NEW_ONE}")
        inventory_store.upsert_hosts(conn, [_merge(existing, host)], now)
        health_store.set_credential(conn, host.id, _hash(credential), now)
        if existing is not None:  # a re-enrolled host's old tokens stop working too
            record_revocation(conn, host.id, now)
        audit_store.append(conn, at=now, actor=f"agent:{host.id}", action="host.enrol", target=f"host/{host.id}",
                           source=source, reason="", details={"enrolment_token": found.id, "tenant": found.tenant,
                                                              "re_enrolled": existing is not None,
                                                              "bound_to_host": found.host_id is not None})
    return {"host_id": host.id, "credential": credential, "server_time": now.isoformat(), "tenant": found.tenant}


def _re_enrol_with_credential(db: Database, current: str, record: Any, *, clock: Clock,
                              source: str) -> dict[str, Any]:
    """Re-enrol a host with its own active credential: facts replaced, the credential rotated."""
    now = clock()
    credential = HOST_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as conn:
        host_id = health_store.credential_host(conn, _hash(current))
        if host_id is None:
            raise AuthenticationError("unknown or revoked host credential; enrol with an enrolment token (rfe_…)")
        existing = inventory_store.get_host(conn, host_id)
        if existing is None:
            raise NotFoundError(f"host {shown(host_id)} is no longer in the inventory; enrol it with an enrolment token")
        host = _parse_host(record, existing.tenant)
        if host.id != host_id:
            raise PermissionDeniedError(f"the credential of host {shown(host_id)} cannot enrol host {shown(host.id)}")
        inventory_store.upsert_hosts(conn, [_merge(existing, host)], now)
        health_store.set_credential(conn, host_id, _hash(credential), now)
        record_revocation(conn, host_id, now)  # the rotated credential's tokens stop working
        audit_store.append(conn, at=now, actor=f"agent:{host_id}", action="host.enrol", target=f"host/{host_id}",
                           source=source, reason="", details={"tenant": existing.tenant, "re_enrolled": True,
                                                              "with_credential": True})
    return {"host_id": host_id, "credential": credential, "server_time": now.isoformat(), "tenant": existing.tenant}


def refresh_facts(db: Database, host_id: str, record: Any, *, clock: Clock) -> dict[str, Any]:
    """Replace a host's facts with what its agent reports (the host may only report for itself)."""
    now = clock()
    with db.transaction() as conn:
        existing = inventory_store.get_host(conn, host_id)
        if existing is None:
            raise NotFoundError(f"host {shown(host_id)} is no longer in the inventory; enrol it again")
        host = _parse_host(record, existing.tenant)
        if host.id != host_id:
            raise PermissionDeniedError(f"host {shown(host_id)} cannot report facts for {shown(host.id)}")
        inventory_store.upsert_hosts(conn, [_merge(existing, host)], now)
    return {"host_id": host_id, "updated_at": now.isoformat()}


def revoke_credential(db: Database, host_id: str, *, actor: Actor, clock: Clock, reason: str = "") -> dict[str, Any]:
    """Revoke a host's credential; every server refuses it from the next request on."""
    actor.require(Role.OPERATOR, "revoking host credentials")
    now = clock()
    with db.transaction() as conn:
        if not channel_store.revoke_host_credential(conn, host_id, now):
            raise NotFoundError(f"host {shown(host_id)} has no active credential")
        record_revocation(conn, host_id, now)  # every server refuses its host tokens within a poll (~1 s)
        audit_store.append(conn, at=now, actor=actor.name, action="host.credential.revoke", target=f"host/{host_id}",
                           source=actor.source, reason=reason, details={})
    return {"host_id": host_id, "revoked_at": now.isoformat()}
