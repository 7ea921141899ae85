"""The set-based version write of a health flush: one upsert per batch, the last-known-good rule per row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import health as health_store

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_a_batch_of_hosts_keeps_or_takes_the_last_known_good_per_product(db: Database) -> None:
    with db.transaction() as conn:  # first sight: the version is the last known good, committed or not
        health_store.record_many_versions(conn, {
            "h-1": ({"falcon": "7.1", "content": "290"}, (), T0),
            "h-2": ({"falcon": "7.1"}, ("falcon",), T0)})
    later = T0 + timedelta(minutes=1)
    with db.transaction() as conn:
        health_store.record_many_versions(conn, {
            "h-1": ({"falcon": "7.2", "content": "291"}, ("content",), later),  # content committed, falcon not
            "h-2": ({"falcon": "7.2"}, (), later),
            "h-3": ({"falcon": "7.0"}, (), later)})
        falcon = health_store.versions_of(conn, ["h-1", "h-2", "h-3"], "falcon")
        content = health_store.versions_of(conn, ["h-1"], "content")
    assert falcon == {"h-1": ("7.2", "7.1"), "h-2": ("7.2", "7.1"), "h-3": ("7.0", "7.0")}
    assert content == {"h-1": ("291", "291")}
    with db.transaction() as conn:  # the one-host form is the same write
        health_store.record_versions(conn, "h-2", {"falcon": "7.2"}, ["falcon"], later)
        assert health_store.versions_of(conn, ["h-2"], "falcon") == {"h-2": ("7.2", "7.2")}


def test_an_empty_batch_writes_nothing(db: Database) -> None:
    with db.transaction() as conn:
        health_store.record_many_versions(conn, {})
        health_store.record_many_versions(conn, {"h-1": ({}, ("falcon",), T0)})
        assert health_store.versions_of(conn, ["h-1"], "falcon") == {}
