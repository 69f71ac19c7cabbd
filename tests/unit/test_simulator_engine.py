"""The simulator engine through the Engine port: lifecycle, pairing, requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from wasync.domain.events import (
    Connected,
    Disconnected,
    Event,
    LoggedOut,
    MessageReceived,
    OfflineSyncCompleted,
    OfflineSyncStarted,
    Paired,
    PairingCode,
    PictureChanged,
    SessionStatus,
)
from wasync.domain.models import (
    Message,
    MessageAnchor,
    MessageKey,
    Picture,
    PictureForbidden,
    PictureNotSet,
    PictureUnchanged,
)
from wasync.engines.base import Engine, EngineError, LoggedOutError, NotConnected
from wasync.engines.simulator import Faults, Network, PictureState, SimulatorEngine


async def take(engine: SimulatorEngine, n: int) -> list[Event]:
    stream = engine.events()
    async with asyncio.timeout(5):
        return [await anext(stream) for _ in range(n)]


async def rest(engine: SimulatorEngine) -> list[Event]:
    """Everything still queued: ends the stream with disconnect() and reads to its end."""
    await engine.disconnect()
    async with asyncio.timeout(5):
        return [event async for event in engine.events()]


def anchor(message: Message) -> MessageAnchor:
    return MessageAnchor(message.key, message.timestamp, message.from_me)


@pytest.fixture
def network() -> Network:
    return Network.from_scale("tiny", seed=7)


@pytest.fixture
async def engine(network: Network) -> AsyncIterator[SimulatorEngine]:
    engine = SimulatorEngine(network)
    await engine.connect()
    assert await take(engine, 1) == [Connected(network.me)]
    yield engine
    await engine.close()


async def test_implements_the_engine_port(engine: SimulatorEngine) -> None:
    assert isinstance(engine, Engine)
    capabilities = engine.capabilities
    assert capabilities.on_demand_history and capabilities.pair_code
    assert capabilities.profile_pictures and capabilities.media_download
    assert engine.status is SessionStatus.CONNECTED


async def test_requests_need_a_connection(network: Network) -> None:
    engine = SimulatorEngine(network)
    with pytest.raises(NotConnected):
        await engine.list_chats()
    with pytest.raises(NotConnected):
        await engine.request_history(network.chat_jids()[0], None, 10)
    await engine.close()


async def test_disconnect_ends_the_event_stream(engine: SimulatorEngine) -> None:
    assert await rest(engine) == [Disconnected("disconnect() called")]
    assert engine.status is SessionStatus.DISCONNECTED
    await engine.connect()  # a stale end marker must not end the next stream
    await engine.push_live(1)
    first, second = await take(engine, 2)
    assert isinstance(first, Connected) and isinstance(second, MessageReceived)


async def test_new_session_pairs_by_qr(network: Network) -> None:
    engine = SimulatorEngine(network, paired=False)
    await engine.connect()
    qr, paired, connected = await take(engine, 3)
    assert isinstance(qr, PairingCode) and qr.kind == "qr" and qr.code.startswith("2@")
    assert paired == Paired(network.me) and connected == Connected(network.me)
    assert engine.paired and engine.status is SessionStatus.CONNECTED
    await engine.close()


async def test_new_session_pairs_by_phone_code(network: Network) -> None:
    engine = SimulatorEngine(network, paired=False, auto_pair=False)
    await engine.connect()
    assert engine.status is SessionStatus.PAIRING
    code = await engine.pair_phone("+49 151 2345678")
    assert len(code) == 8 and code.isalnum() and code.isupper()
    qr, phone_code = await take(engine, 2)
    assert isinstance(qr, PairingCode) and phone_code == PairingCode(code, "phone")
    await engine.confirm_pairing()
    assert await take(engine, 2) == [Paired(network.me), Connected(network.me)]
    with pytest.raises(EngineError, match="pairing"):
        await engine.pair_phone("+49 151 2345678")
    await engine.close()

    again = SimulatorEngine(network, paired=False, auto_pair=False)
    await again.connect()
    assert await again.pair_phone("+49 151 2345678") == code  # deterministic per seed
    await again.close()


async def test_logout_ends_the_session(engine: SimulatorEngine) -> None:
    await engine.logout()
    assert engine.status is SessionStatus.LOGGED_OUT and not engine.paired
    async with asyncio.timeout(5):
        assert [e async for e in engine.events()] == [LoggedOut("logged out")]
    with pytest.raises(LoggedOutError):
        await engine.list_contacts()
    await engine.connect()  # a logged-out session pairs again
    assert isinstance((await take(engine, 1))[0], PairingCode)


async def test_lists_are_the_ground_truth(engine: SimulatorEngine, network: Network) -> None:
    assert await engine.list_contacts() == network.contacts()
    assert await engine.list_groups() == network.groups()
    assert await engine.list_chats() == network.chats()


async def test_history_pages_backwards_through_a_whole_chat(
    engine: SimulatorEngine, network: Network
) -> None:
    jid = max(network.chat_jids(), key=network.message_count)
    total = network.message_count(jid)
    pages: list[list[Message]] = []
    before: MessageAnchor | None = None
    while True:
        page = await engine.request_history(jid, before, 7)
        pages.append(page)
        if len(page) < 7:
            break
        before = anchor(page[-1])
    collected = [m for page in pages for m in page]
    assert collected == list(reversed(list(network.messages(jid))))  # each once, newest first
    assert len(pages[-1]) == total % 7
    assert engine.stats.history_requests == len(pages)
    oldest = network.message(jid, 0)
    assert await engine.request_history(jid, anchor(oldest), 7) == []


async def test_history_includes_live_messages(engine: SimulatorEngine, network: Network) -> None:
    jid = network.chat_jids()[0]
    added = network.add_message(jid)
    assert (await engine.request_history(jid, None, 3))[0] == added
    older = await engine.request_history(jid, anchor(added), 2)
    assert older == list(reversed(network.newest(jid, 3)[:2]))


async def test_history_rejects_unknown_chats_and_anchors(
    engine: SimulatorEngine, network: Network
) -> None:
    with pytest.raises(EngineError, match="unknown chat"):
        await engine.request_history("1@s.whatsapp.net", None, 5)
    jid = network.chat_jids()[0]
    real = network.message(jid, 3)
    wrong_id = MessageAnchor(MessageKey(jid, real.key.sender_jid, "3EB0FFFF"), real.timestamp)
    with pytest.raises(EngineError, match="anchor"):
        await engine.request_history(jid, wrong_id, 5)
    wrong_sender = MessageAnchor(
        MessageKey(jid, "9@s.whatsapp.net", real.key.message_id), real.timestamp
    )
    with pytest.raises(EngineError, match="anchor"):
        await engine.request_history(jid, wrong_sender, 5)


async def test_profile_pictures(engine: SimulatorEngine, network: Network) -> None:
    jids = [c.jid for c in network.contacts()]
    shown, hidden, unset = jids[0], jids[1], jids[2]
    network.set_picture_state(shown, PictureState.SET)
    network.set_picture_state(hidden, PictureState.FORBIDDEN)
    network.set_picture_state(unset, PictureState.NOT_SET)

    picture = await engine.profile_picture(shown, None)
    assert isinstance(picture, Picture) and picture.id == network.picture_id(shown)
    assert picture.url.endswith(f"/pictures/{shown}/{picture.id}.jpg")
    assert await engine.profile_picture(shown, picture.id) == PictureUnchanged(picture.id)
    assert await engine.profile_picture(hidden, None) == PictureForbidden()
    assert await engine.profile_picture(unset, "123") == PictureNotSet()

    event = await engine.push_picture_change(shown)
    assert await take(engine, 1) == [event]
    assert isinstance(event, PictureChanged) and event.jid == shown
    changed = await engine.profile_picture(shown, picture.id)
    assert isinstance(changed, Picture) and changed.id != picture.id

    assert engine.stats.picture_requests == len(engine.picture_requests) == 5
    assert engine.picture_requests == sorted(engine.picture_requests)


async def test_push_live_delivers_in_order(engine: SimulatorEngine) -> None:
    sent = await engine.push_live(40)
    assert await take(engine, 40) == sent
    assert engine.stats.events_delivered == 40 and engine.stats.duplicates_delivered == 0


async def test_events_wait_offline_until_reconnect(engine: SimulatorEngine) -> None:
    assert await rest(engine) == [Disconnected("disconnect() called")]
    sent = await engine.push_live(12)
    assert engine.stats.events_delivered == 0
    await engine.connect()
    received = await take(engine, 15)
    assert received == [
        Connected(engine.network.me),
        OfflineSyncStarted(12),
        *sent,
        OfflineSyncCompleted(12),
    ]


async def test_live_rate_generates_traffic_while_connected(network: Network) -> None:
    engine = SimulatorEngine(network, Faults(live_rate=2_000))
    await engine.connect()
    events = await take(engine, 60)
    assert isinstance(events[0], Connected)
    assert sum(isinstance(e, MessageReceived) for e in events) > 20
    await engine.close()
    delivered = engine.stats.events_delivered
    await asyncio.sleep(0.05)
    assert engine.stats.events_delivered == delivered  # traffic stopped with close()


async def test_removed_picture_is_announced_and_not_set(
    engine: SimulatorEngine, network: Network
) -> None:
    jid = network.groups()[0].jid
    network.set_picture_state(jid, PictureState.SET)
    event = await engine.push_picture_change(jid, removed=True)
    assert event.removed and event.timestamp is not None
    assert await take(engine, 1) == [event]
    assert await engine.profile_picture(jid, None) == PictureNotSet()


async def test_drained_waits_for_the_consumer(engine: SimulatorEngine) -> None:
    received: list[Event] = []

    async def consume() -> None:
        async for event in engine.events():
            received.append(event)

    consumer = asyncio.create_task(consume())
    sent = await engine.push_live(50)
    async with asyncio.timeout(5):
        await engine.drained()
    assert received == sent
    await engine.disconnect()
    async with asyncio.timeout(5):
        await consumer
    assert isinstance(received[-1], Disconnected)
