"""A broker endpoint's pump: its log (streams/log.py) published in order.

One pump job per endpoint runs at a time in a process (its target is the endpoint).
It reads the next `batch` entries after `sent`, publishes them in one round trip,
and moves `sent` past the acknowledged prefix, until the log is empty; then it ends,
and the next append queues a new one. Between batches nothing is written per event:
no claim, no "done".

What the broker answers decides what happens:
- acknowledged: passed;
- refused for good (bad credentials, a message it will never take): recorded as a
  dead letter of the endpoint's kind (listed, retried and discarded with the other
  deliveries; a retry runs through the per-event handler) and passed;
- not now (down, timeout, "busy"): the pump stops there and is retried with back-off,
  never given up: the events wait in the log until the broker takes them, in order.

While a batch is being published the next one is read, and `sent` is moved past the
batch before (each move waits for the one before it): the database work hides behind
the broker's round trip.

A pump works for at most `SLICE` seconds, then gives its slot to the other
deliveries and is queued again. Two nodes may run one endpoint's pump at once (each
caps it to one locally); `sent` moves only from the value a pump read, so the one
that falls behind sees it moved and reads on from there: the overlap is published
twice, with the same event ids (JetStream drops them by `Nats-Msg-Id`). No pump
sends past a number before everything up to it is acknowledged, so first arrivals
stay in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wasync.delivery import endpoints as E
from wasync.delivery.circuit import Circuit
from wasync.delivery.streams import log as stream_log
from wasync.delivery.streams.publisher import Failed, Outgoing, Published
from wasync.jobs import queries as queue
from wasync.jobs.outcome import Defer, Done, JobOutcome, Retry
from wasync.store.db import Database

if TYPE_CHECKING:
    from wasync.delivery.streams.pool import Publishers

log = logging.getLogger(__name__)

SLICE = 2.0  # seconds a pump publishes before taking turns with other deliveries
ATTEMPTS = 2**31 - 1  # a pump is never given up: its events wait for the broker


def outgoing(entry: stream_log.Entry, session: str) -> Outgoing:
    return Outgoing(
        id=entry.event_id,
        event=entry.topic,
        session=session,
        timestamp=entry.timestamp,
        body=entry.body.encode(),
    )


async def _cancelled(task: asyncio.Task[Any] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


class Pump:
    def __init__(
        self,
        db: Database,
        publishers: Callable[[], Publishers | None],
        circuit_of: Callable[[int], Circuit],
        *,
        batch: int,
        dead_letter_attempts: int,
        retry_delay: float,
        slice_seconds: float = SLICE,
    ) -> None:
        self.db = db
        self.publishers = publishers
        self.circuit_of = circuit_of
        self.batch = batch
        self.dead_letter_attempts = dead_letter_attempts
        self.retry_delay = retry_delay
        self.slice_seconds = slice_seconds
        self.published = 0  # events acknowledged (figures and tests)
        self.dead_lettered = 0
        self.failed = 0  # publishes that failed (for a while) part-way or whole

    async def run(self, job: queue.Job) -> JobOutcome:
        try:
            endpoint_id = int(job.target or "")
        except ValueError:
            return Retry(f"a stream pump for no endpoint ({job.target!r})", permanent=True)
        endpoint = await asyncio.to_thread(self._endpoint, endpoint_id)
        if endpoint is None or not E.is_broker(endpoint.kind):
            return Done()  # removed since (its log went with it)
        circuit = self.circuit_of(endpoint.id)
        closed_at = circuit.open_until(time.time())
        if closed_at is not None:
            until = time.strftime("%H:%M:%S", time.localtime(closed_at))
            return Defer(
                closed_at, f"{circuit.reason} (the endpoint keeps failing: next try {until})"
            )
        ends = time.monotonic() + self.slice_seconds
        progressed = False
        sent, entries = await asyncio.to_thread(self._read, endpoint_id)
        # The pipeline: while a batch is being published, the next one is read (when
        # the batch was full: a short one was the end), and the position is moved past
        # the batch before (each move waits for the one before). A move answers the
        # endpoint's `head` under its lock: at the end of the log, the last move says
        # whether the pump may stop.
        advancing: asyncio.Task[int | None] | None = None
        try:
            while True:
                if not entries:
                    if advancing is not None:
                        head = await advancing
                        advancing = None
                        if head is not None and head <= sent:
                            return Done()
                        # More came, or another pump moved the position: read on.
                    elif not await asyncio.to_thread(self._settle, endpoint_id):
                        return Done()
                    sent, entries = await asyncio.to_thread(self._read, endpoint_id)
                    continue
                publishers = self.publishers()
                if publishers is None:  # the service is stopping
                    return Defer(time.time() + 1.0)
                following: asyncio.Task[list[stream_log.Entry]] | None = None
                if len(entries) >= self.batch:
                    following = asyncio.create_task(
                        asyncio.to_thread(self._read_after, endpoint_id, entries[-1].seq)
                    )
                items = [outgoing(e, endpoint.session) for e in entries]
                try:
                    results = await publishers.publish(endpoint.id, endpoint.url, items)
                except BaseException:
                    await _cancelled(following)
                    raise
                upto, acked, dead, failure = sent, 0, [], None
                for entry, result in zip(entries, results, strict=True):
                    if isinstance(result, Published):
                        upto = entry.seq
                        acked += 1
                    elif result.permanent:
                        dead.append((entry, result))
                        upto = entry.seq
                    else:
                        failure = result
                        break
                if advancing is not None:
                    moved = await advancing
                    advancing = None
                    if moved is None:
                        # Another pump moved the position: go on from where it is now.
                        await _cancelled(following)
                        sent, entries = await asyncio.to_thread(self._read, endpoint_id)
                        continue
                if upto > sent:
                    advancing = asyncio.create_task(
                        asyncio.to_thread(self._advance, endpoint, sent, upto, dead)
                    )
                    progressed = True
                    self.published += acked
                    self.dead_lettered += len(dead)
                    sent = upto
                if failure is not None:
                    await _cancelled(following)
                    return self._failed(endpoint.id, circuit, failure, progressed)
                circuit.succeeded()
                if time.monotonic() >= ends:
                    # Taking turns with the other deliveries. No reason given: it is
                    # not an error, and the dashboard lists the reasons jobs wait as
                    # errors.
                    await _cancelled(following)
                    return Defer(time.time())
                entries = [] if following is None else await following
        finally:
            if advancing is not None:
                # The last move is this run's to make, even when it is being stopped.
                await asyncio.shield(advancing)

    def _failed(
        self, endpoint_id: int, circuit: Circuit, failure: Failed, progressed: bool
    ) -> JobOutcome:
        self.failed += 1
        if circuit.failed(time.time(), failure.error):
            log.warning(
                "endpoint %s keeps failing; leaving it alone until %s",
                endpoint_id,
                time.strftime("%H:%M:%S", time.localtime(circuit.until)),
            )
        if progressed:
            # It took events until a moment ago: try again soon, without counting a
            # failed try against the pump (its back-off is for a broker that is away).
            return Defer(time.time() + self.retry_delay, failure.error)
        return Retry(failure.error)

    # The database side (in a worker thread).

    def _endpoint(self, endpoint_id: int) -> E.Endpoint | None:
        with self.db.read() as conn:
            return E.get(conn, endpoint_id)

    def _read(self, endpoint_id: int) -> tuple[int, list[stream_log.Entry]]:
        with self.db.read() as conn:
            return stream_log.read(conn, endpoint_id, self.batch)

    def _read_after(self, endpoint_id: int, seq: int) -> list[stream_log.Entry]:
        with self.db.read() as conn:
            return stream_log.read_after(conn, endpoint_id, seq, self.batch)

    def _settle(self, endpoint_id: int) -> bool:
        with self.db.write() as conn:
            return stream_log.settle(conn, endpoint_id, now=time.time())

    def _advance(
        self,
        endpoint: E.Endpoint,
        sent: int,
        upto: int,
        dead: list[tuple[stream_log.Entry, Failed]],
    ) -> int | None:
        """Move the position and record the dead letters; the head as of the move, or
        None when another pump moved it first (it recorded what it was refused)."""
        now = time.time()
        with self.db.write() as conn:
            head = stream_log.advance(conn, endpoint.id, sent, upto, now=now)
            if head is None:
                return None
            by_session: dict[int | None, list[tuple[str, dict[str, Any], str]]] = {}
            for entry, failed in dead:
                envelope = json.loads(entry.body)
                by_session.setdefault(entry.session_id, []).append(
                    (
                        f"{endpoint.id}:{entry.event_id}",
                        {"endpoint": endpoint.id, "envelope": envelope},
                        failed.error,
                    )
                )
            for session_id, rows in by_session.items():
                queue.add_failed(
                    conn,
                    rows,
                    kind=endpoint.kind,
                    session_id=session_id,
                    target=str(endpoint.id),
                    max_attempts=self.dead_letter_attempts,
                    now=now,
                )
        return head
