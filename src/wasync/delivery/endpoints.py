"""Webhook endpoints: validation, storage, and the per-process cache the hot path reads.

An endpoint belongs to a session (by name), has a URL, a kind (`webhook`: signed
JSON; `discord`: Discord's webhook API; `nats`, `rabbitmq`, `redis`: a broker, see
`streams/`), an event filter and, for signed webhooks, a secret. Endpoints come from
the API/CLI (`source='api'`) or the config file (`source='file'`, replaced on every
load).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from wasync.delivery import topics
from wasync.delivery.http import redact_url
from wasync.delivery.signing import new_secret
from wasync.delivery.ssrf import Guard, InvalidURL, target_of
from wasync.delivery.streams import log as stream_log
from wasync.delivery.streams import targets as broker_targets
from wasync.errors import DomainError
from wasync.jobs import queries as queue
from wasync.store.schema import webhook_endpoints
from wasync.store.sessions import validate_session_name

HTTP_KINDS = ("webhook", "discord")
KINDS = (*HTTP_KINDS, *broker_targets.KINDS)
DELIVERY_KINDS = KINDS  # job kinds in the jobs table: an endpoint's kind is its jobs' kind
MAX_URL = 2048
MIN_SECRET = 16
DISCORD_URL = re.compile(
    r"^https://(?:(?:canary|ptb)\.)?discord(?:app)?\.com/api(?:/v\d+)?/webhooks/\d+/[\w-]+/?$"
)


class DuplicateEndpoint(DomainError):
    pass


class EndpointNotFound(DomainError):
    pass


class FileManaged(DomainError):
    """The endpoint comes from the webhooks file: change it there."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    session: str
    url: str
    kind: str
    events: tuple[str, ...]
    secret: str | None
    description: str | None
    source: str
    created_at: int
    updated_at: int

    @classmethod
    def from_row(cls, row: Any) -> Endpoint:
        m = row._mapping
        return cls(
            id=int(m["id"]),
            session=m["session_name"],
            url=m["url"],
            kind=m["kind"],
            events=tuple(e for e in m["events"].split(",") if e),
            secret=m["secret"],
            description=m["description"],
            source=m["source"],
            created_at=int(m["created_at"]),
            updated_at=int(m["updated_at"]),
        )

    def wants(self, topic: str) -> bool:
        return topics.wants(self.events, topic, kind=self.kind)

    def public(self, *, with_secret: bool = False) -> dict[str, Any]:
        """What the API and CLI show: the URL redacted, the secret only when just made."""
        out: dict[str, Any] = {
            "id": self.id,
            "session": self.session,
            "url": redact_url(self.url),
            "kind": self.kind,
            "events": list(self.events),
            "description": self.description,
            "source": self.source,
            "createdAt": self.created_at,
        }
        if with_secret:
            # A webhook's URL may carry its token: shown whole once, when just made.
            # A broker's credentials are never shown again, not even then.
            out["url"] = redact_url(self.url) if is_broker(self.kind) else self.url
            out["secret"] = self.secret
        return out


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """A validated endpoint, ready to store."""

    session: str
    url: str
    kind: str
    events: tuple[str, ...]
    secret: str | None
    description: str | None = None


def kind_for(url: str, kind: str | None) -> str:
    broker = broker_targets.kind_of(url)
    if kind is None:
        if broker is not None:
            return broker
        return "discord" if DISCORD_URL.match(url) else "webhook"
    if kind not in KINDS:
        raise DomainError(f"unknown endpoint kind {kind!r}: choose {', '.join(KINDS)}")
    if broker is not None and kind != broker:
        raise DomainError(f"a {url.split(':', 1)[0]}:// URL makes a {broker} endpoint, not {kind}")
    if broker is None and kind in broker_targets.KINDS:
        scheme = {"nats": "nats://", "rabbitmq": "amqp://", "redis": "redis://"}[kind]
        raise DomainError(f"a {kind} endpoint needs a {scheme} URL")
    return kind


