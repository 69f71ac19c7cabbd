"""The one-shot picture job: numbers' new or changed profile pictures to Discord.

For a scheduler (cron, a cloud job runner): connect the stored session, ask for each
number's picture (passing the id posted last time, so WhatsApp can answer
"unchanged" without a download), post what is new, remember what was posted, exit.
Every outcome is per number; the job's exit code sums them up (see `JobReport`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from wasync.delivery import discord
from wasync.delivery.picture_posts import Posted, last_posted, record, target_key
from wasync.delivery.webhook_sink import Unreachable
from wasync.domain.events import SessionStatus
from wasync.domain.models import Picture, PictureForbidden, PictureResult, PictureUnchanged
from wasync.engines.base import (
    Engine,
    EngineError,
    LoggedOutError,
    NotConnected,
    RateLimited,
    TransientEngineError,
)
from wasync.jobs.outcome import Defer, Done, Retry
from wasync.jobs.outcome import JobOutcome as Outcome
from wasync.store.db import Database
from wasync.store.schema import contacts, sessions

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 1  # unexpected
EXIT_CONFIG = 2  # bad options or environment
EXIT_NOT_PAIRED = 3
EXIT_NO_NETWORK = 4
EXIT_PARTIAL = 5

MAX_PICTURE = 16 * 2**20
MAX_WAIT = 60.0  # longest rate-limit wait the job sits through before giving up a number
TRIES = 4
_GONE = {SessionStatus.LOGGED_OUT, SessionStatus.BANNED, SessionStatus.REPLACED}


class NotPaired(Exception):
    pass


class NoNetwork(Exception):
    pass


@dataclass(frozen=True, slots=True)
class JobOptions:
    session: str
    jids: list[tuple[str, str]]  # (phone as given, canonical JID)
    webhook_url: str
    no_picture: str = "skip"  # skip | post
    connect_timeout: float = 30.0
    retry_base: float = 0.5  # seconds before the second try of a failed step, then doubling


@dataclass(slots=True)
class NumberResult:
    phone: str
    jid: str
    outcome: str  # posted | unchanged | no-picture | hidden | failed
    picture_id: str | None = None
    detail: str | None = None
    network: bool = False  # failed without reaching WhatsApp or Discord

    def line(self) -> str:
        text = f"+{self.jid.split('@')[0]}: {self.outcome}"
        if self.picture_id:
            text += f" (picture {self.picture_id})"
        return text + (f": {self.detail}" if self.detail else "")


@dataclass(slots=True)
class JobReport:
    exit_code: int = EXIT_OK
    reason: str = ""
    results: list[NumberResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "numbers": [
                {
                    "phone": r.phone,
                    "jid": r.jid,
                    "outcome": r.outcome,
                    "pictureId": r.picture_id,
                    "detail": r.detail,
                }
                for r in self.results
            ],
        }


def summarize(results: list[NumberResult]) -> tuple[int, str]:
    failed = [r for r in results if r.outcome == "failed"]
    counts = {k: sum(1 for r in results if r.outcome == k) for k in ("posted", "unchanged")}
    others = len(results) - counts["posted"] - counts["unchanged"] - len(failed)
    if not failed:
        return EXIT_OK, (
            f"done: {counts['posted']} posted, {counts['unchanged']} unchanged, "
            f"{others} without a picture"
        )
    first = f"{failed[0].line()}"
    if len(failed) == len(results) and all(r.network for r in failed):
        return EXIT_NO_NETWORK, f"no network: every number failed ({first})"
    if len(failed) == len(results):
        return EXIT_PARTIAL, f"failure: all {len(results)} numbers failed ({first})"
    n = f"{len(failed)} of {len(results)}"
    return EXIT_PARTIAL, f"partial failure: {n} numbers failed ({first})"


async def run_job(
    engine: Engine,
    db: Database,
    options: JobOptions,
    client: httpx.AsyncClient,
    *,
    on_result: Callable[[NumberResult], None] | None = None,
) -> JobReport:
    """Connect, handle every number, disconnect; never raises for expected failures."""
    report = JobReport()
    drain = asyncio.create_task(_drain(engine), name="avatar-job-events")
    try:
        await _connect(engine, options)
        async with httpx.AsyncClient(timeout=30.0, follow_redirects=True) as downloads:
            job = _Job(engine, db, options, client, downloads)
            for phone, jid in options.jids:
                result = await job.one(phone, jid)
                report.results.append(result)
                if on_result is not None:
                    on_result(result)
        report.exit_code, report.reason = summarize(report.results)
    except NotPaired as exc:
        report.exit_code, report.reason = EXIT_NOT_PAIRED, f"not paired: {exc}"
    except NoNetwork as exc:
        report.exit_code, report.reason = EXIT_NO_NETWORK, f"no network: {exc}"
    finally:
        with contextlib.suppress(Exception):
            await engine.disconnect()
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await drain
    return report


async def _drain(engine: Engine) -> None:
    # Nobody mirrors in a one-shot job: read the events so the engine's queue stays empty.
    async for _ in engine.events():
        pass


async def _connect(engine: Engine, options: JobOptions) -> None:
    session = options.session
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.connect_timeout
    try:
        await asyncio.wait_for(engine.connect(), options.connect_timeout)
    except LoggedOutError as exc:
        raise NotPaired(f"{exc}") from None
    except (TransientEngineError, TimeoutError, OSError) as exc:
        why = str(exc) or f"could not connect within {options.connect_timeout:g} s"
        raise NoNetwork(why) from None
    while engine.status is not SessionStatus.CONNECTED:
        status = engine.status
        if status is SessionStatus.PAIRING:
            raise NotPaired(
                f"session {session!r} has no paired device: pair it once with "
                f"`wasync pair --session {session}` (or import it), then run the job again"
            )
        if status in _GONE:
            raise NotPaired(f"session {session!r} is {status}: pair it again")
        if loop.time() > deadline:
            raise NoNetwork(f"not connected within {options.connect_timeout:g} s ({status})")
        await asyncio.sleep(0.05)


class _Job:
    def __init__(
        self,
        engine: Engine,
        db: Database,
        options: JobOptions,
        client: httpx.AsyncClient,
        downloads: httpx.AsyncClient,
    ) -> None:
        self.engine = engine
        self.db = db
        self.options = options
        self.client = client
        self.downloads = downloads
        self.target = target_key(options.webhook_url)

    async def one(self, phone: str, jid: str) -> NumberResult:
        try:
            return await self._one(phone, jid)
        except (NotPaired, NoNetwork):
            raise
        except LoggedOutError as exc:
            raise NotPaired(str(exc)) from None
        except (NotConnected, httpx.TransportError) as exc:
            return NumberResult(phone, jid, "failed", detail=str(exc), network=True)
        except (EngineError, httpx.HTTPError, OSError) as exc:
            return NumberResult(phone, jid, "failed", detail=str(exc) or type(exc).__name__)

    async def _one(self, phone: str, jid: str) -> NumberResult:
        session = self.options.session
        prior = await asyncio.to_thread(self._last, jid)
        known_id = prior.picture_id if prior is not None and prior.state == "picture" else None
        answer = await self._ask(jid, known_id)
        if isinstance(answer, PictureUnchanged) or (
            isinstance(answer, Picture) and answer.id == known_id
        ):
            return NumberResult(phone, jid, "unchanged", known_id)
        if isinstance(answer, Picture):
            data = await self._download(answer.url)
            digest = hashlib.sha256(data).hexdigest()
            posted = Posted("picture", answer.id, digest)
            if prior is not None and prior.state == "picture" and prior.sha256 == digest:
                # A new id for the same image (uploaded again): nothing to show.
                await asyncio.to_thread(self._record, jid, posted)
                return NumberResult(phone, jid, "unchanged", answer.id)
            message = discord.avatar_message(
                phone=jid.split("@")[0],
                jid=jid,
                name=await asyncio.to_thread(self._name, jid),
                session=session,
                picture=data,
                picture_id=answer.id,
                when=time.time(),
            )
            return await self._post(phone, jid, message, posted, "posted")
        hidden = isinstance(answer, PictureForbidden)
        state, outcome = ("hidden", "hidden") if hidden else ("none", "no-picture")
        if self.options.no_picture != "post":
            return NumberResult(phone, jid, outcome, detail="skipped")
        if prior is not None and prior.state == state:
            return NumberResult(phone, jid, outcome, detail="already posted")
        name = await asyncio.to_thread(self._name, jid)
        who = f"{name} (+{jid.split('@')[0]})" if name else f"+{jid.split('@')[0]}"
        text = (
            f"{who} hides their profile picture from this account"
            if state == "hidden"
            else f"{who} has no profile picture"
        )
        message = discord.text_message(text)
        result = await self._post(phone, jid, message, Posted(state, None, None), outcome)
        if result.outcome != "failed":
            result.detail = "posted a text message"
        return result

    async def _ask(self, jid: str, known_id: str | None) -> PictureResult:
        for attempt in range(TRIES):
            try:
                return await self.engine.profile_picture(jid, known_id)
            except RateLimited as exc:
                wait = exc.retry_after if exc.retry_after is not None else 5.0
                if wait > MAX_WAIT or attempt == TRIES - 1:
                    raise
                await asyncio.sleep(wait)
            except LoggedOutError:
                raise
            except TransientEngineError:
                if attempt == TRIES - 1:
                    raise
                await asyncio.sleep(self.options.retry_base * 2**attempt)
        raise AssertionError("unreachable")

    async def _download(self, url: str) -> bytes:
        for attempt in range(TRIES):
            try:
                async with self.downloads.stream("GET", url) as response:
                    if response.status_code >= 500 and attempt < TRIES - 1:
                        await asyncio.sleep(self.options.retry_base * 2**attempt)
                        continue
                    if response.status_code != 200:
                        raise EngineError(f"picture download answered {response.status_code}")
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > MAX_PICTURE:
                            raise EngineError("the picture is larger than 16 MiB")
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.TransportError:
                if attempt == TRIES - 1:
                    raise
                await asyncio.sleep(self.options.retry_base * 2**attempt)
        raise EngineError("picture download kept failing")

    async def _post(
        self, phone: str, jid: str, message: discord.DiscordMessage, posted: Posted, outcome: str
    ) -> NumberResult:
        last: Outcome = Done()
        for attempt in range(TRIES):
            last = await discord.post(self.client, self.options.webhook_url, message)
            match last:
                case Done():
                    await asyncio.to_thread(self._record, jid, posted)
                    return NumberResult(phone, jid, outcome, posted.picture_id)
                case Defer(run_at=run_at):
                    wait = max(0.0, run_at - time.time())
                    if wait > MAX_WAIT:
                        break
                    await asyncio.sleep(wait)  # Discord's retry_after, to the letter
                case Retry(permanent=True):
                    break
                case Retry(retry_after=retry_after):
                    if attempt < TRIES - 1:
                        await asyncio.sleep(
                            min(MAX_WAIT, retry_after or self.options.retry_base * 2**attempt)
                        )
        detail = (
            last.error if isinstance(last, Retry) else getattr(last, "reason", None) or "gave up"
        )
        unreachable = isinstance(last, Unreachable)
        return NumberResult(phone, jid, "failed", detail=f"Discord: {detail}", network=unreachable)

    # Store access (worker threads).

    def _last(self, jid: str) -> Posted | None:
        with self.db.read() as conn:
            return last_posted(conn, self.options.session, self.target, jid)

    def _record(self, jid: str, posted: Posted) -> None:
        with self.db.write() as conn:
            record(conn, self.options.session, self.target, jid, posted)

    def _name(self, jid: str) -> str | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(contacts.c.name, contacts.c.business_name, contacts.c.push_name)
                .join(sessions, sessions.c.id == contacts.c.session_id)
                .where(sessions.c.name == self.options.session, contacts.c.jid == jid)
            ).one_or_none()
        if row is None:
            return None
        name: str | None = row.name or row.business_name or row.push_name
        return name
