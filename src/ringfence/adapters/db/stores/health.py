"""Host heartbeats, presence (arrivals, notices, crashes, per-day record), reported versions, per-rollout events
and per-host credentials."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ringfence.adapters.db.stores.base import chunks, utc
from ringfence.adapters.db.tables import (
    HostCredentialRow,
    HostDayRow,
    HostEventRow,
    HostHealthRow,
    HostVersionRow,
    RolloutHostRow,
    RolloutRow,
)
from ringfence.domain.presence import DayCounts, Presence

__all__ = [
    "add_days",
    "credential_host",
    "day_totals",
    "events_for",
    "first_event_times",
    "first_heartbeats",
    "heartbeats",
    "presence",
    "prune_days",
    "record_events",
    "record_heartbeats",
    "record_many_versions",
    "record_presence",
    "record_versions",
    "rollouts_targeting",
    "set_credential",
    "versions_of",
]


def _ins(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert




def set_credential(conn: Connection, host_id: str, token_hash: str, now: datetime) -> None:
    """Create or replace a host's credential (hash only)."""
    stmt = _ins(conn)(HostCredentialRow).values(host_id=host_id, token_hash=token_hash, created_at=now)
    stmt = stmt.on_conflict_do_update(index_elements=["host_id"], set_={
        "token_hash": stmt.excluded.token_hash, "created_at": stmt.excluded.created_at, "revoked_at": None})
    conn.execute(stmt)


def credential_host(conn: Connection, token_hash: str) -> str | None:
    """The host a credential belongs to (None if unknown or revoked)."""
    row = conn.execute(select(HostCredentialRow.host_id).where(HostCredentialRow.token_hash == token_hash,
                                                               HostCredentialRow.revoked_at.is_(None))).first()
    return str(row.host_id) if row is not None else None


def record_heartbeats(conn: Connection, beats: Mapping[str, tuple[datetime, int]]) -> None:
    """Upsert the latest heartbeat per host (``host -> (time, reports since last flush)``), sorted to avoid deadlocks."""
    if not beats:
        return
    stmt = _ins(conn)(HostHealthRow)
    stmt = stmt.on_conflict_do_update(index_elements=["host_id"], set_={
        "last_heartbeat": stmt.excluded.last_heartbeat, "reports": HostHealthRow.reports + stmt.excluded.reports})
    rows = [{"host_id": h, "last_heartbeat": at, "first_heartbeat": at, "reports": n}
            for h, (at, n) in sorted(beats.items())]
    for part in chunks(rows, 1000):
        conn.execute(stmt, list(part))


def _later(column: Any, new: Any) -> Any:
    """SQL: the later of the stored time and the new one (NULL on either side keeps the other)."""
    return case((column.is_(None), new), (new.is_(None), column), (new > column, new), else_=column)


def record_presence(conn: Connection, rows: Mapping[str, tuple[datetime, int, Presence]]) -> None:
    """Upsert each host's heartbeat (``(report time, reports, presence)``) with its presence (the arrival,
    notice and crash times only move forward), sorted to avoid deadlocks; add its per-day record."""
    if not rows:
        return
    stmt = _ins(conn)(HostHealthRow)
    ex = stmt.excluded
    stmt = stmt.on_conflict_do_update(index_elements=["host_id"], set_={
        "last_heartbeat": _later(HostHealthRow.last_heartbeat, ex.last_heartbeat),
        "reports": HostHealthRow.reports + ex.reports,
        "last_seen": _later(HostHealthRow.last_seen, ex.last_seen),
        "notice_at": _later(HostHealthRow.notice_at, ex.notice_at),
        "notice_reason": case((HostHealthRow.notice_at.is_(None), ex.notice_reason),
                              (ex.notice_at > HostHealthRow.notice_at, ex.notice_reason),
                              else_=HostHealthRow.notice_reason),
        "crash_at": _later(HostHealthRow.crash_at, ex.crash_at),
        "away_recent": ex.away_recent})
    ordered = sorted(rows.items())
    if conn.dialect.name == "postgresql":  # one statement over arrays, whatever the batch's size
        with _raw(conn) as cur:
            cur.execute(_PG_PRESENCE, [[h for h, _ in ordered], [at for _h, (at, _n, _p) in ordered],
                                       [n for _h, (_at, n, _p) in ordered],
                                       [p.last_seen for _h, (_at, _n, p) in ordered],
                                       [p.notice_at for _h, (_at, _n, p) in ordered],
                                       [p.notice_reason for _h, (_at, _n, p) in ordered],
                                       [p.crash_at for _h, (_at, _n, p) in ordered],
                                       [json.dumps(list(p.away)) for _h, (_at, _n, p) in ordered]])
    else:
        values = [{"host_id": h, "last_heartbeat": at, "first_heartbeat": at, "reports": n, "last_seen": p.last_seen,
                   "notice_at": p.notice_at, "notice_reason": p.notice_reason, "crash_at": p.crash_at,
                   "away_recent": list(p.away)} for h, (at, n, p) in ordered]
        for part in chunks(values, 1000):
            conn.execute(stmt, list(part))
    add_days(conn, {h: p.days for h, (_at, _n, p) in rows.items() if p.days})


