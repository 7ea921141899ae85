"""Health reports through NATS JetStream: published by the API, written once by ingest consumers.

Real NATS (RINGFENCE_TEST_NATS_URL, default nats://127.0.0.1:4222, where CI runs it) and the test
database (SQLite, and PostgreSQL when set).  Each test uses its own stream, so tests and sessions
sharing one NATS server never see each other's messages.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import nats.js.errors
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from ringfence.adapters.api.app import create_app
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import ingest as ingest_store
from ringfence.adapters.nats.stream import CONSUMER, HealthStream, StreamConsumer, StreamMessage, admin, encode
from ringfence.config import Settings
from ringfence.domain.model import Host, HostId, Inventory, OsFamily, TenantId
from ringfence.errors import UnavailableError
from ringfence.services.context import Actor, system_clock
from ringfence.services.health import HealthReport, issue_credential
from ringfence.services.ingest_stream import StreamIngest
from ringfence.services.inventory import import_inventory
from tests.servers import Server
from tests.test_failover import Standby

NATS_URL = os.environ.get("RINGFENCE_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _nats_up() -> bool:
    where = urlparse(NATS_URL)
    try:
        with socket.create_connection((where.hostname or "127.0.0.1", where.port or 4222), timeout=1):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _nats_up(), reason=f"needs NATS with JetStream at {NATS_URL}")


@pytest.fixture
def stream_name() -> Iterator[str]:
    name = f"RF_TEST_{secrets.token_hex(4).upper()}"
    yield name

    async def _drop(js: Any) -> None:
        with contextlib.suppress(Exception):
            await js.delete_stream(name)
    admin(NATS_URL, _drop)


def _consumer_state(stream: str) -> tuple[int, int]:
    """(pending, unacknowledged) of the shared durable consumer."""
    async def _info(js: Any) -> tuple[int, int]:
        try:
            info = await js.consumer_info(stream, CONSUMER)
        except nats.js.errors.NotFoundError:
            return -1, -1  # no consumer has started yet
        return int(info.num_pending or 0), int(info.num_ack_pending or 0)
    result: tuple[int, int] = admin(NATS_URL, _info)
    return result


def _reports(db: Database) -> dict[str, int]:
    with db.transaction() as conn:
        return dict(conn.execute(text("SELECT host_id, reports FROM host_health")).tuples().all())


def _wait(until: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _report(host: str, i: int) -> HealthReport:
    return HealthReport(host_id=host, at=datetime.now(UTC) - timedelta(seconds=i), versions={"falcon": "7.1"})


def test_api_publishes_and_a_consumer_writes_each_report_once(db: Database, db_url: str, admin: Actor,
                                                               tmp_path: Path, stream_name: str) -> None:
    hosts = [Host(id=HostId(f"n-{i}"), hostname=f"n{i}", tenant=TenantId("t"), os_family=OsFamily.LINUX)
             for i in range(3)]
    import_inventory(db, Inventory(hosts=tuple(hosts)), actor=admin, clock=system_clock)
    creds = {h.id: issue_credential(db, h.id, actor=admin, clock=system_clock) for h in hosts}
    settings = Settings(database_url=db_url, data_dir=tmp_path, reconcile_interval_seconds=0, role="api",
                        ingest_nats_url=NATS_URL, ingest_nats_stream=stream_name)
    app = create_app(settings, db=db, clock=system_clock)
    assert app.state.stream_consumer is None  # role api publishes, it does not write
    sent: dict[str, int] = {}
    with TestClient(app) as client:
        for n, (host, cred) in enumerate(creds.items()):
            for i in range(n + 1):
                body = {"host_id": host, "at": (datetime.now(UTC) - timedelta(seconds=i)).isoformat(),
                        "versions": {"falcon": "7.1"}}
                r = client.post("/v1/health", json=body, headers={"Authorization": f"Bearer {cred}"})
                assert r.status_code == 202, r.text
                assert r.json()["stream_seq"] > 0
                again = client.post("/v1/health", json=body, headers={"Authorization": f"Bearer {cred}"})
                assert again.json()["stream_seq"] == r.json()["stream_seq"]  # a retried POST is stored once
                sent[host] = sent.get(host, 0) + 1
        other = client.post("/v1/health", json={"host_id": "n-1", "at": datetime.now(UTC).isoformat()},
                            headers={"Authorization": f"Bearer {creds['n-0']}"})
        assert other.status_code == 403  # a host cannot report for another one, with or without the stream
    assert _reports(db) == {}  # nothing written by the API server itself
    ingest = StreamIngest(db, system_clock)
    consumer = StreamConsumer(NATS_URL, ingest.handle, stream=stream_name, batch=2)
    consumer.start()
    try:
        _wait(lambda: _reports(db) == sent, 30, f"reports {sent}")
    finally:
        consumer.stop()
    assert ingest.counts.written == sum(sent.values()) and ingest.counts.duplicates == 0
    assert _consumer_state(stream_name) == (0, 0)


def test_a_batch_committed_but_not_acknowledged_is_not_counted_twice(db: Database, stream_name: str) -> None:
    """The consumer dies between commit and ack: JetStream delivers the batch again, the claim skips it."""
    publisher = HealthStream(NATS_URL, stream=stream_name)
    try:
        messages = [encode(f"h-{i % 5}", _report(f"h-{i % 5}", i)) for i in range(40)]
        assert publisher.publish_many(messages) == 40
        publisher.publish_raw(*messages[0])  # the same message again: JetStream keeps one
    finally:
        publisher.close()
    ingest = StreamIngest(db, system_clock)
    crashes = {"left": 2}

    def handle_then_die(batch: list[StreamMessage]) -> None:
        ingest.handle(batch)  # committed
        if crashes["left"]:
            crashes["left"] -= 1
            raise ConnectionError("consumer died before its acks were sent")

    consumer = StreamConsumer(NATS_URL, handle_then_die, stream=stream_name, batch=15, ack_wait=1.5)
    consumer.start()
    try:
        _wait(lambda: _consumer_state(stream_name) == (0, 0) and crashes["left"] == 0, 40, "every message acked")
    finally:
        consumer.stop()
    assert sum(_reports(db).values()) == 40
    assert ingest.counts.written == 40 and ingest.counts.duplicates >= 15  # redelivered, skipped
    with db.transaction() as conn:
        assert ingest_store.count_reports(conn) == 40


def test_refused_reports_are_dropped_not_retried(db: Database, stream_name: str) -> None:
    publisher = HealthStream(NATS_URL, stream=stream_name)
    stale = HealthReport(host_id="h-old", at=datetime.now(UTC) - timedelta(hours=3))
    try:
        publisher.publish("h-old", stale)
        publisher.publish("h-new", _report("h-new", 0))
        publisher.publish("h-new", HealthReport(host_id="h-other", at=datetime.now(UTC)))  # for another host
    finally:
        publisher.close()
    ingest = StreamIngest(db, system_clock)
    consumer = StreamConsumer(NATS_URL, ingest.handle, stream=stream_name)
    consumer.start()
    try:
        _wait(lambda: ingest.counts.written + ingest.counts.refused == 3, 30, "three reports handled")
    finally:
        consumer.stop()
    assert _reports(db) == {"h-new": 1}
    assert ingest.counts.refused == 2


@contextlib.contextmanager
def _writes_blocked(db: Database, db_url: str) -> Iterator[Callable[[], bool]]:
    """Hold a lock that makes the next batch's write wait inside its transaction; yield a check that someone
    waits on it (PostgreSQL: a session waiting for the lock; SQLite cannot tell, so always true)."""
    if db.is_sqlite:
        raw = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")  # the one writer: a consumer's claim of the batch's ids waits
            yield lambda: True
        finally:
            raw.rollback()
            raw.close()
        return
    with db.engine.connect() as conn:
        holder = conn.begin()
        # the batch's ids are claimed (ingested_reports), then its heartbeat upsert waits: killed there,
        # the claim must roll back with everything else
        conn.execute(text("LOCK TABLE host_health IN EXCLUSIVE MODE"))

        def waiting() -> bool:
            with db.engine.connect() as probe:
                return bool(probe.execute(text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "WHERE c.relname = 'host_health' AND NOT l.granted")).scalar_one())
        try:
            yield waiting
        finally:
            holder.rollback()


def test_kill_9_an_ingest_server_inside_its_batch_transaction_loses_nothing(
        db: Database, db_url: str, tmp_path: Path, stream_name: str) -> None:
    """The ``make test`` check: a ``serve --role ingest`` process is killed with SIGKILL while its batch waits
    inside the write transaction (a lock the test holds); another consumer then writes every report once,
    the killed batch included (its claim rolled back with it)."""
    total, hosts = 600, 60
    env: dict[str, Any] = {"RINGFENCE_ROLE": "ingest", "RINGFENCE_INGEST_NATS_URL": NATS_URL,
                           "RINGFENCE_INGEST_NATS_STREAM": stream_name, "RINGFENCE_INGEST_NATS_ACK_WAIT_SECONDS": "1",
                           "RINGFENCE_RECONCILE_INTERVAL_SECONDS": "0", "RINGFENCE_HEALTH_MAX_PER_MINUTE": "1000"}
    server = Server(tmp_path, db_url, **env)  # its consumer pulls from the (empty) stream
    try:
        with _writes_blocked(db, db_url) as waiting:
            publisher = HealthStream(NATS_URL, stream=stream_name)
            try:
                assert publisher.publish_many([encode(f"m-{i % hosts}", _report(f"m-{i % hosts}", i // hosts))
                                               for i in range(total)]) == total
            finally:
                publisher.close()
            _wait(lambda: _consumer_state(stream_name)[1] > 0 and waiting(), 60,
                  "the ingest server's batch to wait inside its transaction")
            server.kill()
    finally:
        server.stop()
    assert _reports(db) == {}
    with db.transaction() as conn:
        assert ingest_store.count_reports(conn) == 0  # the killed batch's claim rolled back
    ingest = StreamIngest(db, system_clock, max_per_minute=1000)
    consumer = StreamConsumer(NATS_URL, ingest.handle, stream=stream_name, batch=200, ack_wait=1)
    consumer.start()
    try:
        _wait(lambda: sum(_reports(db).values()) >= total and _consumer_state(stream_name) == (0, 0), 60,
              f"{total} reports written")
        time.sleep(1.5)  # longer than ack_wait: a batch redelivered now would show up
    finally:
        consumer.stop()
    assert sum(_reports(db).values()) == total and len(_reports(db)) == hosts
    assert ingest.counts.written == total and ingest.counts.duplicates == 0
    with db.transaction() as conn:
        assert ingest_store.count_reports(conn) == total


@pytest.mark.slow
@pytest.mark.extended  # two server starts and 12,000 reports: ~40 s on a loaded 2-core machine
def test_kill_9_an_ingest_server_mid_stream_loses_nothing_and_counts_nothing_twice(
        db: Database, db_url: str, tmp_path: Path, stream_name: str) -> None:
    """Two `serve --role ingest` processes in turn: the first is killed with SIGKILL while it writes."""
    total, hosts = 12_000, 400
    publisher = HealthStream(NATS_URL, stream=stream_name)
    try:
        assert publisher.publish_many([encode(f"k-{i % hosts}", _report(f"k-{i % hosts}", i // hosts))
                                       for i in range(total)]) == total
    finally:
        publisher.close()
    env: dict[str, Any] = {"RINGFENCE_ROLE": "ingest", "RINGFENCE_INGEST_NATS_URL": NATS_URL,
                           "RINGFENCE_INGEST_NATS_STREAM": stream_name, "RINGFENCE_INGEST_NATS_ACK_WAIT_SECONDS": "2",
                           "RINGFENCE_RECONCILE_INTERVAL_SECONDS": "0", "RINGFENCE_HEALTH_MAX_PER_MINUTE": "1000"}
    first = Server(tmp_path, db_url, **env)
    try:
        _wait(lambda: sum(_reports(db).values()) > 0, 60, "the first ingest server to write")
        first.kill()
    finally:
        first.stop()
    written_before = sum(_reports(db).values())
    assert 0 < written_before < total, "killed after it had written everything: the test proves nothing"
    second = Standby(tmp_path, db_url, **env)  # same database: it creates no second admin token
    try:
        _wait(lambda: sum(_reports(db).values()) >= total and _consumer_state(stream_name) == (0, 0), 120,
              f"{total} reports written")
        time.sleep(2.5)  # longer than ack_wait: a batch redelivered now would show up
    finally:
        second.stop()
    assert sum(_reports(db).values()) == total
    assert len(_reports(db)) == hosts
    with db.transaction() as conn:
        assert ingest_store.count_reports(conn) == total


def test_publishing_without_nats_is_a_503_naming_the_stream() -> None:
    stream = HealthStream("nats://127.0.0.1:1", stream="RF_TEST_NOWHERE", timeout=0.5)
    try:
        with pytest.raises(UnavailableError, match="health stream at NATS"):
            stream.publish("h", HealthReport(host_id="h", at=datetime.now(UTC)))
    finally:
        stream.close()


def test_one_report_that_cannot_be_written_is_dropped_alone(db: Database, stream_name: str) -> None:
    publisher = HealthStream(NATS_URL, stream=stream_name)
    try:
        publisher.publish_many([encode(h, _report(h, 0)) for h in ("ok-1", "poison", "ok-2")])
    finally:
        publisher.close()
    ingest = StreamIngest(db, system_clock)

    def handle(batch: list[StreamMessage]) -> None:
        if any(m.host == "poison" for m in batch):
            raise ValueError("this report breaks the write")
        ingest.handle(batch)

    consumer = StreamConsumer(NATS_URL, handle, stream=stream_name, batch=10)
    consumer.start()
    try:
        _wait(lambda: _consumer_state(stream_name) == (0, 0) and consumer.messages == 3, 30, "the batch handled")
    finally:
        consumer.stop()
    assert _reports(db) == {"ok-1": 1, "ok-2": 1}
