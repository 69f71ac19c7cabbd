"""NATS JetStream: `<prefix>.<session>.<event>`, the event id as `Nats-Msg-Id`.

Every envelope of a call is published at once (`publish_async`) and the acks are
awaited together, so a batch costs one round trip. JetStream drops a message whose
`Nats-Msg-Id` it saw within the stream's duplicate window and acks it as a
duplicate, so a re-send after a lost ack stores nothing twice.

The client's own reconnection is off: a connection that breaks fails the call
(transient), and the next call connects again, within its deadline.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from wasync.delivery.streams.publisher import (
    Failed,
    Outgoing,
    Published,
    Publisher,
    PublishResult,
)
from wasync.delivery.streams.targets import NatsTarget

MSG_ID = "Nats-Msg-Id"
MAX_PENDING = 10_000  # acks awaited at once; a larger batch waits for room


async def _quiet(_: Exception) -> None:
    """The client's error callback: failures reach us as exceptions, judged there."""


class NatsPublisher(Publisher[NatsTarget]):
    kind = "nats"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None

    async def _connect(self) -> None:
        # Held before connecting: a failed first connect leaves the client's socket
        # open, and `_disconnect` must be able to close it.
        self._nc = nc = Client()
        await nc.connect(
            servers=[self.target.server],
            name="wasync",
            allow_reconnect=False,
            # The first connect tries each server this many times more (0 would be
            # "for ever"), then fails: the delivery's own back-off takes it from there.
            max_reconnect_attempts=1,
            reconnect_time_wait=0,
            connect_timeout=max(1, math.ceil(self.settings.timeout)),  # the call's deadline rules
            error_cb=_quiet,
        )
        self._js = nc.jetstream(
            timeout=self.settings.timeout, publish_async_max_pending=MAX_PENDING
        )
        if self.settings.nats_create_stream:
            await self._ensure_stream(self._js)

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        subjects = f"{self.target.prefix}.>"
        try:
            await js.find_stream_name_by_subject(subjects)
            return  # some stream already stores these subjects: publish into it
        except nats.js.errors.NotFoundError:
            pass
        await js.add_stream(
            name=self.target.stream,
            subjects=[subjects],
            duplicate_window=self.settings.nats_duplicate_window,
        )

    async def _send(self, items: Sequence[Outgoing], results: list[PublishResult | None]) -> None:
        js = self._js
        assert js is not None
        pending: list[tuple[int, asyncio.Future[Any]]] = []
        try:
            for i, item in enumerate(items):
                subject = self.target.subject(item.session, item.event)
                try:
                    future = await js.publish_async(subject, item.body, headers={MSG_ID: item.id})
                except nats.errors.MaxPayloadError as exc:
                    results[i] = Failed(f"nats: the event is too large ({exc})", permanent=True)
                    continue
                pending.append((i, future))
            for i, future in pending:
                try:
                    ack = await future
                except nats.js.errors.APIError as exc:
                    results[i] = self._api_error(exc)
                    continue
                results[i] = Published(duplicate=bool(ack.duplicate))
        finally:
            for _, future in pending:
                future.cancel()  # on a deadline or a broken connection: nobody awaits them

    def _api_error(self, exc: nats.js.errors.APIError) -> Failed:
        text = f"nats: JetStream refused the event: {self.reason(exc)}"
        # 503: no quorum, storage busy; anything else is the message or the stream.
        return Failed(text, permanent=(exc.code or 0) < 500)

    async def _disconnect(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            await nc.close()

    def classify(self, exc: BaseException) -> Failed:
        where = self.shown
        if isinstance(exc, nats.errors.NoServersError | OSError):
            return Failed(f"nats: could not reach {where}: {self.reason(exc)}")
        if isinstance(exc, nats.js.errors.NoStreamResponseError):
            return Failed(
                f"nats: no JetStream stream stores {self.target.prefix}.> on {where} "
                "(create one, or let wasync create it: WASYNC_STREAM_NATS_CREATE)"
            )
        if isinstance(
            exc, nats.errors.AuthorizationError | nats.errors.InvalidUserCredentialsError
        ):
            return Failed(f"nats: {where} refused the credentials", permanent=True)
        if isinstance(exc, nats.js.errors.APIError):
            text = f"nats: JetStream on {where} refused: {self.reason(exc)}"
            return Failed(text, permanent=(exc.code or 0) < 500)
        if "authorization" in str(exc).lower():
            return Failed(f"nats: {where} refused the credentials", permanent=True)
        if isinstance(exc, nats.errors.Error):  # closed, stale, an empty greeting, ...
            return Failed(f"nats: could not reach {where}: {self.reason(exc)}")
        return Failed(f"nats: {where}: {self.reason(exc)}")
