"""What every broker publisher shares: results, the deadline, connect and reconnect.

A publisher owns one long-lived connection to one endpoint's broker. It connects on
the first call, and after a failure that leaves the connection in doubt (down,
refused, timed out) it drops it; the next call connects afresh. Calls are
serialised: the events of one call go out in order on one connection, and a later
call's events after them, which is what keeps each session's events in order on
brokers that keep order.

`publish_many(envelopes)` answers one result per envelope, in order (an envelope is
a dict, or an `Outgoing`: the same fields with its body serialised already, as a
stored log entry is):

- `Published()`: the broker acknowledged it (JetStream ack, RabbitMQ confirm, XADD id);
- `Failed(error)`: not acknowledged; retried later with back-off (down, refused,
  timeout, a broker that said "not now");
- `Failed(error, permanent=True)`: the target itself is wrong (bad credentials, a
  name of another type, a message the broker will never take): dead-lettered.

Every call has a total deadline (connecting included). Envelopes acknowledged before
it stay published; the rest fail as transient, and the connection is dropped.
Errors never carry the URL's credentials.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from wasync.delivery.envelope import body_of
from wasync.delivery.streams import targets

log = logging.getLogger(__name__)

Envelope = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event as brokers take it: what they route and dedupe by, and the body."""

    id: str
    event: str
    session: str
    timestamp: float | None
    body: bytes  # the envelope's JSON, exactly as sent

    @classmethod
    def of(cls, envelope: Envelope | Outgoing) -> Outgoing:
        if isinstance(envelope, Outgoing):
            return envelope
        stamp = envelope.get("timestamp")
        return cls(
            id=str(envelope["id"]),
            event=str(envelope["event"]),
            session=str(envelope["session"]),
            timestamp=float(stamp) if isinstance(stamp, int | float) else None,
            body=body_of(dict(envelope)),
        )


@dataclass(frozen=True, slots=True)
class Published:
    duplicate: bool = False  # JetStream recognised the event id and stored nothing new


@dataclass(frozen=True, slots=True)
class Failed:
    error: str
    permanent: bool = False


PublishResult = Published | Failed


@dataclass(frozen=True, slots=True)
class StreamSettings:
    timeout: float = 10.0  # total seconds of one publish_many call
    nats_create_stream: bool = True
    nats_duplicate_window: float = 120.0
    redis_maxlen: int = 1_000_000  # 0: no cap


T = TypeVar("T", bound=targets.NatsTarget | targets.AmqpTarget | targets.RedisTarget)


class Publisher(abc.ABC, Generic[T]):
    kind: ClassVar[str]

    def __init__(self, url: str, target: T, settings: StreamSettings) -> None:
        self.url = url
        self.target = target
        self.settings = settings
        self.shown = targets.mask(url)
        self.last_used = time.monotonic()
        self._lock = asyncio.Lock()
        self._connected = False

    async def publish_many(self, envelopes: Sequence[Envelope | Outgoing]) -> list[PublishResult]:
        """Publish in order; one result per envelope (see the module docstring)."""
        if not envelopes:
            return []
        items = [Outgoing.of(e) for e in envelopes]
        async with self._lock:
            self.last_used = time.monotonic()
            results: list[PublishResult | None] = [None] * len(envelopes)
            failure: Failed | None = None
            try:
                async with asyncio.timeout(self.settings.timeout):
                    if not self._connected:
                        await self._connect()
                        self._connected = True
                    await self._send(items, results)
            except TimeoutError:
                failure = Failed(
                    f"{self.kind}: no acknowledgement from {self.shown} within "
                    f"{self.settings.timeout:g} s"
                )
            except asyncio.CancelledError:
                await self._drop()  # stopped mid-call: what was sent is unknown
                raise
            except Exception as exc:
                failure = self._judge(exc)
            if failure is not None or any(r is None for r in results):
                # The connection's state is in doubt: start afresh next time.
                await self._drop()
            fallback = failure or Failed(f"{self.kind}: not acknowledged by {self.shown}")
            return [r if r is not None else fallback for r in results]

    def _judge(self, exc: BaseException) -> Failed:
        failed = self.classify(exc)
        return Failed(targets.scrub(failed.error, self.url), failed.permanent)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _drop(self) -> None:
        self._connected = False
        try:
            await asyncio.wait_for(self._disconnect(), timeout=5.0)
        except Exception as exc:  # closing a broken connection may fail: it is gone anyway
            log.debug("%s: closing %s: %s", self.kind, self.shown, type(exc).__name__)

    def reason(self, exc: BaseException) -> str:
        """An exception as a short, credential-free phrase."""
        text = str(exc).strip() or type(exc).__name__
        return targets.scrub(" ".join(text.split())[:300], self.url)

    @abc.abstractmethod
    async def _connect(self) -> None:
        """Open the connection and make sure the destination exists."""

    @abc.abstractmethod
    async def _send(self, items: Sequence[Outgoing], results: list[PublishResult | None]) -> None:
        """Send every item, then fill `results[i]` as each is acknowledged or refused."""

    @abc.abstractmethod
    async def _disconnect(self) -> None:
        """Close the connection, if any (idempotent)."""

    @abc.abstractmethod
    def classify(self, exc: BaseException) -> Failed:
        """A failure of the connection or of the whole call: transient or permanent."""
