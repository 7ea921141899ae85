"""Health reports through a NATS JetStream stream (nats-py).

* :class:`HealthStream` publishes an authenticated report and returns once JetStream has stored it
  (its ``PubAck``), so the API's 202 means the report is durable.  Each message carries a
  ``Nats-Msg-Id`` derived from the host and the report's content: a retried POST of the same report
  within the stream's duplicate window is stored once.
* :class:`StreamConsumer` pulls batches from one durable pull consumer that every ingest process
  shares (a work queue: each message goes to one of them), hands each batch to a handler that writes
  it in one transaction, and acks the batch only after that transaction committed.  A consumer killed
  before its acks reached the server leaves the batch unacknowledged; JetStream delivers it again
  after ``ack_wait`` and the handler skips what it already wrote (adapters/db/stores/ingest.py).

Both run nats-py's asyncio client on a loop in their own thread, so the synchronous server code
calls them like any other adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

from ringfence.errors import ConflictError, UnavailableError
from ringfence.services.health import HealthReport

__all__ = ["CONSUMER", "STREAM", "HealthStream", "StreamConsumer", "StreamMessage", "admin", "decode", "encode"]

log = logging.getLogger(__name__)

STREAM = "RINGFENCE_HEALTH"
CONSUMER = "ringfence-ingest"


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One report as a consumer receives it: its message id, the authenticated host and the report."""

    msg_id: str
    host: str
    report: HealthReport


def encode(host: str, report: HealthReport) -> tuple[str, bytes]:
    """The message id and JSON body of an authenticated report."""
    doc = {"host": host, "host_id": report.host_id, "at": report.at.isoformat(), "versions": report.versions,
           "committed": list(report.committed),
           "events": [[kind, rollout, at.isoformat()] for kind, rollout, at in report.events]}
    if report.away:  # a going-away notice (only then, so ordinary reports keep their message ids)
        doc["away"] = report.away
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(body).hexdigest()[:40], body


def decode(msg_id: str, body: bytes) -> StreamMessage:
    """A message back as the report it carries (``ValueError`` for a body this code did not write)."""
    doc = json.loads(body)
    report = HealthReport(host_id=str(doc["host_id"]), at=datetime.fromisoformat(doc["at"]),
                          versions={str(k): str(v) for k, v in dict(doc["versions"]).items()},
                          committed=tuple(str(c) for c in doc["committed"]),
                          events=tuple((str(k), str(r), datetime.fromisoformat(a)) for k, r, a in doc["events"]),
                          away=str(doc.get("away", "")))
    return StreamMessage(msg_id=msg_id or encode(str(doc["host"]), report)[0], host=str(doc["host"]), report=report)


async def _quiet(error: Exception) -> None:
    log.debug("NATS: %s", error)  # every failed (re)connect: the caller reports what matters


