"""Check one JID's picture with WhatsApp and store what it says.

Shared by the session's worker (jobs) and the on-demand endpoint, so both go through
the same rate limiter and the same rules:

- the picture id already held is sent along, so an unchanged picture costs no download
  (unless the media store lost it, in which case it is fetched again); with a store
  every node shares, a picture another node stored is there, and is not fetched again;
- a new picture is downloaded, verified and stored, then the rows, the outbox record
  (webhooks) and nothing else are committed in one transaction; with the database
  store the picture's bytes commit in that same transaction (the local store writes
  its file atomically just before); the bus event follows the commit;
- not set or hidden (404/401): 'none', re-checked only after the longer TTL;
- 429: the session pauses; the caller gets `rate_limited` and the time to wait.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Connection

from wasync.avatars import records
from wasync.avatars.config import AvatarConfig
from wasync.avatars.download import (
    PictureDownloadError,
    PictureRejected,
    check_picture,
    download_picture,
)
from wasync.avatars.pace import PictureRateLimiter
from wasync.avatars.storage import AvatarStorage
from wasync.bus import BusEvent, EventBus
from wasync.domain.jid import parse_jid
from wasync.domain.models import (
    Picture,
    PictureForbidden,
    PictureNotSet,
    PictureResult,
    PictureUnchanged,
)
from wasync.engines.base import (
    Engine,
    EngineError,
    LoggedOutError,
    NotConnected,
    RateLimited,
    TransientEngineError,
)
from wasync.errors import StoreError
from wasync.outbox import Outbox
from wasync.store.db import Database
from wasync.sync.commit import WriteFn

log = logging.getLogger(__name__)

TOPIC = "avatar"


class Outcome(enum.StrEnum):
    NEW = "new"
    UNCHANGED = "unchanged"
    NONE = "none"
    RATE_LIMITED = "rate_limited"
    FAILED = "failed"


class Failure(enum.StrEnum):
    TRANSIENT = "transient"  # try again later, with back-off
    PERMANENT = "permanent"  # trying again will not help (not a picture, too large)
    OFFLINE = "offline"  # the session is not connected: wait, it is nobody's fault


@dataclass(frozen=True, slots=True)
class AvatarResult:
    jid: str
    outcome: Outcome
    profile_picture: str | None = None
    picture_id: str | None = None
    timestamp: int | None = None
    error: str | None = None
    failure: Failure | None = None
    retry_after: float | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "jid": self.jid,
            "outcome": self.outcome.value,
            "profilePicture": self.profile_picture,
            "profilePictureId": self.picture_id,
            "profilePictureTimestamp": self.timestamp,
        }
        if self.error is not None:
            out["error"] = self.error
        if self.retry_after is not None:
            out["retryAfter"] = round(self.retry_after, 3)
        return out


@dataclass(slots=True)
class SessionContext:
    """What checking a picture of one session needs."""

    db: Database
    session_id: int
    session_name: str
    engine: Engine
    storage: AvatarStorage
    http: httpx.AsyncClient
    limiter: PictureRateLimiter
    config: AvatarConfig
    outbox: Outbox
    bus: EventBus
    # The session's (fenced) write transaction; db.write when none is given.
    write: WriteFn | None = None

    def writing(self) -> AbstractContextManager[Connection]:
        return (self.write or self.db.write)()


class AvatarFetcher:
    def __init__(self, ctx: SessionContext) -> None:
        self.ctx = ctx
        self.outcomes: dict[str, int] = {o.value: 0 for o in Outcome}
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # lock, callers holding or waiting

    @asynccontextmanager
    async def _jid_lock(self, jid: str) -> AsyncIterator[None]:
        # The worker and an on-demand call for the same JID must not both download it.
        lock, users = self._locks.get(jid) or (asyncio.Lock(), 0)
        self._locks[jid] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[jid]
            if users == 1:
                del self._locks[jid]
            else:
                self._locks[jid] = (lock, users - 1)

    async def check(self, jid: str) -> AvatarResult:
        jid = str(parse_jid(jid))
        async with self._jid_lock(jid):
            result = await self._check(jid)
        self.outcomes[result.outcome.value] += 1
        return result

    async def _check(self, jid: str) -> AvatarResult:
        ctx = self.ctx
        stored = await asyncio.to_thread(self._stored, jid)
        existing = stored.picture_id
        if existing and not await asyncio.to_thread(ctx.storage.exists, ctx.session_name, jid):
            existing = None  # the picture is gone: ask as if we had nothing
        await ctx.limiter.acquire()
        try:
            answer: PictureResult = await ctx.engine.profile_picture(jid, existing)
        except RateLimited as error:
            wait = ctx.limiter.rate_limited(error.retry_after)
            log.warning("%s: WhatsApp rate-limited pictures; pausing %.1fs", ctx.session_name, wait)
            await asyncio.to_thread(self._save_pause, time.time() + wait)
            return AvatarResult(jid, Outcome.RATE_LIMITED, error=str(error), retry_after=wait)
        except (NotConnected, LoggedOutError) as error:
            return _failed(jid, error, Failure.OFFLINE)
        except TransientEngineError as error:
            ctx.limiter.answered()
            return _failed(jid, error, Failure.TRANSIENT)
        except EngineError as error:
            ctx.limiter.answered()
            return _failed(jid, error, Failure.PERMANENT)
        ctx.limiter.answered()
        now = int(time.time())
        match answer:
            case Picture(id=picture_id, url=url):
                return await self._store_new(jid, picture_id, url, stored, now)
            case PictureUnchanged(id=picture_id):
                path = ctx.storage.url_for(ctx.session_name, jid)
                await asyncio.to_thread(self._save, jid, path, picture_id, now, None)
                return AvatarResult(jid, Outcome.UNCHANGED, path, picture_id, now)
            case PictureNotSet() | PictureForbidden():
                had_file = await asyncio.to_thread(self._save_none, jid, now)
                if had_file or (stored.picture not in (None, records.NONE)):
                    ctx.bus.publish(BusEvent(ctx.session_name, TOPIC, self._gone_data(jid, now)))
                return AvatarResult(jid, Outcome.NONE, records.NONE, None, now)
        raise AssertionError(f"unexpected picture answer {answer!r}")  # pragma: no cover

    async def _store_new(
        self,
        jid: str,
        picture_id: str,
        url: str,
        stored: records.StoredAvatar,
        now: int,
    ) -> AvatarResult:
        ctx = self.ctx
        try:
            data = await download_picture(
                ctx.http, url, ctx.config.max_bytes, deadline=2 * ctx.config.download_timeout
            )
            await asyncio.to_thread(check_picture, data, ctx.config.max_pixels)
        except PictureDownloadError as error:
            return _failed(jid, error, Failure.TRANSIENT)
        except PictureRejected as error:
            log.warning("%s: picture of %s rejected: %s", ctx.session_name, jid, error)
            return _failed(jid, error, Failure.PERMANENT)
        if not ctx.storage.transactional:
            await asyncio.to_thread(ctx.storage.write, ctx.session_name, jid, data)
        path = ctx.storage.url_for(ctx.session_name, jid)
        data_event = {
            "session": ctx.session_name,
            "jid": jid,
            "phone": parse_jid(jid).phone or stored.phone,
            "pictureUrl": path,
            "pictureId": picture_id,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        await asyncio.to_thread(self._save, jid, path, picture_id, now, data_event, data)
        ctx.bus.publish(BusEvent(ctx.session_name, TOPIC, {**data_event, "timestamp": now}))
        return AvatarResult(jid, Outcome.NEW, path, picture_id, now)

    def _save_pause(self, until: float) -> None:
        try:
            with self.ctx.writing() as conn:
                records.save_pause(conn, self.ctx.session_id, until)
        except StoreError:  # the pause holds in memory; only a restart would forget it
            log.exception("%s: could not record the rate-limit pause", self.ctx.session_name)

    def _stored(self, jid: str) -> records.StoredAvatar:
        with self.ctx.db.read() as conn:
            return records.stored_avatar(conn, self.ctx.session_id, jid)

    def _save(
        self,
        jid: str,
        picture: str,
        picture_id: str | None,
        now: int,
        event: dict[str, Any] | None,
        picture_bytes: bytes | None = None,
    ) -> None:
        ctx = self.ctx
        with ctx.writing() as conn:
            if picture_bytes is not None and ctx.storage.transactional:
                ctx.storage.write(ctx.session_name, jid, picture_bytes, conn=conn)
            records.save_avatar(
                conn, ctx.session_id, jid, picture=picture, picture_id=picture_id, now=now
            )
            if event is not None:
                # Same transaction as the row: webhooks fire for exactly what was stored.
                ctx.outbox.record(conn, ctx.session_id, TOPIC, event)

    def _save_none(self, jid: str, now: int) -> bool:
        """Record 'none' and drop the stored picture; whether there was one."""
        ctx = self.ctx
        if not ctx.storage.transactional:
            self._save(jid, records.NONE, None, now, None)
            return ctx.storage.remove(ctx.session_name, jid)
        with ctx.writing() as conn:
            records.save_avatar(
                conn, ctx.session_id, jid, picture=records.NONE, picture_id=None, now=now
            )
            return ctx.storage.remove(ctx.session_name, jid, conn=conn)

    def _gone_data(self, jid: str, now: int) -> dict[str, Any]:
        return {
            "session": self.ctx.session_name,
            "jid": jid,
            "phone": parse_jid(jid).phone,
            "pictureUrl": records.NONE,
            "pictureId": None,
            "sha256": None,
            "timestamp": now,
        }


def _failed(jid: str, error: Exception, failure: Failure) -> AvatarResult:
    return AvatarResult(jid, Outcome.FAILED, error=str(error), failure=failure)