def is_broker(kind: str) -> bool:
    """Brokers are reached by the operator's configuration, not fetched like webhooks."""
    return kind in broker_targets.KINDS


def check_shape(
    session: str,
    url: str,
    events: str | list[str] | tuple[str, ...],
    *,
    kind: str | None = None,
    secret: str | None = None,
    description: str | None = None,
) -> EndpointSpec:
    """Everything that needs no network: names, URL form, filter, secret."""
    validate_session_name(session)
    url = url.strip()
    if len(url) > MAX_URL:
        raise InvalidURL(f"the URL is longer than {MAX_URL} characters")
    resolved_kind = kind_for(url, kind)
    if is_broker(resolved_kind):
        broker_targets.parse(url)
    else:
        target_of(url)
    parsed = topics.parse_filter(events)
    if is_broker(resolved_kind):
        if secret:
            raise DomainError(
                "broker endpoints are not signed: leave the secret out (credentials go in the URL)"
            )
        secret = None
    elif resolved_kind == "discord":
        topics.check_discord_filter(parsed)
        if secret:
            raise DomainError("Discord endpoints are not signed: leave the secret out")
        secret = None
    elif secret is None or secret == "":
        secret = new_secret()
    elif len(secret) < MIN_SECRET:
        raise DomainError(f"the secret must be at least {MIN_SECRET} characters long")
    if description is not None and len(description) > 200:
        raise DomainError("the description is longer than 200 characters")
    return EndpointSpec(session, url, resolved_kind, parsed, secret, description or None)


async def validate(
    guard: Guard,
    session: str,
    url: str,
    events: str | list[str] | tuple[str, ...],
    *,
    kind: str | None = None,
    secret: str | None = None,
    description: str | None = None,
) -> EndpointSpec:
    """`check_shape`, then the SSRF guard on what the host resolves to now.

    Broker URLs skip the guard: they name the operator's own infrastructure (usually
    loopback or a private network), and wasync publishes there rather than fetching
    a URL on a third party's behalf (README: Event streams, trust model).
    """
    spec = check_shape(session, url, events, kind=kind, secret=secret, description=description)
    if not is_broker(spec.kind):
        await guard.check_url(spec.url)
    return spec


def _values(spec: EndpointSpec, source: str, now: int) -> dict[str, Any]:
    return {
        "session_name": spec.session,
        "url": spec.url,
        "kind": spec.kind,
        "events": ",".join(spec.events),
        "secret": spec.secret,
        "description": spec.description,
        "source": source,
        "created_at": now,
        "updated_at": now,
    }


def add(conn: Connection, spec: EndpointSpec, *, source: str = "api") -> Endpoint:
    now = int(time.time())
    try:
        with conn.begin_nested():
            new_id = conn.execute(
                webhook_endpoints.insert()
                .values(_values(spec, source, now))
                .returning(webhook_endpoints.c.id)
            ).scalar_one()
    except IntegrityError:
        raise DuplicateEndpoint(
            f"session {spec.session!r} already has an endpoint for {redact_url(spec.url)}"
        ) from None
    found = get(conn, int(new_id))
    assert found is not None
    return found


def get(conn: Connection, endpoint_id: int) -> Endpoint | None:
    row = conn.execute(
        select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
    ).one_or_none()
    return Endpoint.from_row(row) if row is not None else None


def list_all(conn: Connection, session: str | None = None) -> list[Endpoint]:
    stmt = select(webhook_endpoints).order_by(webhook_endpoints.c.id)
    if session is not None:
        stmt = stmt.where(webhook_endpoints.c.session_name == session)
    return [Endpoint.from_row(r) for r in conn.execute(stmt)]


def remove(conn: Connection, endpoint_id: int) -> int:
    """Delete an endpoint and its queued deliveries; returns how many were cancelled."""
    cancelled = cancel_pending(conn, [endpoint_id])
    res = conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))
    if res.rowcount != 1:
        raise EndpointNotFound(f"no webhook endpoint {endpoint_id}")
    return cancelled


