"""The simulator engine: the Engine port over a simulated network, with fault knobs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace

import httpx

from wasync.domain.events import (
    Connected,
    Disconnected,
    Event,
    LoggedOut,
    OfflineSyncCompleted,
    OfflineSyncStarted,
    Paired,
    PairingCode,
    PictureChanged,
    SessionStatus,
)
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
from wasync.engines.base import (
    Capabilities,
    EngineError,
    HistoryPage,
    HistoryTimeout,
    LoggedOutError,
    MediaGone,
    NotConnected,
    RateLimited,
    TransientEngineError,
)
from wasync.engines.simulator.delivery import Delivery, EngineStats
from wasync.engines.simulator.faults import Faults
from wasync.engines.simulator.hashing import derive, mix, stable_hash
from wasync.engines.simulator.network import Network
from wasync.engines.simulator.pictures import PictureState
from wasync.engines.simulator.presence import Presence
from wasync.engines.simulator.server import MediaServer, SharedMediaServer
from wasync.engines.simulator.wire import Wire

log = logging.getLogger(__name__)

_PAIR_CODE_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"  # whatsmeow's: no 0, I, O, U
_LIVE_IDLE = 0.5  # seconds between looks while live traffic is switched off


class SimulatorEngine:
    """One simulated account on `network`.

    Beyond the Engine port, tests drive it with `push_live`, `push`,
    `push_picture_change` and `confirm_pairing`, and read `stats` and `picture_requests`.

    `paired=False` starts as a new session: `connect()` emits a QR PairingCode and, with
    `auto_pair`, pairs at once (Paired); without it the session waits in PAIRING until
    `pair_phone()` + `confirm_pairing()` or `confirm_pairing()` alone (a scanned QR).
    """

    def __init__(
        self,
        network: Network,
        faults: Faults | None = None,
        *,
        media_server: MediaServer | None = None,
        paired: bool = True,
        auto_pair: bool = True,
    ) -> None:
        self.network = network
        self.faults = faults if faults is not None else Faults()
        self.stats = EngineStats()
        self.picture_requests: list[float] = []  # time.monotonic() of each request
        self.picture_refusals: list[float] = []  # time.monotonic() of each 429 answered
        # Picture requests answered per person (by their number: either form counts once).
        self.pictures_asked: Counter[str] = Counter()
        # Picture faults: requests accepted lately (for the 429 burst) and a seeded RNG.
        self._picture_window: deque[float] = deque()
        self._picture_blocked_until = 0.0
        self._picture_rng = random.Random(derive(network.seed, "picture-faults"))
        self._history_rng = random.Random(derive(network.seed, "history-faults"))
        self._media_server = media_server
        self._owns_server = False
        self._http: httpx.AsyncClient | None = None
        self._paired = paired
        self._auto_pair = auto_pair
        self._status = SessionStatus.DISCONNECTED
        self._closed = False
        self._pairing_round = 0
        self._live_task: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()  # cancelled, awaited by close()
        self._delivery = Delivery(
            self.faults, random.Random(derive(network.seed, "delivery")), self.stats
        )
        self._presence: Presence | None = None  # no account bound: nobody to clash with
        self._account = ""
        self._connection: str | None = None
        # How people are named on the wire (by number or LID) and which pairs were told.
        self.wire = Wire(network)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            on_demand_history=True,
            newest_history=True,
            pair_code=True,
            list_chats=True,
            list_contacts=True,
            list_groups=True,
            profile_pictures=True,
            media_download=True,
        )

    @property
    def status(self) -> SessionStatus:
        return self._status

    @property
    def paired(self) -> bool:
        return self._paired

    # Lifecycle.

    async def connect(self) -> None:
        if self._closed:
            raise EngineError("this simulator engine is closed")
        if self._status in (SessionStatus.CONNECTED, SessionStatus.PAIRING):
            return
        if self.faults.unreachable:
            raise TransientEngineError("cannot reach WhatsApp (simulated: no network)")
        self._delivery.forget_stream_ends()
        self._status = SessionStatus.CONNECTING
        if not self._paired:
            self._status = SessionStatus.PAIRING
            self._pairing_round += 1
            self._delivery.emit(PairingCode(self._qr_code(), "qr"))
            if not self._auto_pair:
                return
            self._delivery.emit(Paired(self.network.me))
            self._paired = True
        self._go_online()
        await self._present()

    async def confirm_pairing(self) -> None:
        """The user scanned the QR code or typed the pair code: the session is paired."""
        if self._status is not SessionStatus.PAIRING:
            raise EngineError(f"no pairing in progress (status {self._status})")
        self._delivery.emit(Paired(self.network.me))
        self._paired = True
        self._go_online()
        await self._present()

    # Presence: one connection per account, as WhatsApp allows (presence.py).

    def bind_presence(self, presence: Presence, account: str) -> None:
        """Tell the simulated servers who this is: a newer connection of `account`
        (another process, say) replaces this one, as WhatsApp replaces an older client."""
        self._presence = presence
        self._account = account

    async def _present(self) -> None:
        if self._presence is None or self._status is not SessionStatus.CONNECTED:
            return
        self._leave_presence()
        self._connection = self._presence.new_connection()
        await self._presence.connected(self._account, self._connection, self._replaced)

    def _leave_presence(self) -> None:
        if self._presence is not None and self._connection is not None:
            self._presence.gone(self._connection)
            self._connection = None

    def _replaced(self) -> None:
        if self._status not in (SessionStatus.CONNECTED, SessionStatus.CONNECTING):
            return
        self._connection = None
        self._stop_live()
        self._status = SessionStatus.REPLACED
        self._delivery.emit(
            LoggedOut(
                "another client connected with this session's keys (stream replaced); "
                "stop the other copy, or pair this one again",
                SessionStatus.REPLACED,
            )
        )

    def _go_online(self) -> None:
        self._status = SessionStatus.CONNECTED
        self._delivery.emit(Connected(self.network.me))
        told = self.wire.all_told()
        if told is not None:
            self._delivery.emit(told)
        if self._delivery.pending:
            # What the server queued while we were away, bracketed as whatsmeow does.
            self._delivery.apply_retention(self.network.now)
            total = self._delivery.pending
            self._delivery.emit(OfflineSyncStarted(total))
            if not self._flush():
                self._delivery.emit(OfflineSyncCompleted(total))
        online = self._status is SessionStatus.CONNECTED  # the replay may have dropped it
        if online and self.faults.live_rate > 0 and self._live_task is None:
            self._live_task = asyncio.get_running_loop().create_task(self._live_loop())
            self._live_task.add_done_callback(self._live_task_done)

    async def disconnect(self) -> None:
        if self._status in (
            SessionStatus.CONNECTED,
            SessionStatus.CONNECTING,
            SessionStatus.PAIRING,
        ):
            self._status = SessionStatus.DISCONNECTED
            self._stop_live()
            self._delivery.emit(Disconnected("disconnect() called"))
        self._leave_presence()
        self._delivery.end_stream()

    async def logout(self) -> None:
        self._leave_presence()
        self._stop_live()
        self._status = SessionStatus.LOGGED_OUT
        self._paired = False
        self._delivery.emit(LoggedOut("logged out"))
        self._delivery.end_stream()

    async def close(self) -> None:
        """Disconnect, stop live traffic, and stop the media server if we started it."""
        if self._closed:
            return
        await self.disconnect()
        self._closed = True
        self._stop_live()
        if self._stopping:
            await asyncio.wait(self._stopping)
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._owns_server and self._media_server is not None:
            self._media_server.stop()

    async def drop_connection(self, reason: str = "connection lost (simulated)") -> None:
        """Lose the connection without ending the event stream, as a network outage does.

        Live events generated meanwhile wait in the offline queue (subject to the
        retention knobs) until the next `connect()`.
        """
        if self._status is SessionStatus.CONNECTED:
            self._drop_connection(reason)

    def _drop_connection(self, reason: str) -> None:
        self._leave_presence()
        self._status = SessionStatus.DISCONNECTED
        self._stop_live()
        self._delivery.emit(Disconnected(reason))

    def _stop_live(self) -> None:
        task, self._live_task = self._live_task, None
        if task is not None:
            task.cancel()
            self._stopping.add(task)

    # Live events.

    def events(self) -> AsyncIterator[Event]:
        return self._delivery.stream()

    async def push_live(self, n: int) -> list[Event]:
        """Generate `n` live events on the network and deliver them (faults applied).

        Returns the events as generated (before duplicates and reordering). While
        disconnected they wait in the offline queue until the next `connect()`.
        """
        events = self.network.live_events(n)
        await self.push(self._on_wire(events))
        return events

    def _on_wire(self, events: list[Event]) -> list[Event]:
        """Events as the wire names people (live traffic: by LID), then pairs now due."""
        if not self.wire.active:
            return events
        out = [self.wire.event(e) for e in events]
        told = self.wire.newly_told()
        return out if told is None else [*out, told]

    async def _tell_pairs(self) -> None:
        told = self.wire.newly_told()
        if told is not None:
            await self.push([told])

    async def drained(self) -> None:
        """Wait until the consumer of `events()` has taken every event delivered so far.

        Without a consumer this waits forever: use it where one runs (a sync session).
        """
        await self._delivery.drained()

    async def push(self, events: Iterable[Event]) -> None:
        """Deliver given events through the same fault pipeline as live traffic."""
        self._delivery.submit(events)
        if self._status is SessionStatus.CONNECTED:
            self._flush()

    async def push_picture_change(self, jid: str, *, removed: bool = False) -> PictureChanged:
        if removed:
            self.network.remove_picture(jid)
        else:
            self.network.change_picture(jid)
        event = PictureChanged(jid, removed, self.network.advance_clock())
        await self.push([self.wire.event(event)])
        return event

    def _flush(self) -> bool:
        dropped = self._delivery.flush()
        if dropped:
            self._drop_connection("connection lost (simulated fault)")
        return dropped

    async def _live_loop(self) -> None:
        """Live traffic at `faults.live_rate`: sleep until the next event is due, so a
        session at one message a second wakes once a second (a thousand sessions cost a
        thousand wake-ups a second, not fifty thousand); behind schedule, several go at
        once."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while self._status is SessionStatus.CONNECTED:
            rate = self.faults.live_rate
            if rate <= 0:  # switched off meanwhile: look again later
                await asyncio.sleep(_LIVE_IDLE)
                due = loop.time()
                continue
            due += 1.0 / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            n = 1 + max(0, int((loop.time() - due) * rate))  # what is owed, at least one
            due += (n - 1) / rate
            limit = self.faults.live_limit
            if limit is not None:
                n = min(n, limit - self.network.live_count)
                if n <= 0:
                    return
            if self._status is SessionStatus.CONNECTED:
                await self.push_live(n)

    def _live_task_done(self, task: asyncio.Task[None]) -> None:
        self._stopping.discard(task)
        if self._live_task is task:
            self._live_task = None
        if not task.cancelled() and task.exception() is not None:
            log.error("simulated live traffic stopped", exc_info=task.exception())

    # Pairing.

    def _qr_code(self) -> str:
        material = hashlib.shake_128(f"{self.network.seed}/{self._pairing_round}".encode())
        raw = material.digest(6 + 32 + 32 + 16)

        def b64(part: bytes) -> str:
            return base64.b64encode(part).decode()

        return f"2@{b64(raw[:6])},{b64(raw[6:38])},{b64(raw[38:70])},{b64(raw[70:])}"

    async def pair_phone(self, phone: str) -> str:
        if self._status is not SessionStatus.PAIRING:
            raise EngineError("pair_phone needs a session that is pairing: call connect() first")
        value = mix(derive(self.network.seed, "pair") ^ stable_hash(phone))
        code = "".join(_PAIR_CODE_ALPHABET[(value >> (5 * i)) & 31] for i in range(8))
        self._delivery.emit(PairingCode(code, "phone"))
        return code

    # Requests.

    async def _request(self, what: str) -> None:
        if self._status is SessionStatus.LOGGED_OUT:
            raise LoggedOutError(f"cannot {what}: the session is logged out; pair it again")
        if self._status is not SessionStatus.CONNECTED:
            raise NotConnected(f"cannot {what}: not connected")
        if self.faults.latency > 0:
            await asyncio.sleep(self.faults.latency)

    async def list_contacts(self) -> list[Contact]:
        await self._request("list contacts")
        contacts = [self.wire.contact(c) for c in self.network.contacts()]
        await self._tell_pairs()
        return contacts

    async def list_groups(self) -> list[Group]:
        await self._request("list groups")
        groups = [self.wire.group(g) for g in self.network.groups()]
        await self._tell_pairs()
        return groups

    async def list_chats(self) -> list[Chat]:
        await self._request("list chats")
        chats = [self.wire.chat(c) for c in self.network.chats()]
        await self._tell_pairs()
        return chats

    async def request_history(
        self, chat_jid: str, before: MessageAnchor | None, count: int
    ) -> list[Message]:
        self.stats.history_requests += 1
        await self._request("request history")
        network = self.network
        # Asked by LID or by number: answered in the form asked (groups: senders by LID).
        by_lid = chat_jid.endswith("@lid") or not chat_jid.endswith("@s.whatsapp.net")
        chat_jid = self.wire.internal(chat_jid)
        if before is not None:
            before = replace(before, key=self.wire.internal_key(before.key))
        try:
            end = network.message_count(chat_jid)
        except LookupError:
            raise EngineError(f"history request for unknown chat {chat_jid}") from None
        if self.faults.history_fails(chat_jid, network.seed):
            raise EngineError(f"history request for {chat_jid} failed (simulated fault)")
        await self._await_history_answer(chat_jid)
        if before is not None:
            index = network.index_of(chat_jid, before.key.message_id, before.timestamp)
            if index is None or network.message(chat_jid, index).key != before.key:
                raise EngineError(
                    f"history anchor {before.key.message_id} at {before.timestamp} is not a "
                    f"message of {chat_jid}"
                )
            end = index
        start = max(0, end - max(0, count))
        page = [network.message(chat_jid, i) for i in range(end - 1, start - 1, -1)]
        # The edits, revokes and reactions of the span come with the answer, as in the
        # HistorySync WhatsApp sends.
        since = network.message(chat_jid, start).timestamp if start > 0 else None
        until = (
            network.message(chat_jid, end).timestamp
            if end < network.message_count(chat_jid)
            else None
        )
        changes: list[Event] = network.changes_in(chat_jid, since, until) if page else []
        if self.wire.active:
            page = [self.wire.message(m, by_lid) for m in page]
            changes = [self.wire.event(e, by_lid) for e in changes]
            told = self.wire.newly_told()
            if told is not None:
                changes.append(told)
        # The truth, as a phone says it: older messages remain unless the page starts
        # at the chat's first message.
        return HistoryPage(page, tuple(changes), more=start > 0)

    async def _await_history_answer(self, chat_jid: str) -> None:
        """The request went to the phone; wait for its answer as the real engine does."""
        faults = self.faults
        lost = chat_jid in faults.timeout_chats or (
            faults.history_timeout_rate > 0
            and self._history_rng.random() < faults.history_timeout_rate
        )
        if lost or faults.history_delay > faults.history_timeout:
            await asyncio.sleep(faults.history_timeout)
            self.stats.history_timeouts += 1
            raise HistoryTimeout(
                f"the phone did not answer the history request for {chat_jid} within "
                f"{faults.history_timeout:g} s (simulated)"
            )
        if faults.history_delay > 0:
            await asyncio.sleep(faults.history_delay)
            if self._status is not SessionStatus.CONNECTED:
                raise NotConnected("the connection was lost before the phone's history answer")

    async def profile_picture(self, jid: str, existing_id: str | None) -> PictureResult:
        asked_at = time.monotonic()
        self.picture_requests.append(asked_at)
        self.stats.picture_requests += 1
        await self._request("fetch a profile picture")
        self._picture_faults(jid, asked_at)
        jid = self.wire.internal(jid)  # one person, one picture, whichever form is asked
        self.pictures_asked[jid] += 1
        state = self.network.picture_state(jid)
        picture_id = self.network.picture_id(jid)
        if state is PictureState.FORBIDDEN:
            return PictureForbidden()
        if picture_id is None:
            return PictureNotSet()
        if existing_id == picture_id:
            return PictureUnchanged(picture_id)
        return Picture(picture_id, self.media_server.picture_url(jid, picture_id))

    def _picture_faults(self, jid: str, asked_at: float) -> None:
        faults = self.faults
        if faults.picture_burst is not None:
            window = self._picture_window
            while window and window[0] <= asked_at - faults.picture_burst_window:
                window.popleft()
            if asked_at < self._picture_blocked_until or len(window) >= faults.picture_burst:
                # Like WhatsApp, asking again while limited only extends the penalty.
                pause = faults.picture_retry_after or faults.picture_burst_window
                self._picture_blocked_until = asked_at + pause
                self.stats.pictures_rate_limited += 1
                self.picture_refusals.append(asked_at)
                raise RateLimited(
                    "info query returned status 429: rate-overlimit (simulated)",
                    faults.picture_retry_after,
                )
            window.append(asked_at)
        rng = self._picture_rng
        if faults.picture_failure_rate and rng.random() < faults.picture_failure_rate:
            raise TransientEngineError(f"profile picture of {jid} failed (simulated fault)")
        changes = faults.picture_change_rate
        if changes and self.network.picture_id(jid) is not None and rng.random() < changes:
            self.network.change_picture(jid)

    async def download(self, media: MediaInfo) -> bytes:
        self.stats.downloads += 1
        if media.url is None:
            raise EngineError("this media has no URL to download from")
        url = self.media_server.resolve(media.url)
        if self._http is None:
            # trust_env=False: a proxy from the environment must not see loopback traffic.
            self._http = httpx.AsyncClient(trust_env=False, timeout=30.0)
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as error:
            raise TransientEngineError(f"media download failed: {error}") from error
        if response.status_code in (404, 410):
            raise MediaGone(f"the media is gone from the server ({response.status_code})")
        if response.status_code != 200:
            raise TransientEngineError(f"media download failed with {response.status_code}")
        return response.content

    @property
    def media_server(self) -> MediaServer:
        """The server of picture and media URLs; started on first use."""
        if self._closed:
            raise EngineError("this simulator engine is closed")
        if self._media_server is None:
            # The process's shared server: one listening thread for every simulated session.
            self._media_server = SharedMediaServer(self.network, faults=self.faults)
        if not self._media_server.running:
            self._owns_server = True
            self._media_server.start()
        return self._media_server
