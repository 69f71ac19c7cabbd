"""The Baileys engine: WhatsApp through Baileys 7 in a supervised Node.js sidecar.

Python owns everything that lasts: the keys (auth.py), the reconnect policy, the
history requests waiting for the phone. The sidecar is one process with one socket;
when it dies it is started again (with back-off) and the session reconnects, and a
history request still waiting is answered by whichever process receives the answer.
Events are mapped (mapping.py) and queued at once, in the order they came.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from wasync.domain import events as ev
from wasync.domain.events import SessionStatus
from wasync.domain.jid import normalize_phone
from wasync.domain.models import (
    Chat,
    Contact,
    Group,
    MediaInfo,
    Message,
    MessageAnchor,
    Picture,
    PictureForbidden,
    PictureNotSet,
    PictureResult,
    PictureUnchanged,
)
from wasync.engines.baileys import install, mapping
from wasync.engines.baileys.options import BaileysOptions
from wasync.engines.baileys.sidecar import Sidecar, SidecarError
from wasync.engines.base import (
    Capabilities,
    CapabilityMissing,
    EngineError,
    HistoryPage,
    HistoryTimeout,
    LoggedOutError,
    MediaGone,
    RateLimited,
    TransientEngineError,
)
from wasync.engines.neonize.jids import IdentityMap, canonical
from wasync.sessions.supervision import ConnectionGate

log = logging.getLogger(__name__)

CAPABILITIES = Capabilities(
    on_demand_history=True,
    pair_code=True,
    list_chats=False,  # Baileys keeps no chat list; chats come with history and events
    list_contacts=False,  # contacts come as events (history, address book sync)
    list_groups=True,
    profile_pictures=True,
    media_download=True,
)
TERMINAL = frozenset({SessionStatus.LOGGED_OUT, SessionStatus.BANNED, SessionStatus.REPLACED})
RATE_LIMIT_PAUSE = 60.0
ON_DEMAND = 6  # HistorySync.HistorySyncType.ON_DEMAND
UNCLAIMED_KEPT = 32  # unmatched on-demand answers remembered
_TERMINAL_CLOSES = {
    401: (SessionStatus.LOGGED_OUT, "WhatsApp logged this device out; pair it again"),
    403: (SessionStatus.BANNED, "WhatsApp refused this account (403 forbidden: banned?)"),
    411: (SessionStatus.LOGGED_OUT, "WhatsApp says this device no longer matches; pair it again"),
    440: (
        SessionStatus.REPLACED,
        "another client connected with this session's keys (stream replaced); stop the "
        "other copy, or pair this one again",
    ),
    500: (SessionStatus.LOGGED_OUT, "WhatsApp rejected this session's keys; pair it again"),
}
_RESTART_REQUIRED = 515


class NotPaired(LoggedOutError):
    """The session store holds no paired device."""


class BaileysEngine:
    """One WhatsApp account through Baileys."""

    def __init__(self, options: BaileysOptions) -> None:
        self.options = options
        self.ids = IdentityMap()
        self._own_jid = options.own_jid
        self._status = SessionStatus.DISCONNECTED
        self._queue: asyncio.Queue[ev.Event | None] = asyncio.Queue()
        self._listeners: list[Callable[[ev.Event], None]] = []
        self._gate = ConnectionGate()
        self._sidecar: Sidecar | None = None
        self._pending: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconnecting: asyncio.Task[None] | None = None
        self._terminal: str | None = None
        self._closed = False
        self._stopping_socket = False
        self._qr_seen = asyncio.Event()
        self._history: dict[str, tuple[str, asyncio.Future[HistoryPage]]] = {}
        # Answers nobody waited for, by request id: a phone can answer before the
        # sidecar's reply carrying the id has reached request_history.
        self._unclaimed: OrderedDict[str, Any] = OrderedDict()
        self.restarts = 0  # sidecar processes started after the first (tests read it)

    # --- the port ---------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    @property
    def status(self) -> SessionStatus:
        return self._status

    @property
    def own_jid(self) -> str | None:
        return self._own_jid

    @property
    def sidecar_pid(self) -> int | None:
        return self._sidecar.pid if self._sidecar is not None else None

    def events(self) -> AsyncIterator[ev.Event]:
        return self._drain()

    async def _drain(self) -> AsyncIterator[ev.Event]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    def add_listener(self, listener: Callable[[ev.Event], None]) -> None:
        self._listeners.append(listener)

    async def connect(self) -> None:
        """Connect within `connect_timeout`; for an unpaired session, start pairing.

        Returns once connected (or, pairing, once the first QR code is out). Raises
        NotPaired, LoggedOutError, EngineUnavailable (no Node, not installed) or
        TransientEngineError (no network, no answer in time).
        """
        if self._terminal is not None:
            raise LoggedOutError(self._terminal)
        if self._gate.is_open:
            return
        self._closed = False
        directory = install.require(self.options.sidecar_dir)
        account = await asyncio.to_thread(self.options.auth.account)
        if account is None and not self.options.allow_pairing:
            raise NotPaired(
                f"session {self.options.session!r} is not paired with a phone: "
                f"run `wasync pair --engine baileys --session {self.options.session}`"
            )
        if account is not None:
            self._own_jid = account.jid
            self.ids.learn(account.jid, account.lid)
        loop = asyncio.get_running_loop()
        pending: asyncio.Future[None] = loop.create_future()
        self._pending = pending
        self._status = SessionStatus.CONNECTING
        timeout = self.options.connect_timeout
        try:
            await asyncio.wait_for(self._start_socket(directory), timeout)
            await asyncio.wait_for(asyncio.shield(pending), timeout)
        except TimeoutError:
            error = TransientEngineError(
                f"could not connect to WhatsApp within {timeout:g} s: no answer from "
                "web.whatsapp.com (check the network, firewall or proxy)"
            )
            await self._stop_socket()
            self._connect_failed(error)
            raise error from None
        except EngineError as exc:
            await self._stop_socket()
            self._connect_failed(exc)
            raise
        finally:
            if self._pending is pending:
                self._pending = None
            pending.cancel()

    async def _start_socket(self, directory: Any) -> None:
        if self._sidecar is None or not self._sidecar.running:
            if self._sidecar is not None:
                self.restarts += 1
            env = {"WASYNC_BAILEYS_TEST_HOOKS": "1"} if self.options.test_hooks else {}
            node = install.node_binary()
            assert node is not None
            sidecar = Sidecar(
                node,
                directory,
                on_event=self._on_event,
                on_request=self._on_request,
                on_exit=self._on_exit,
                env=env,
                label=f"baileys[{self.options.session}]",
            )
            self._sidecar = sidecar
            await sidecar.start()
        creds, keys = await asyncio.to_thread(self.options.auth.load)
        options: dict[str, Any] = {
            "connectTimeoutMs": int(self.options.connect_timeout * 1000),
            "fullHistory": self.options.full_history,
            "logLevel": self.options.log_level,
        }
        if self.options.proxy:
            options["proxy"] = self.options.proxy
        if self.options.ws_url:
            options["wsUrl"] = self.options.ws_url
        self._stopping_socket = False
        await self._sidecar.request(
            "start", {"auth": {"creds": creds, "keys": keys}, "options": options}
        )

    def _connect_failed(self, error: EngineError) -> None:
        if self._status not in TERMINAL:
            self._status = SessionStatus.DISCONNECTED
            self._emit([ev.Disconnected(str(error))])

    async def _stop_socket(self) -> None:
        self._gate.shut()
        if self._sidecar is not None and self._sidecar.running:
            self._stopping_socket = True
            with contextlib.suppress(EngineError):
                await self._sidecar.request("stop", wait=10)

    async def disconnect(self) -> None:
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        self._gate.shut()
        sidecar, self._sidecar = self._sidecar, None
        if sidecar is not None:
            await sidecar.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _, waiter in self._history.values():
            waiter.cancel()
        self._history.clear()
        if self._status not in TERMINAL:
            self._status = SessionStatus.DISCONNECTED
        self._queue.put_nowait(None)

    async def logout(self) -> None:
        await self._call("log out", "logout")
        await asyncio.to_thread(self.options.auth.clear)

    # --- what the sidecar says ----------------------------------------------------

    def _emit(self, events: list[ev.Event] | tuple[ev.Event, ...]) -> None:
        for event in events:
            self._queue.put_nowait(event)
            for listener in self._listeners:
                try:
                    listener(event)
                except Exception:
                    log.exception("an event listener failed on %s", type(event).__name__)

    def _on_event(self, name: str, data: dict[str, Any]) -> None:
        own = self._own_jid
        if name == "connection":
            self._on_connection(data)
        elif name == "me":
            jid = canonical(data.get("id"))
            if jid is not None:
                self._own_jid = jid
                self.ids.learn(jid, canonical(data.get("lid")))
        elif name == "messages":
            self._emit(mapping.message_events(data.get("items") or [], self.ids, own))
        elif name == "history":
            self._on_history(data)
        elif name == "contacts":
            self._emit(mapping.contacts_of(data.get("items") or [], self.ids))
        elif name == "chats":
            chats = [mapping.chat_of(item, self.ids) for item in data.get("items") or []]
            self._emit([ev.ChatUpserted(c) for c in chats if c is not None])
        elif name == "groups":
            groups = [mapping.group_of(item, self.ids) for item in data.get("items") or []]
            self._emit([ev.GroupUpserted(g) for g in groups if g is not None])
        elif name == "group-changed":
            for jid in data.get("ids") or []:
                self._spawn(self._refresh_group(str(jid)), f"refresh-group-{jid}")
        elif name == "lid":
            self._emit(mapping.lid_pairs(data.get("pairs") or [], self.ids))

    def _on_connection(self, data: dict[str, Any]) -> None:
        if self._terminal is not None:
            return
        if data.get("qr"):
            self._on_qr(str(data["qr"]))
        if data.get("isNewLogin") and self._own_jid is not None:
            self._emit([ev.Paired(self._own_jid)])
        state = data.get("connection")
        if state == "open":
            self._status = SessionStatus.CONNECTED
            self._gate.open()
            self.options.backoff.reset()
            self._resolve_pending()
            self._emit([ev.Connected(self._own_jid)])
        if data.get("receivedPendingNotifications") is True:
            self._emit([ev.OfflineSyncCompleted()])
        if state == "close":
            self._on_close(data.get("status"), data.get("reason"))

    def _on_qr(self, code: str) -> None:
        if not self.options.allow_pairing:
            self._fail_pending(
                NotPaired(
                    f"session {self.options.session!r} is not paired with a phone (or WhatsApp "
                    f"logged it out): run `wasync pair --engine baileys --session "
                    f"{self.options.session}`"
                )
            )
            return
        self._status = SessionStatus.PAIRING
        self._qr_seen.set()
        self._resolve_pending()
        self._emit([ev.PairingCode(code, "qr")])

    def _on_close(self, status: Any, reason: Any) -> None:
        self._gate.shut()
        if self._stopping_socket or self._closed:
            return
        code = status if isinstance(status, int) else None
        if code in _TERMINAL_CLOSES:
            verdict, text = _TERMINAL_CLOSES[code]
            self._terminal = text
            self._status = verdict
            self._gate.close_for_good(text)
            if verdict is SessionStatus.LOGGED_OUT:
                self._spawn(asyncio.to_thread(self.options.auth.clear), "forget-keys")
            self._fail_pending(LoggedOutError(text))
            self._emit([ev.LoggedOut(text, verdict)])
            return
        if code == _RESTART_REQUIRED:
            # After pairing WhatsApp closes the socket once, expecting a new one at once.
            self._schedule_reconnect("WhatsApp asked for a restart", immediately=True)
            return
        why = f"cannot reach WhatsApp: {reason or 'connection closed'}"
        if self._fail_pending(TransientEngineError(why)):
            return
        self._status = SessionStatus.DISCONNECTED
        self._emit([ev.Disconnected(f"{why}; reconnecting")])
        self._schedule_reconnect(why)

    def _on_exit(self, sidecar: Sidecar, code: int | None) -> None:
        if sidecar is not self._sidecar or self._closed:
            return
        self._gate.shut()
        why = f"the Baileys sidecar exited (code {code})"
        log.warning("session %s: %s", self.options.session, why)
        if self._fail_pending(TransientEngineError(why)) or self._terminal is not None:
            return
        self._status = SessionStatus.DISCONNECTED
        self._emit([ev.Disconnected(f"{why}; restarting it")])
        self._schedule_reconnect(why)

    async def _on_request(self, op: str, args: dict[str, Any]) -> Any:
        if op == "auth.set":
            await asyncio.to_thread(self.options.auth.apply, args.get("rows") or [])
            return None
        raise EngineError(f"unknown sidecar request {op!r}")

    def _on_history(self, data: dict[str, Any]) -> None:
        sync = mapping.decode("history", str(data["proto"]))
        request_id = data.get("requestId")
        if sync.syncType == ON_DEMAND and request_id:
            waiting = self._history.pop(str(request_id), None)
            if waiting is not None and not waiting[1].done():
                page, rest = mapping.on_demand_page(sync, waiting[0], self.ids, self._own_jid)
                waiting[1].set_result(page)
                self._emit([rest])
                return
            # Nobody waits any more (it timed out): a late answer is stored like any
            # history, and the chat's next request starts below it. Kept a while too, in
            # case it came early rather than late.
            log.info(
                "session %s: an unclaimed history answer (%s)", self.options.session, request_id
            )
            self._unclaimed[str(request_id)] = sync
            while len(self._unclaimed) > UNCLAIMED_KEPT:
                self._unclaimed.popitem(last=False)
        self._emit(mapping.history_set_events(sync, self.ids, self._own_jid))

    # --- supervision --------------------------------------------------------------

    def _resolve_pending(self) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.set_result(None)

    def _fail_pending(self, error: BaseException) -> bool:
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(error)
            return True
        return False

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "session %s: background task %s failed",
                self.options.session,
                task.get_name(),
                exc_info=task.exception(),
            )

    def _schedule_reconnect(self, why: str, *, immediately: bool = False) -> None:
        if self._reconnecting is None and not self._closed and self._terminal is None:
            self._reconnecting = self._spawn(self._reconnect(why, immediately), "reconnect")

    async def _reconnect(self, why: str, immediately: bool) -> None:
        try:
            while not self._closed and self._terminal is None:
                delay = 0.0 if immediately else self.options.backoff.next_delay()
                immediately = False
                log.warning(
                    "session %s: %s; reconnecting in %.0f s", self.options.session, why, delay
                )
                await asyncio.sleep(delay)
                try:
                    await self.connect()
                    return
                except TransientEngineError as exc:
                    why = str(exc)
                except EngineError:
                    return
        finally:
            self._reconnecting = None

    # --- calls ------------------------------------------------------------------

    async def _call(
        self, what: str, op: str, args: dict[str, Any] | None = None, wait: float = 60.0
    ) -> Any:
        await self._gate.wait_open(what, self.options.offline_wait)
        sidecar = self._sidecar
        if sidecar is None:
            raise TransientEngineError(f"cannot {what}: the Baileys sidecar is not running")
        return await sidecar.request(op, args, wait)

    async def pair_phone(self, phone: str) -> str:
        """A phone pair code: on the phone, Linked devices > Link with phone number."""
        if not self.options.allow_pairing:
            raise EngineError("this engine was not started for pairing")
        digits = normalize_phone(phone)
        try:
            await asyncio.wait_for(self._qr_seen.wait(), self.options.connect_timeout)
        except TimeoutError:
            raise EngineError("WhatsApp did not start the pairing in time") from None
        assert self._sidecar is not None
        try:
            result = await self._sidecar.request("pairCode", {"phone": digits})
        except SidecarError as exc:
            raise EngineError(f"WhatsApp refused a pair code for +{digits}: {exc}") from exc
        code = str(result["code"])
        self._emit([ev.PairingCode(code, "phone")])
        return code

    async def list_contacts(self) -> list[Contact]:
        raise CapabilityMissing(
            "the Baileys engine cannot list contacts: they arrive with history and events"
        )

    async def list_chats(self) -> list[Chat]:
        raise CapabilityMissing(
            "the Baileys engine cannot list chats: they arrive with history and events"
        )

    async def list_groups(self) -> list[Group]:
        result = await self._call("list groups", "groups")
        groups = [mapping.group_of(item, self.ids) for item in result["items"]]
        return [g for g in groups if g is not None]

    async def _refresh_group(self, jid: str) -> None:
        try:
            item = await self._call("refresh a group", "group", {"jid": jid})
        except EngineError as exc:
            log.warning(
                "session %s: refreshing group %s failed: %s", self.options.session, jid, exc
            )
            return
        group = mapping.group_of(item, self.ids)
        if group is not None:
            self._emit([ev.GroupUpserted(group)])

    async def request_history(
        self, chat_jid: str, before: MessageAnchor | None, count: int
    ) -> list[Message]:
        """Ask the phone for `count` messages before `before`; wait for its answer.

        The answer is the ON_DEMAND history set carrying this request's id. When the
        phone does not answer within `history_timeout`, HistoryTimeout; an answer
        that comes later is stored as ordinary history.
        """
        if before is None:
            raise CapabilityMissing(
                "the phone answers only history requests anchored on a stored message"
            )
        key = before.key
        args: dict[str, Any] = {
            "chat": chat_jid,
            "id": key.message_id,
            "fromMe": before.from_me,
            "timestamp": before.timestamp,  # seconds, as WhatsApp reads this field
            "count": count,
        }
        if chat_jid.endswith("@g.us") and not before.from_me:
            args["participant"] = key.sender_jid
        result = await self._call("request history", "history", args)
        request_id = str(result["requestId"])
        early = self._unclaimed.pop(request_id, None)
        if early is not None:
            # Answered before we knew the id: already stored as ordinary history.
            page, _ = mapping.on_demand_page(early, chat_jid, self.ids, self._own_jid)
            return page
        waiter: asyncio.Future[HistoryPage] = asyncio.get_running_loop().create_future()
        self._history[request_id] = (chat_jid, waiter)
        timeout = self.options.history_timeout
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise HistoryTimeout(
                f"the phone did not answer the history request for {chat_jid} within "
                f"{timeout:g} s (is it online?); an answer that comes later is still stored"
            ) from None
        finally:
            self._history.pop(request_id, None)

    async def profile_picture(self, jid: str, existing_id: str | None) -> PictureResult:
        try:
            result = await self._call("fetch a profile picture", "picture", {"jid": jid})
        except SidecarError as exc:
            return _picture_error(exc, jid)
        url = result.get("url")
        if not url:
            return PictureNotSet()
        picture_id = picture_id_of(str(url))
        if existing_id and existing_id == picture_id:
            return PictureUnchanged(existing_id)
        return Picture(picture_id, str(url))

    async def download(self, media: MediaInfo) -> bytes:
        args = {
            "kind": media_kind(media.mimetype),
            "mediaKey": media.media_key or "",
            "directPath": media.direct_path,
            "url": media.url,
        }
        try:
            result = await self._call("download media", "download", args, wait=300)
        except SidecarError as exc:
            if exc.status in (404, 410):
                raise MediaGone(f"the media expired on WhatsApp's servers ({exc})") from exc
            raise TransientEngineError(f"media download failed: {exc}") from exc
        return base64.b64decode(result["data"])


def picture_id_of(url: str) -> str:
    """The picture's id: its file name on WhatsApp's CDN (the query string changes with
    every request; the file changes only with the picture)."""
    return PurePosixPath(urlsplit(url).path).stem or url


def media_kind(mimetype: str | None) -> str:
    """Which media keys decrypt the blob (stickers use the image keys)."""
    mime = mimetype or ""
    for prefix in ("image", "video", "audio"):
        if mime.startswith(prefix + "/"):
            return prefix
    return "document"


def _picture_error(exc: SidecarError, jid: str) -> PictureResult:
    status = exc.status
    text = str(exc)
    if status == 429 or "rate-overlimit" in text:
        raise RateLimited(f"WhatsApp rate-limited picture requests ({text})", RATE_LIMIT_PAUSE)
    if status in (401, 403) or "not-authorized" in text:
        return PictureForbidden()
    if status in (404, 204) or "item-not-found" in text:
        return PictureNotSet()
    raise TransientEngineError(f"profile picture of {jid} failed: {text}")
