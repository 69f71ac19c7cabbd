"""Real neonize protobuf objects, and the real dispatch path, for tests without a network.

`dispatch()` serializes events and hands them to `client.event.execute` from a
thread, exactly as the Go side does; `Mirror` drains the engine's `events()` into a
the writer the way SessionSync does, so a test can assert on committed rows.
"""

from __future__ import annotations

import asyncio
import ctypes
from pathlib import Path
from typing import Any

from wasync.domain import events as ev
from wasync.engines.neonize import NeonizeEngine, NeonizeOptions, loader
from wasync.sessions.location import SessionStore
from wasync.store.db import Database
from wasync.store.sessions import ensure_session
from wasync.sync.writer import GroupWriter

N = loader.module("proto")
E = loader.module("e2e")
H = loader.module("history")
W = loader.module("web")
C = loader.module("common")

OWN = "5511900000001"
OWN_LID = "90000000000001"
OWN_JID = f"{OWN}@s.whatsapp.net"


def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> Any:
    return N.JID(User=user, Server=server, RawAgent=0, Device=device, Integrator=0, IsEmpty=False)


def lid(user: str, device: int = 0) -> Any:
    return jid(user, "lid", device)


def group(user: str) -> Any:
    return jid(user, "g.us")


def message_ev(
    *,
    chat: Any,
    sender: Any,
    msg_id: str,
    ts_ms: int,
    body: Any,
    from_me: bool = False,
    is_group: bool = False,
    sender_alt: Any = None,
    recipient_alt: Any = None,
    push_name: str = "",
    is_edit: bool = False,
) -> Any:
    source = N.MessageSource(Chat=chat, Sender=sender, IsFromMe=from_me, IsGroup=is_group)
    if sender_alt is not None:
        source.SenderAlt.CopyFrom(sender_alt)
    if recipient_alt is not None:
        source.RecipientAlt.CopyFrom(recipient_alt)
    info = N.MessageInfo(
        MessageSource=source, ID=msg_id, Timestamp=ts_ms, Pushname=push_name, Type="text"
    )
    return N.Message(Info=info, Message=body, IsEdit=is_edit, Raw=body)


def key(remote: str, msg_id: str, *, from_me: bool = False, participant: str = "") -> Any:
    return C.MessageKey(remoteJID=remote, fromMe=from_me, ID=msg_id, participant=participant)


def web_message(
    remote: str,
    msg_id: str,
    ts: int,
    body: Any = None,
    *,
    from_me: bool = False,
    participant: str = "",
    push_name: str = "",
    stub: int | None = None,
    reactions: tuple[Any, ...] = (),
) -> Any:
    info = W.WebMessageInfo(
        key=key(remote, msg_id, from_me=from_me, participant=participant),
        messageTimestamp=ts,
    )
    if participant:
        info.participant = participant
    if push_name:
        info.pushName = push_name
    if body is not None:
        info.message.CopyFrom(body)
    if stub is not None:
        info.messageStubType = stub
    info.reactions.extend(reactions)
    return H.HistorySyncMsg(message=info)


def history(
    sync_type: int,
    conversations: list[Any],
    *,
    pushnames: tuple[tuple[str, str], ...] = (),
    mappings: tuple[tuple[str, str], ...] = (),
    progress: int | None = None,
) -> Any:
    data = H.HistorySync(syncType=sync_type, conversations=conversations)
    for jid_text, name in pushnames:
        data.pushnames.add(ID=jid_text, pushname=name)
    for pn, lid_text in mappings:
        data.phoneNumberToLidMappings.add(pnJID=pn, lidJID=lid_text)
    if progress is not None:
        data.progress = progress
    return N.HistorySync(Data=data)


def device_ev(pn: str = OWN, lid_user: str = OWN_LID) -> Any:
    return N.Device(JID=jid(pn), LID=lid(lid_user), Platform="", PushName="Me", Initialized=True)


def code_of(proto: Any) -> int:
    from neonize.events import EVENT_TO_INT

    return EVENT_TO_INT[type(proto)]


async def dispatch(engine: NeonizeEngine, *protos: Any) -> None:
    """Feed events through `client.event.execute` from a thread, then let them run."""
    client = engine.client
    loop = asyncio.get_running_loop()

    def push() -> Any:
        for proto in protos:
            data = proto.SerializePartialToString()
            buf = ctypes.create_string_buffer(data, len(data))
            client.event.execute(0, ctypes.addressof(buf), len(data), code_of(proto))
        # Handlers finish in their first step, so a task scheduled after them (FIFO)
        # completes only once they have run.
        return asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop)

    marker = await asyncio.to_thread(push)
    await asyncio.wrap_future(marker)


def new_engine(path: Path, **options: Any) -> NeonizeEngine:
    events = loader.module("events")
    events.event_global_loop = None
    events.set_event_loop(asyncio.get_running_loop())
    options.setdefault("own_jid", OWN_JID)
    opts = NeonizeOptions(session="t", store=SessionStore("t", path=path), **options)
    engine = NeonizeEngine(opts)
    engine.client  # noqa: B018 - builds the client and registers the handlers
    return engine


class Mirror:
    """engine.events() -> the writer, as SessionSync wires them."""

    def __init__(self, engine: NeonizeEngine, db: Database) -> None:
        self.engine = engine
        self.db = db
        self.emitted: list[ev.Event] = []
        engine.add_listener(self.emitted.append)
        with db.write() as conn:
            self.session_id = ensure_session(conn, "t", "neonize")
        self.group = GroupWriter(db, max_delay=0.01)
        self.writer = self.group.attach(self.session_id)
        self.consumed = 0
        self._moved = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Mirror:
        self._pump = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.disconnect()
        if self._pump is not None:
            await self._pump
        await self.group.close()

    async def _run(self) -> None:
        async for event in self.engine.events():
            await self.writer.put(event)
            self.consumed += 1
            self._moved.set()

    async def feed(self, *protos: Any) -> None:
        await dispatch(self.engine, *protos)
        await self.settle()

    async def settle(self) -> None:
        while self.consumed < len(self.emitted):
            self._moved.clear()
            await self._moved.wait()
        await self.writer.flush()
