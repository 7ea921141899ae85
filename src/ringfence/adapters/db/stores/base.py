"""Helpers shared by the stores: optimistic versioned updates and bulk inserts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Connection, DateTime, Integer, String, Table, update

from ringfence.errors import ConflictError, NotFoundError

__all__ = ["bulk_insert", "chunks", "copy_rows", "stage_rows", "update_versioned", "utc"]


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def update_versioned(conn: Connection, table: Table, key: dict[str, Any], expected_version: int,
                     values: dict[str, Any], *, what: str) -> int:
    """Update one row only if its ``version`` is still ``expected_version``; return the new version.

    Two writers that read the same version cannot both succeed: the second
    gets :class:`ConflictError` and must reload.  This is how state changes
    stay safe with several API servers on one PostgreSQL.
    """
    conds = [table.c[k] == v for k, v in key.items()]
    stmt = (update(table).where(*conds, table.c.version == expected_version)
            .values(**values, version=expected_version + 1))
    result = conn.execute(stmt)
    if result.rowcount == 1:
        return expected_version + 1
    exists = conn.execute(table.select().where(*conds)).first()
    if exists is None:
        raise NotFoundError(f"{what} not found")
    raise ConflictError(f"{what} was changed by someone else (expected version {expected_version}, "
                        f"found {exists._mapping['version']}); reload and retry")


def bulk_insert(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert many rows fast: COPY on PostgreSQL, executemany on SQLite."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        cols = ", ".join(columns)
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    placeholders = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608 - names are ours
    raw_conn = conn.connection.driver_connection
    assert raw_conn is not None
    raw_conn.executemany(sql, rows)


def stage_rows(cur: Any, stage: str, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A temporary table shaped like ``table`` (no indexes, no constraints), dropped at commit, filled by COPY."""
    cols = ", ".join(columns)
    cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS "  # noqa: S608 - our names
                f"SELECT {cols} FROM {table} WITH NO DATA")
    cur.execute(f"TRUNCATE {stage}")
    with cur.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    cur.execute(f"ANALYZE {stage}")  # so the planner joins the staged rows by hash, not by nested loop


def _binary_type(table: Table, column: str) -> str:
    kind = table.c[column].type
    if isinstance(kind, Boolean):
        return "bool"
    if isinstance(kind, BigInteger):
        return "int8"
    if isinstance(kind, Integer):
        return "int4"
    if isinstance(kind, DateTime):
        return "timestamptz" if kind.timezone else "timestamp"
    if isinstance(kind, String):
        return "text"
    raise TypeError(f"copy_rows: column {table.name}.{column} has type {kind!r}, which has no binary COPY mapping")


def copy_rows(cur: Any, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """COPY rows straight into ``table`` in PostgreSQL's binary format (types from the table's columns).

    Binary COPY with declared types skips formatting and parsing every value as text: about 1.6× faster than
    text COPY for the host rows (bench/README.md).
    """
    with cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([_binary_type(table, c) for c in columns])
        for row in rows:
            copy.write_row(row)


def utc(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands back naive UTC values)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