class _Loop:
    """An asyncio loop in a daemon thread, with one NATS connection."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()
        self.nc: Any = None
        self._connecting: asyncio.Lock | None = None

    def run(self, coro: Any, timeout: float | None = None) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    async def connect(self) -> Any:
        """The connection, (re)made when there is none: nats-py gives up after ~5 s of failed reconnects,
        and the next call connects anew, so a NATS restart costs the reports sent meanwhile a 503 each."""
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.nc is None or self.nc.is_closed:
                self.nc = None
                self.nc = await nats.connect(self.url, connect_timeout=2, max_reconnect_attempts=10,
                                             reconnect_time_wait=0.5, name="ringfence", error_cb=_quiet)
        return self.nc

    def close(self) -> None:
        async def _close() -> None:
            if self.nc is not None and not self.nc.is_closed:
                await self.nc.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
        try:
            self.run(_close(), timeout=10)
        except Exception:  # closing is best effort: the process may be going away
            log.debug("closing the NATS connection failed", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


def admin(url: str, action: Callable[[Any], Any]) -> Any:
    """Run ``await action(jetstream)`` on a connection of its own (tests, bench, operator tools)."""
    loop = _Loop(url, "ringfence-nats-admin")
    try:
        async def _go() -> Any:
            nc = await loop.connect()
            return await action(nc.jetstream())
        return loop.run(_go(), timeout=30)
    finally:
        loop.close()


async def _ensure_stream(js: Any, stream: str, subject: str) -> None:
    config = StreamConfig(name=stream, subjects=[subject], retention=RetentionPolicy.WORK_QUEUE,
                          storage=StorageType.FILE, duplicate_window=120)
    try:
        await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        await js.add_stream(config)


class HealthStream:
    """Publishes authenticated health reports to the durable stream."""

    def __init__(self, url: str, *, stream: str = STREAM, timeout: float = 5.0) -> None:
        self.stream = stream
        self.subject = f"{stream.lower()}.reports"
        self.timeout = timeout
        self._loop = _Loop(url, "ringfence-nats-publish")
        self._js: Any = None

    async def _jetstream(self) -> Any:
        if self._js is None or self._loop.nc is None or self._loop.nc.is_closed:
            nc = await self._loop.connect()
            js = nc.jetstream(timeout=self.timeout)
            await _ensure_stream(js, self.stream, self.subject)
            self._js = js
        return self._js

    def publish(self, host: str, report: HealthReport) -> int:
        """Store one report in the stream; return its stream sequence (a duplicate returns the first one's)."""
        msg_id, body = encode(host, report)
        return self.publish_raw(msg_id, body)

    def publish_raw(self, msg_id: str, body: bytes) -> int:
        """Store one encoded report; raise :class:`UnavailableError` when JetStream did not confirm it."""
        async def _publish() -> int:
            js = await self._jetstream()
            ack = await js.publish(self.subject, body, headers={"Nats-Msg-Id": msg_id}, stream=self.stream)
            return int(ack.seq)
        try:
            return int(self._loop.run(_publish(), timeout=self.timeout + 1))
        except TimeoutError as e:
            raise UnavailableError(f"the health stream at NATS did not confirm the report within {self.timeout:g} s; "
                                   "it may not be stored, send it again") from e
        except (nats.errors.Error, nats.js.errors.Error, OSError) as e:
            raise UnavailableError(f"the health stream at NATS is unavailable ({type(e).__name__}: {e}); "
                                   "the report was not stored, send it again") from e

    def publish_many(self, messages: Sequence[tuple[str, bytes]], *, window: int = 1000) -> int:
        """Store many encoded reports with up to ``window`` unconfirmed at once (bench, bulk); return how many."""
        async def _many() -> int:
            js = await self._jetstream()
            pending: list[Any] = []
            done = 0
            for msg_id, body in messages:
                pending.append(await js.publish_async(self.subject, body, headers={"Nats-Msg-Id": msg_id},
                                                      wait_stall=self.timeout))
                if len(pending) >= window:
                    await asyncio.gather(*pending)
                    done += len(pending)
                    pending = []
            await asyncio.gather(*pending)
            return done + len(pending)
        return int(self._loop.run(_many()))

    def close(self) -> None:
        """Close the connection."""
        self._loop.close()


class StreamConsumer:
    """Pulls batches of reports and acks each batch after ``handle`` returned (the batch committed)."""

    def __init__(self, url: str, handle: Callable[[list[StreamMessage]], None], *, stream: str = STREAM,
                 batch: int = 1000, ack_wait: float = 30.0) -> None:
        self.url = url
        self.stream = stream
        self.subject = f"{stream.lower()}.reports"
        self.handle = handle
        self.batch = batch
        self.ack_wait = ack_wait
        self._stop = threading.Event()
        self._loop: _Loop | None = None
        self._task: Future[Any] | None = None
        self.batches = 0
        self.messages = 0

    def start(self) -> None:
        """Start pulling in the background."""
        if self._loop is not None:
            return
        self._loop = _Loop(self.url, "ringfence-nats-consume")
        self._task = asyncio.run_coroutine_threadsafe(self._run(), self._loop.loop)

    async def _run(self) -> None:
        assert self._loop is not None
        while not self._stop.is_set():
            try:
                nc = await self._loop.connect()
                js = nc.jetstream()
                await _ensure_stream(js, self.stream, self.subject)
                sub = await js.pull_subscribe(self.subject, durable=CONSUMER, stream=self.stream, config=ConsumerConfig(
                    durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait,
                    max_ack_pending=max(20_000, 4 * self.batch), max_deliver=-1))
                try:
                    await self._pull(sub)
                finally:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
            except Exception:  # NATS or the database away: log, wait, pull again (nothing was acked)
                log.exception("health stream consumer failed; retrying in 1 s")
                await asyncio.sleep(1)

    async def _pull(self, sub: Any) -> None:
        while not self._stop.is_set():
            try:
                msgs = await sub.fetch(self.batch, timeout=1)
            except nats.errors.TimeoutError:
                continue
            readable: list[tuple[Any, StreamMessage]] = []
            for m in msgs:
                try:
                    readable.append((m, decode((m.headers or {}).get("Nats-Msg-Id", ""), m.data)))
                except (ValueError, KeyError, TypeError):
                    log.warning("dropping a health stream message this server cannot read (seq %s)",
                                m.metadata.sequence.stream)
            dropped = await self._write(readable)
            for m in msgs:
                await (m.term() if id(m) in dropped else m.ack())
            self.batches += 1
            self.messages += len(msgs)

    async def _write(self, readable: list[tuple[Any, StreamMessage]]) -> set[int]:
        """Write a batch in one transaction; return the (ids of the) messages to drop.

        The database away or a conflict raises: nothing is acked and the batch comes back after ``ack_wait``.
        Any other failure means something in the batch cannot be written: the messages are written one at a
        time and only those that still fail are dropped, so one bad report cannot block the stream.
        """
        if not readable:
            return set()
        try:
            await asyncio.to_thread(self.handle, [sm for _m, sm in readable])
            return set()
        except (UnavailableError, ConflictError):
            raise
        except Exception:
            log.exception("writing a batch of %d health reports failed; writing them one at a time", len(readable))
        dropped: set[int] = set()
        for m, sm in readable:
            try:
                await asyncio.to_thread(self.handle, [sm])
            except (UnavailableError, ConflictError):
                raise
            except Exception:
                log.exception("dropping the health report %s of host %s: it cannot be written", sm.msg_id, sm.host)
                dropped.add(id(m))
        return dropped

    def stop(self) -> None:
        """Stop pulling (the batch being written finishes and is acked) and close the connection."""
        self._stop.set()
        if self._task is not None:
            try:
                self._task.result(timeout=10)
            except Exception:  # stopping is best effort
                log.debug("health stream consumer did not stop cleanly", exc_info=True)
        if self._loop is not None:
            self._loop.close()
            self._loop = None