# PostgreSQL's GREATEST ignores NULLs: the later of two times, either of which may be missing (as _later).
_PG_PRESENCE = (
    "INSERT INTO host_health AS t (host_id, last_heartbeat, first_heartbeat, reports, last_seen, notice_at, "
    "notice_reason, crash_at, away_recent) SELECT h, lh, lh, n, ls, na, nr, ca, ar::json FROM unnest("
    "%s::varchar[], %s::timestamptz[], %s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::varchar[], "
    "%s::timestamptz[], %s::text[]) AS u(h, lh, n, ls, na, nr, ca, ar) ON CONFLICT (host_id) DO UPDATE SET "
    "last_heartbeat = GREATEST(t.last_heartbeat, EXCLUDED.last_heartbeat), reports = t.reports + EXCLUDED.reports, "
    "last_seen = GREATEST(t.last_seen, EXCLUDED.last_seen), notice_at = GREATEST(t.notice_at, EXCLUDED.notice_at), "
    "notice_reason = CASE WHEN t.notice_at IS NULL OR EXCLUDED.notice_at > t.notice_at THEN EXCLUDED.notice_reason "
    "ELSE t.notice_reason END, crash_at = GREATEST(t.crash_at, EXCLUDED.crash_at), "
    "away_recent = EXCLUDED.away_recent")
_PG_DAYS = (
    "INSERT INTO host_days AS t (host_id, day, hours, silences, crashes, notices) SELECT * FROM unnest("
    "%s::varchar[], %s::varchar[], %s::float8[], %s::int[], %s::int[], %s::int[]) ON CONFLICT (host_id, day) "
    "DO UPDATE SET hours = t.hours + EXCLUDED.hours, silences = t.silences + EXCLUDED.silences, "
    "crashes = t.crashes + EXCLUDED.crashes, notices = t.notices + EXCLUDED.notices")


@contextmanager
def _raw(conn: Connection) -> Iterator[Any]:
    """A psycopg cursor on the connection's transaction (statements over arrays: no per-row SQL to build)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        yield cur


def presence(conn: Connection, host_ids: Iterable[str]) -> dict[str, Presence]:
    """What the store knows of each host's presence (hosts never seen are absent; no per-day record)."""
    out: dict[str, Presence] = {}
    if conn.dialect.name == "postgresql":
        with _raw(conn) as cur:
            cur.execute("SELECT host_id, last_seen, notice_at, notice_reason, crash_at, away_recent FROM host_health "
                        "WHERE host_id = ANY(%s::varchar[])", [sorted(set(host_ids))])
            for host, seen, notice, reason, crash, away in cur:
                out[host] = Presence(last_seen=utc(seen), notice_at=utc(notice), notice_reason=reason or "",
                                     crash_at=utc(crash), away=tuple(float(x) for x in (away or ())))
        return out
    cols = (HostHealthRow.host_id, HostHealthRow.last_seen, HostHealthRow.notice_at, HostHealthRow.notice_reason,
            HostHealthRow.crash_at, HostHealthRow.away_recent)
    for part in chunks(sorted(set(host_ids)), 900):
        for r in conn.execute(select(*cols).where(HostHealthRow.host_id.in_(part))):
            out[r.host_id] = Presence(last_seen=utc(r.last_seen), notice_at=utc(r.notice_at),
                                      notice_reason=r.notice_reason or "", crash_at=utc(r.crash_at),
                                      away=tuple(float(x) for x in (r.away_recent or ())))
    return out


