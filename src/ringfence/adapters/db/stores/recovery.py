"""Recovery campaigns: campaigns, their hosts and events, encrypted keys and key reveals (all SQL of C5)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from ringfence.adapters.db.stores.base import chunks, update_versioned, utc
from ringfence.adapters.db.tables import (
    RecoveryCampaignRow,
    RecoveryEventRow,
    RecoveryHostRow,
    RecoveryKeyRow,
    RecoveryRevealRow,
)
from ringfence.errors import NotFoundError, shown

__all__ = [
    "Campaign",
    "CampaignHost",
    "add_events",
    "close_campaign",
    "create_campaign",
    "events",
    "get_campaign",
    "get_host",
    "hosts",
    "key_of",
    "list_campaigns",
    "mark_many",
    "recent_reveals",
    "record_reveal",
    "replace_keys",
    "set_host",
    "state_counts",
]


@dataclass(frozen=True, slots=True)
class Campaign:
    """A stored campaign."""

    id: str
    name: str
    state: str
    source: str
    source_ref: str
    runbooks: dict[str, Any]
    model: dict[str, Any]
    started_at: datetime
    created_by: str
    closed_at: datetime | None
    version: int


@dataclass(frozen=True, slots=True)
class CampaignHost:
    """One host of a stored campaign."""

    host_id: str
    state: str
    runbook: str
    path: str
    assignee: str
    updated_at: datetime
    fixed_at: datetime | None
    verified_at: datetime | None
    version: int


def _campaign(r: Any) -> Campaign:
    started = utc(r.started_at)
    assert started is not None
    return Campaign(r.id, r.name, r.state, r.source, r.source_ref, dict(r.runbooks), dict(r.model or {}), started,
                    r.created_by, utc(r.closed_at), r.version)


def _host(r: Any) -> CampaignHost:
    updated = utc(r.updated_at)
    assert updated is not None
    return CampaignHost(r.host_id, r.state, r.runbook, r.path, r.assignee, updated, utc(r.fixed_at),
                        utc(r.verified_at), r.version)


def create_campaign(conn: Connection, campaign: Campaign, members: Sequence[tuple[str, str, str]]) -> None:
    """Insert a campaign and its hosts ``(host, runbook, path)``, all queued."""
    conn.execute(insert(RecoveryCampaignRow).values(
        id=campaign.id, name=campaign.name, state=campaign.state, source=campaign.source,
        source_ref=campaign.source_ref, runbooks=campaign.runbooks, model=campaign.model,
        started_at=campaign.started_at, created_by=campaign.created_by, closed_at=None, version=1))
    rows = [{"campaign_id": campaign.id, "host_id": h, "state": "queued", "runbook": rb, "path": path,
             "assignee": "", "updated_at": campaign.started_at, "version": 1} for h, rb, path in members]
    for part in chunks(rows, 1000):
        conn.execute(insert(RecoveryHostRow), list(part))


def get_campaign(conn: Connection, campaign_id: str) -> Campaign:
    """One campaign, or NotFoundError."""
    row = conn.execute(select(RecoveryCampaignRow).where(RecoveryCampaignRow.id == campaign_id)).first()
    if row is None:
        raise NotFoundError(f"recovery campaign {shown(campaign_id)} not found")
    return _campaign(row)


def list_campaigns(conn: Connection) -> list[Campaign]:
    """Every campaign, newest first."""
    rows = conn.execute(select(RecoveryCampaignRow).order_by(RecoveryCampaignRow.started_at.desc(),
                                                             RecoveryCampaignRow.id))
    return [_campaign(r) for r in rows]


def close_campaign(conn: Connection, campaign_id: str, expected_version: int, now: datetime) -> int:
    """Close a campaign (optimistic version)."""
    return update_versioned(conn, RecoveryCampaignRow.__table__, {"id": campaign_id},  # type: ignore[arg-type]
                            expected_version, {"state": "closed", "closed_at": now}, what=f"campaign {campaign_id}")


def hosts(conn: Connection, campaign_id: str, *, assignee: str | None = None,
          states: Iterable[str] | None = None) -> list[CampaignHost]:
    """The hosts of a campaign (optionally only one technician's, or only some states), by host id."""
    q = select(RecoveryHostRow).where(RecoveryHostRow.campaign_id == campaign_id)
    if assignee is not None:
        q = q.where(RecoveryHostRow.assignee == assignee)
    if states is not None:
        q = q.where(RecoveryHostRow.state.in_(list(states)))
    return [_host(r) for r in conn.execute(q.order_by(RecoveryHostRow.host_id))]


def get_host(conn: Connection, campaign_id: str, host_id: str) -> CampaignHost:
    """One host of a campaign, or NotFoundError."""
    row = conn.execute(select(RecoveryHostRow).where(RecoveryHostRow.campaign_id == campaign_id,
                                                     RecoveryHostRow.host_id == host_id)).first()
    if row is None:
        raise NotFoundError(f"host {shown(host_id)} is not in campaign {shown(campaign_id)}")
    return _host(row)


def set_host(conn: Connection, campaign_id: str, host_id: str, expected_version: int, values: Mapping[str, Any]) -> int:
    """Change one host of a campaign (optimistic version): state, assignee, fixed_at, verified_at, updated_at."""
    return update_versioned(conn, RecoveryHostRow.__table__,  # type: ignore[arg-type]
                            {"campaign_id": campaign_id, "host_id": host_id}, expected_version, dict(values),
                            what=f"host {host_id} of campaign {campaign_id}")


def state_counts(conn: Connection, campaign_id: str) -> dict[str, int]:
    """Hosts per state."""
    rows = conn.execute(select(RecoveryHostRow.state, func.count()).where(RecoveryHostRow.campaign_id == campaign_id)
                        .group_by(RecoveryHostRow.state))
    return {str(s): int(n) for s, n in rows}


def add_events(conn: Connection, campaign_id: str, items: Sequence[Mapping[str, Any]]) -> None:
    """Append events ``{host_id, at, actor, kind, state_from, state_to, message, details}``."""
    rows = [{"campaign_id": campaign_id, "state_from": "", "state_to": "", "message": "", "details": {}, **e}
            for e in items]
    for part in chunks(rows, 1000):
        conn.execute(insert(RecoveryEventRow), list(part))


def events(conn: Connection, campaign_id: str, *, host_id: str | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
    """Events of a campaign (or of one host), oldest first."""
    q = select(RecoveryEventRow).where(RecoveryEventRow.campaign_id == campaign_id)
    if host_id is not None:
        q = q.where(RecoveryEventRow.host_id == host_id)
    return [{"host_id": r.host_id, "at": utc(r.at), "actor": r.actor, "kind": r.kind, "state_from": r.state_from,
             "state_to": r.state_to, "message": r.message, "details": dict(r.details or {})}
            for r in conn.execute(q.order_by(RecoveryEventRow.id).limit(limit))]


# --- keys ------------------------------------------------------------------------------------

def replace_keys(conn: Connection, keys: Sequence[tuple[str, str, str]], now: datetime, actor: str) -> int:
    """Store ``(host, key id, ciphertext)``, replacing the hosts' earlier keys; return how many."""
    hids = sorted({h for h, _, _ in keys})
    for part in chunks(hids, 900):
        conn.execute(delete(RecoveryKeyRow).where(RecoveryKeyRow.host_id.in_(part)))
    rows = [{"host_id": h, "key_id": k, "ciphertext": c, "imported_at": now, "imported_by": actor} for h, k, c in keys]
    for part in chunks(rows, 1000):
        conn.execute(insert(RecoveryKeyRow), list(part))
    return len(rows)


def key_of(conn: Connection, host_id: str) -> tuple[str, str] | None:
    """``(key id, ciphertext)`` of a host's imported key."""
    row = conn.execute(select(RecoveryKeyRow.key_id, RecoveryKeyRow.ciphertext)
                       .where(RecoveryKeyRow.host_id == host_id)).first()
    return (row.key_id, row.ciphertext) if row is not None else None


def record_reveal(conn: Connection, *, campaign_id: str, host_id: str, actor: str, at: datetime, revealed: bool,
                  reason: str) -> None:
    """Remember a reveal or a refusal."""
    conn.execute(insert(RecoveryRevealRow).values(campaign_id=campaign_id, host_id=host_id, actor=actor, at=at,
                                                  revealed=revealed, reason=reason))


def recent_reveals(conn: Connection, actor: str, since: datetime) -> list[datetime]:
    """When ``actor`` was shown a key since ``since``."""
    rows = conn.execute(select(RecoveryRevealRow.at).where(RecoveryRevealRow.actor == actor,
                                                           RecoveryRevealRow.revealed.is_(True),
                                                           RecoveryRevealRow.at >= since))
    return [t for (t,) in ((utc(r.at),) for r in rows) if t is not None]


def mark_many(conn: Connection, campaign_id: str, host_ids: Sequence[str], values: Mapping[str, Any]) -> int:
    """Set values on many hosts of a campaign at once (bumps their versions); return how many changed."""
    done = 0
    for part in chunks(sorted(host_ids), 500):
        result = conn.execute(update(RecoveryHostRow).where(
            RecoveryHostRow.campaign_id == campaign_id, RecoveryHostRow.host_id.in_(part))
            .values(**values, version=RecoveryHostRow.version + 1))
        done += result.rowcount
    return done