def cancel_pending(conn: Connection, endpoint_ids: list[int]) -> int:
    """Drop queued (not running) deliveries to these endpoints: their jobs, and the
    events waiting in a broker endpoint's log (its rows go with the endpoint's)."""
    waiting = stream_log.waiting(conn, endpoint_ids)
    targets = [str(i) for i in endpoint_ids]
    queue.cancel_queued(conn, (stream_log.PUMP,), targets)
    return waiting + queue.cancel_queued(conn, DELIVERY_KINDS, targets)


def replace_file_endpoints(conn: Connection, specs: list[EndpointSpec]) -> tuple[int, int]:
    """Make the `file` endpoints exactly `specs` (kept ids for unchanged URLs).

    Returns (endpoints now from the file, endpoints removed).
    """
    e = webhook_endpoints.c
    now = int(time.time())
    existing = {
        (r.session_name, r.url): (int(r.id), r.source)
        for r in conn.execute(select(e.id, e.session_name, e.url, e.source))
    }
    wanted = {(s.session, s.url) for s in specs}
    stale = [i for key, (i, source) in existing.items() if source == "file" and key not in wanted]
    cancel_pending(conn, stale)
    if stale:
        conn.execute(delete(webhook_endpoints).where(e.id.in_(stale)))
    for spec in specs:
        found = existing.get((spec.session, spec.url))
        values = _values(spec, "file", now)
        if found is None:
            conn.execute(webhook_endpoints.insert().values(values))
            continue
        endpoint_id, source = found
        if source != "file":
            raise DuplicateEndpoint(
                f"the config file names {redact_url(spec.url)} for session {spec.session!r}, "
                "which the API or CLI configured already: remove one of them"
            )
        values.pop("created_at")
        conn.execute(update(webhook_endpoints).where(e.id == endpoint_id).values(values))
    return len(specs), len(stale)


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(webhook_endpoints)).scalar_one())


class EndpointCache:
    """Endpoints by session, re-read at most every `ttl` seconds (and on `invalidate`).

    The ingestion hook consults this on every batch; with no endpoint configured that
    costs a dictionary lookup, so ingestion without webhooks pays nothing. Changes
    made by another process (the CLI) show up within `ttl`.
    """

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._by_session: dict[str, tuple[Endpoint, ...]] = {}
        self._topics: dict[str, frozenset[str]] = {}
        self._by_id: dict[int, Endpoint] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")

    def refresh_if_stale(self, conn: Connection) -> None:
        if time.monotonic() - self._loaded_at < self.ttl:
            return
        with self._lock:
            if time.monotonic() - self._loaded_at < self.ttl:
                return
            self.load(list_all(conn))

    def load(self, endpoints: list[Endpoint]) -> None:
        by_session: dict[str, list[Endpoint]] = {}
        for endpoint in endpoints:
            by_session.setdefault(endpoint.session, []).append(endpoint)
        self._by_session = {k: tuple(v) for k, v in by_session.items()}
        self._topics = {
            session: frozenset(t for t in topics.EVENT_TYPES if any(e.wants(t) for e in group))
            for session, group in by_session.items()
        }
        self._by_id = {e.id: e for e in endpoints}
        self._loaded_at = time.monotonic()

    def for_session(self, conn: Connection, session: str) -> tuple[Endpoint, ...]:
        self.refresh_if_stale(conn)
        return self._by_session.get(session, ())

    def topics_of(self, conn: Connection, session: str) -> frozenset[str]:
        """The topics any endpoint of `session` wants."""
        self.refresh_if_stale(conn)
        return self._topics.get(session, frozenset())

    def cached_topics(self, session: str) -> frozenset[str] | None:
        """Like `topics_of` without a database: None when the cache is stale."""
        if time.monotonic() - self._loaded_at >= self.ttl:
            return None
        return self._topics.get(session, frozenset())

    @property
    def size(self) -> int:
        return len(self._by_id)