def add_days(conn: Connection, days: Mapping[str, Mapping[str, DayCounts]]) -> None:
    """Add ``host -> day -> counts`` to the per-day record (one row per host and UTC day)."""
    values = [{"host_id": h, "day": d, "hours": c.hours, "silences": c.silences, "crashes": c.crashes,
               "notices": c.notices} for h, per in sorted(days.items()) for d, c in sorted(per.items())]
    if not values:
        return
    if conn.dialect.name == "postgresql":
        with _raw(conn) as cur:
            cur.execute(_PG_DAYS, [[v[k] for v in values] for k in ("host_id", "day", "hours", "silences", "crashes",
                                                                     "notices")])
        return
    stmt = _ins(conn)(HostDayRow)
    ex = stmt.excluded
    stmt = stmt.on_conflict_do_update(index_elements=["host_id", "day"], set_={
        "hours": HostDayRow.hours + ex.hours, "silences": HostDayRow.silences + ex.silences,
        "crashes": HostDayRow.crashes + ex.crashes, "notices": HostDayRow.notices + ex.notices})
    for part in chunks(values, 1000):
        conn.execute(stmt, list(part))


def prune_days(conn: Connection, before_day: str) -> int:
    """Forget the per-day record of days before ``before_day`` (YYYY-MM-DD); return the rows removed."""
    return int(conn.execute(delete(HostDayRow).where(HostDayRow.day < before_day)).rowcount or 0)


def day_totals(conn: Connection, host_ids: Iterable[str], first_day: str, before_day: str
               ) -> dict[str, tuple[float, int, int]]:
    """``host -> (host-hours, silences, crashes)`` summed over the days ``first_day ≤ day < before_day``."""
    out: dict[str, tuple[float, int, int]] = {}
    for part in chunks(sorted(set(host_ids)), 900):
        rows = conn.execute(select(HostDayRow.host_id, func.sum(HostDayRow.hours), func.sum(HostDayRow.silences),
                                   func.sum(HostDayRow.crashes))
                            .where(HostDayRow.host_id.in_(part), HostDayRow.day >= first_day,
                                   HostDayRow.day < before_day).group_by(HostDayRow.host_id))
        for h, hours, silences, crashes in rows:
            out[str(h)] = (float(hours or 0.0), int(silences or 0), int(crashes or 0))
    return out


def first_heartbeats(conn: Connection, host_ids: Iterable[str]) -> dict[str, datetime]:
    """When each host first reported (hosts that never did are absent)."""
    out: dict[str, datetime] = {}
    for part in chunks(sorted(set(host_ids)), 900):
        for r in conn.execute(select(HostHealthRow.host_id, HostHealthRow.first_heartbeat)
                              .where(HostHealthRow.host_id.in_(part))):
            out[r.host_id] = utc(r.first_heartbeat)  # type: ignore[assignment]
    return out


def heartbeats(conn: Connection, host_ids: Iterable[str] | None = None) -> dict[str, datetime]:
    """Last heartbeat per host (all hosts when ``host_ids`` is None)."""
    out: dict[str, datetime] = {}
    if host_ids is None:
        for r in conn.execute(select(HostHealthRow.host_id, HostHealthRow.last_heartbeat)):
            out[r.host_id] = utc(r.last_heartbeat)  # type: ignore[assignment]
        return out
    for part in chunks(sorted(set(host_ids)), 900):
        for r in conn.execute(select(HostHealthRow.host_id, HostHealthRow.last_heartbeat)
                              .where(HostHealthRow.host_id.in_(part))):
            out[r.host_id] = utc(r.last_heartbeat)  # type: ignore[assignment]
    return out


_PG_VERSIONS = ("INSERT INTO host_versions (host_id, product, version, last_known_good, updated_at) "
                "SELECT h, p, v, v, t FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::timestamptz[]) "
                "AS u(h, p, v, t) ON CONFLICT (host_id, product) DO UPDATE SET version = EXCLUDED.version, "
                "updated_at = EXCLUDED.updated_at, last_known_good = ")
_PG_VERSIONS_TAKE_LKG = _PG_VERSIONS + "EXCLUDED.last_known_good"
_PG_VERSIONS_KEEP_LKG = _PG_VERSIONS + "host_versions.last_known_good"


def record_versions(conn: Connection, host_id: str, versions: Mapping[str, str], committed: Iterable[str],
                    now: datetime) -> None:
    """Store what a host runs; a product in ``committed`` makes its version the last known good."""
    record_many_versions(conn, {host_id: (versions, tuple(committed), now)})


