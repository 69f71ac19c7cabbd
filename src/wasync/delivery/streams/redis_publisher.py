"""Redis Streams: one XADD per event, a call's XADDs in one pipeline.

Each entry has the fields `id` (the event id), `event`, `session` and `envelope`
(the whole envelope as JSON, the same bytes a webhook receives). Entries are
trimmed with `MAXLEN ~ N` (approximate, so trimming stays cheap), N from the URL's
`maxlen` or the setting; 0 keeps everything.

The pipeline is not a transaction: each XADD succeeds or fails on its own, in
order, on one connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from wasync.delivery.streams.publisher import (
    Failed,
    Outgoing,
    Published,
    Publisher,
    PublishResult,
)
from wasync.delivery.streams.targets import RedisTarget

_RECOVERABLE = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)


class RedisPublisher(Publisher[RedisTarget]):
    kind = "redis"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: redis.asyncio.Redis | None = None
        maxlen = self.target.maxlen
        self.maxlen = self.settings.redis_maxlen if maxlen is None else maxlen

    async def _connect(self) -> None:
        self._client = redis.asyncio.Redis.from_url(
            self.target.url,
            socket_timeout=self.settings.timeout,
            socket_connect_timeout=self.settings.timeout,
            # Our retries are the delivery's: one failed try is reported, not hidden.
            retry=Retry(NoBackoff(), 0),
            max_connections=2,
            client_name="wasync",
        )
        await self._client.ping()

    async def _send(self, items: Sequence[Outgoing], results: list[PublishResult | None]) -> None:
        assert self._client is not None
        trim: dict[str, Any] = {"maxlen": self.maxlen, "approximate": True} if self.maxlen else {}
        pipe = self._client.pipeline(transaction=False)
        for item in items:
            fields = {
                "id": item.id,
                "event": item.event,
                "session": item.session,
                "envelope": item.body,
            }
            pipe.xadd(self.target.stream, fields, **trim)  # type: ignore[arg-type]
        answers = await pipe.execute(raise_on_error=False)
        for i, answer in enumerate(answers):
            if isinstance(answer, Exception):
                results[i] = self.classify(answer)
            else:
                results[i] = Published()

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def classify(self, exc: BaseException) -> Failed:
        where = self.shown
        if isinstance(exc, redis.exceptions.AuthenticationError):
            return Failed(f"redis: {where} refused the credentials", permanent=True)
        if isinstance(
            exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError | OSError
        ):
            return Failed(f"redis: could not reach {where}: {self.reason(exc)}")
        if isinstance(exc, redis.exceptions.ResponseError):
            text = f"redis: {where} refused the XADD: {self.reason(exc)}"
            # Out of memory, a read-only replica, a busy script: the server may recover.
            transient = isinstance(exc, _RECOVERABLE) or str(exc).startswith(("BUSY", "LOADING"))
            return Failed(text, permanent=not transient)
        return Failed(f"redis: {where}: {self.reason(exc)}")
