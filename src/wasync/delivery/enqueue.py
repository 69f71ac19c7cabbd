"""Events → deliveries, in the caller's transaction.

HTTP endpoints (webhooks, Discord) get one job per (endpoint, event). The job's
unique key is `<endpoint id>:<event id>`, so enqueueing the same event twice while it
is pending is a no-op; its payload holds the endpoint id and the whole envelope, so
every try sends the same bytes; its target is the endpoint, so the runner can keep
one slow endpoint from taking every delivery slot.

Broker endpoints (NATS, RabbitMQ, Redis) get the events appended to their log
(streams/log.py), published in order by the endpoint's pump: a broker takes
hundreds of events per round trip, and a job per event cost more than the publish.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection

from wasync.delivery.endpoints import Endpoint, is_broker
from wasync.delivery.envelope import Event, body_of
from wasync.delivery.streams import log as stream_log
from wasync.delivery.topics import PING
from wasync.jobs import queries as queue


def with_public_urls(event: Event, public_url: str | None) -> Event:
    """Avatar events name the picture by a path wasync serves; make it a full URL."""
    url = event.data.get("pictureUrl")
    if event.topic != "avatar" or not public_url or not isinstance(url, str):
        return event
    if not url.startswith("/"):
        return event
    data = {**event.data, "pictureUrl": public_url.rstrip("/") + url, "picturePath": url}
    return Event(event.id, event.topic, event.session, data, event.timestamp)


def enqueue_events(
    conn: Connection,
    session_id: int | None,
    endpoints: Iterable[Endpoint],
    events: Iterable[Event],
    *,
    max_attempts: int,
    public_url: str | None = None,
) -> int:
    """Enqueue each event for each endpoint that wants it; returns how many deliveries
    are new (jobs added, log entries appended)."""
    targets = list(endpoints)
    by_kind: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    logs: dict[int, list[tuple[str, str, str, float]]] = {}
    for event in events:
        envelope: dict[str, Any] | None = None
        body: str | None = None
        for endpoint in targets:
            if event.topic != PING and not endpoint.wants(event.topic):
                continue
            if envelope is None:
                envelope = with_public_urls(event, public_url).envelope()
            if is_broker(endpoint.kind):
                if body is None:
                    body = body_of(envelope).decode()
                entry = (event.id, event.topic, body, float(envelope["timestamp"]))
                logs.setdefault(endpoint.id, []).append(entry)
                continue
            by_kind.setdefault(endpoint.kind, []).append(
                (f"{endpoint.id}:{event.id}", {"endpoint": endpoint.id, "envelope": envelope})
            )
    appended = sum(
        stream_log.append(conn, endpoint_id, session_id, entries)
        for endpoint_id, entries in logs.items()
    )
    return appended + sum(
        queue.enqueue_many(
            conn,
            kind,
            session_id=session_id,
            keys_and_payloads=items,
            target_of=endpoint_target,
            max_attempts=max_attempts,
        )
        for kind, items in by_kind.items()
    )


def endpoint_target(payload: dict[str, Any]) -> str:
    return str(payload["endpoint"])
