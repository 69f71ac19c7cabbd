"""The ingestion side of delivery: batch changes and outbox records become jobs.

Both run inside the transaction that writes the change, so a delivery exists if and
only if its change was committed. A failure here must not cost the mirror its rows:
the work runs in a savepoint, and if it fails the batch still commits (the error is
logged and counted) rather than making ingestion fail.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Connection, select

from wasync.delivery.changes import Before, capture, changed_events
from wasync.delivery.endpoints import EndpointCache
from wasync.delivery.enqueue import enqueue_events
from wasync.delivery.envelope import Event
from wasync.delivery.topics import EVENT_TYPES
from wasync.domain.batch import Batch
from wasync.store.schema import sessions
from wasync.store.writes import WriteResult

log = logging.getLogger(__name__)

_FAILED = object()


class DeliveryRecorder:
    """The transaction hook (with `before_write`) and the outbox listener."""

    def __init__(
        self, endpoints: EndpointCache, *, max_attempts: int, public_url: str | None = None
    ) -> None:
        self.endpoints = endpoints
        self.max_attempts = max_attempts
        self.public_url = public_url
        self.enqueued = 0
        self.errors = 0
        self._names: dict[int, str] = {}
        self._warned = False
        self._lock = threading.Lock()

    def session_name(self, conn: Connection, session_id: int) -> str:
        name = self._names.get(session_id)
        if name is None:
            name = conn.execute(
                select(sessions.c.name).where(sessions.c.id == session_id)
            ).scalar_one()
            self._names[session_id] = name
        return name

    # The transaction hook (sync/hooks.py: a BeforeAfterHook).

    def before_write(self, conn: Connection, session_id: int, batch: Batch) -> Any:
        """What the batch's facts were before it is written (None: no endpoint wants
        them; _FAILED: could not read, nothing is enqueued for this batch)."""
        try:
            wanted = self.endpoints.topics_of(conn, self.session_name(conn, session_id))
            if not wanted:
                return None
            with conn.begin_nested():
                return capture(conn, session_id, batch, wanted)
        except Exception:
            self._failed("reading the rows before a batch")
            return _FAILED

    def after_write(
        self, conn: Connection, session_id: int, batch: Batch, result: WriteResult, before: Any
    ) -> None:
        if before is None or before is _FAILED:
            return
        self._record(conn, session_id, batch, before)

    def __call__(
        self, conn: Connection, session_id: int, batch: Batch, result: WriteResult
    ) -> None:
        """Called as a plain hook (without `before_write`): every fact counts as new."""
        try:
            before = self._unknown_before(conn, self.session_name(conn, session_id))
        except Exception:
            self._failed("recording the deliveries of a batch")
            return
        self._record(conn, session_id, batch, before)

    def _record(self, conn: Connection, session_id: int, batch: Batch, before: Before) -> None:
        try:
            session = self.session_name(conn, session_id)
            endpoints = self.endpoints.for_session(conn, session)
            if not endpoints:
                return
            with conn.begin_nested():
                events = changed_events(conn, session_id, session, batch, before)
                if events:
                    self._enqueue(conn, session_id, endpoints, events)
        except Exception:
            self._failed("recording the deliveries of a batch")

    def _unknown_before(self, conn: Connection, session: str) -> Before:
        # A caller wrote the batch without `run_before_write`: every fact counts as
        # new. Receivers still dedupe (fact ids are stable), but say so once.
        if not self._warned:
            self._warned = True
            log.warning(
                "a batch was written without run_before_write(): webhooks may repeat "
                "events of replayed facts (same event ids)"
            )
        return Before(self.endpoints.topics_of(conn, session), known=False)

    # The outbox listener (outbox.py): avatar changes and other durable events.

    def on_outbox(
        self, conn: Connection, session_id: int, topic: str, data: dict[str, Any]
    ) -> None:
        if topic not in EVENT_TYPES:
            return
        try:
            session = self.session_name(conn, session_id)
            endpoints = [e for e in self.endpoints.for_session(conn, session) if e.wants(topic)]
            if not endpoints:
                return
            event = outbox_event(session, topic, data)
            with conn.begin_nested():
                self._enqueue(conn, session_id, endpoints, [event])
        except Exception:
            self._failed(f"recording the deliveries of a {topic} event")

    def _enqueue(
        self, conn: Connection, session_id: int | None, endpoints: Any, events: list[Event]
    ) -> None:
        n = enqueue_events(
            conn,
            session_id,
            endpoints,
            events,
            max_attempts=self.max_attempts,
            public_url=self.public_url,
        )
        with self._lock:
            self.enqueued += n

    def _failed(self, what: str) -> None:
        with self._lock:
            self.errors += 1
        log.exception("webhooks: %s failed; the mirror's write goes on without them", what)


def outbox_event(session: str, topic: str, data: dict[str, Any]) -> Event:
    data = {"session": session, **data}
    if topic == "avatar" and data.get("pictureId"):
        # A picture is one fact: recording it twice yields the same event id.
        return Event.of_fact(session, topic, data, data.get("jid"), data["pictureId"])
    return Event.occurrence(session, topic, data)