def record_many_versions(conn: Connection,
                         reports: Mapping[str, tuple[Mapping[str, str], Iterable[str], datetime]]) -> None:
    """Store what each host runs (``host -> (product -> version, committed products, when)``) with two upserts
    for the whole batch, whatever its size: rows of committed products take the version as last known good,
    the others keep theirs (a product seen for the first time starts with its version as last known good).
    Sorted by key so that two writers lock rows in the same order."""
    kept: list[dict[str, Any]] = []
    good: list[dict[str, Any]] = []
    for host_id, (versions, committed, at) in sorted(reports.items()):
        ok = set(committed)
        for product, version in sorted(versions.items()):
            row = {"host_id": host_id, "product": product, "version": version, "last_known_good": version,
                   "updated_at": at}
            (good if product in ok else kept).append(row)
    for rows, take_lkg in ((good, True), (kept, False)):
        if not rows:
            continue
        if conn.dialect.name == "postgresql":  # one statement over four arrays: no per-row SQL to build or send
            with _raw(conn) as cur:
                cur.execute(_PG_VERSIONS_TAKE_LKG if take_lkg else _PG_VERSIONS_KEEP_LKG,
                            [[r["host_id"] for r in rows], [r["product"] for r in rows], [r["version"] for r in rows],
                             [r["updated_at"] for r in rows]])
            continue
        stmt = _ins(conn)(HostVersionRow)
        ex = stmt.excluded
        set_: dict[str, Any] = {"version": ex.version, "updated_at": ex.updated_at}
        if take_lkg:
            set_["last_known_good"] = ex.last_known_good
        stmt = stmt.on_conflict_do_update(index_elements=["host_id", "product"], set_=set_)
        for part in chunks(rows, 1000):
            conn.execute(stmt, list(part))


def versions_of(conn: Connection, host_ids: Sequence[str], product: str) -> dict[str, tuple[str, str]]:
    """``host -> (version, last known good)`` for one product."""
    out: dict[str, tuple[str, str]] = {}
    for part in chunks(sorted(set(host_ids)), 900):
        for r in conn.execute(select(HostVersionRow).where(HostVersionRow.product == product,
                                                           HostVersionRow.host_id.in_(part))):
            out[r.host_id] = (r.version, r.last_known_good)
    return out


def rollouts_targeting(conn: Connection, host_id: str, rollout_ids: Iterable[str]) -> dict[str, datetime]:
    """Of ``rollout_ids``, those that target ``host_id``, each with when the rollout was created."""
    wanted = sorted(set(rollout_ids))
    if not wanted:
        return {}
    rows = conn.execute(select(RolloutRow.id, RolloutRow.created_at).join(
        RolloutHostRow, RolloutHostRow.rollout_id == RolloutRow.id).where(
        RolloutHostRow.host_id == host_id, RolloutRow.id.in_(wanted)))
    return {str(r.id): utc(r.created_at) for r in rows}  # type: ignore[misc]


def record_events(conn: Connection, events: Sequence[tuple[str, str, str, datetime]]) -> None:
    """Upsert ``(host, rollout, kind, at)``: one row per host, rollout and kind; repeats only bump a counter."""
    if not events:
        return
    stmt = _ins(conn)(HostEventRow)
    stmt = stmt.on_conflict_do_update(index_elements=["host_id", "rollout_id", "kind"], set_={
        "last_at": case((stmt.excluded.last_at > HostEventRow.last_at, stmt.excluded.last_at),
                        else_=HostEventRow.last_at),
        "count": HostEventRow.count + 1})
    rows = [{"host_id": h, "rollout_id": r, "kind": k, "first_at": at, "last_at": at, "count": 1}
            for h, r, k, at in sorted(events)]
    for row in rows:  # one by one: several events of one key in a batch must each count
        conn.execute(stmt, row)


def events_for(conn: Connection, rollout_ids: Sequence[str], since: datetime) -> dict[str, set[str]]:
    """``kind -> hosts`` with at least one event under these rollouts ("" = not tied to a rollout) since ``since``."""
    out: dict[str, set[str]] = {}
    rows = conn.execute(select(HostEventRow.host_id, HostEventRow.kind).where(
        HostEventRow.rollout_id.in_(list(rollout_ids)), HostEventRow.last_at >= since))
    for r in rows:
        out.setdefault(r.kind, set()).add(r.host_id)
    return out


def first_event_times(conn: Connection, rollout_ids: Sequence[str], since: datetime) -> dict[str, dict[str, datetime]]:
    """``kind -> host -> first time`` of events under these rollouts with their latest at or after ``since``."""
    out: dict[str, dict[str, datetime]] = {}
    rows = conn.execute(select(HostEventRow.host_id, HostEventRow.kind, HostEventRow.first_at).where(
        HostEventRow.rollout_id.in_(list(rollout_ids)), HostEventRow.last_at >= since))
    for r in rows:
        at = utc(r.first_at)
        assert at is not None
        slot = out.setdefault(r.kind, {})
        slot[r.host_id] = min(at, slot.get(r.host_id, at))
    return out
