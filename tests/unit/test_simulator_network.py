"""Ground truth of the simulated network: shape, determinism, lazy histories."""

from __future__ import annotations

import hashlib
import io
import itertools
import tracemalloc

import pytest
from PIL import Image

from wasync.domain.models import MEDIA_KINDS, ChatKind, MessageKind
from wasync.engines.simulator import SCALES, Network, NetworkConfig
from wasync.engines.simulator.hashing import mix, unmix


@pytest.fixture(scope="module")
def tiny() -> Network:
    return Network.from_scale("tiny", seed=7)


@pytest.fixture(scope="module")
def small() -> Network:
    return Network.from_scale("small", seed=3)


def test_scales_have_the_documented_sizes() -> None:
    assert SCALES["tiny"].messages == 300
    large = SCALES["large"]
    assert (large.contacts, large.groups, large.individual_chats) == (6_000, 1_000, 4_000)
    assert large.messages == 1_000_000


def test_same_seed_gives_the_same_network() -> None:
    a, b = Network.from_scale("tiny", seed=11), Network.from_scale("tiny", seed=11)
    assert a.contacts() == b.contacts()
    assert a.groups() == b.groups()
    assert a.chats() == b.chats()
    assert list(a.iter_all_messages()) == list(b.iter_all_messages())
    assert a.live_events(200) == b.live_events(200)
    assert a.chats() == b.chats()


def test_different_seeds_give_different_networks() -> None:
    a, b = Network.from_scale("tiny", seed=1), Network.from_scale("tiny", seed=2)
    assert a.contacts() != b.contacts()
    assert [m.key.message_id for m in itertools.islice(a.iter_all_messages(), 50)] != [
        m.key.message_id for m in itertools.islice(b.iter_all_messages(), 50)
    ]


def test_tiny_network_shape(tiny: Network) -> None:
    assert len(tiny.contacts()) == 10
    assert len(tiny.groups()) == 3
    chats = tiny.chats()
    assert len(chats) == 11 == len(tiny.chat_jids())
    assert sum(c.kind is ChatKind.INDIVIDUAL for c in chats) == 8
    assert tiny.total_messages() == 300 == sum(tiny.message_count(j) for j in tiny.chat_jids())
    assert tiny.me == "15550100001@s.whatsapp.net"
    contact_jids = {c.jid for c in tiny.contacts()}
    assert all(j.endswith("@s.whatsapp.net") for j in contact_jids)
    for group in tiny.groups():
        assert group.jid.endswith("@g.us")
        members = [p.jid for p in group.participants]
        assert tiny.me in members
        assert set(members) - {tiny.me} <= contact_jids
        assert len(members) == len(set(members))
        assert group.owner_jid in members
        assert 3 <= len(members) <= 8


def test_chats_carry_names_and_last_message_time(tiny: Network) -> None:
    for chat in tiny.chats():
        newest = tiny.newest(chat.jid, 1)
        assert chat.last_message_at == (newest[0].timestamp if newest else None)
        if chat.kind is ChatKind.GROUP:
            group = tiny.group(chat.jid)
            assert group is not None and chat.name == group.name


def test_timestamps_strictly_increase_in_every_chat(small: Network) -> None:
    seen = 0
    for jid in small.chat_jids():
        stamps = [m.timestamp for m in small.messages(jid)]
        seen += len(stamps)
        assert all(a < b for a, b in itertools.pairwise(stamps)), jid
    assert seen == small.total_messages() == 20_000


def test_message_ids_look_like_whatsapp_and_are_unique_per_chat(small: Network) -> None:
    for jid in small.chat_jids()[:40]:
        ids = [m.key.message_id for m in small.messages(jid)]
        assert len(ids) == len(set(ids))
        assert all(len(i) == 20 and i.startswith("3EB0") and i == i.upper() for i in ids)


def test_senders_push_names_and_quotes_are_consistent(small: Network) -> None:
    quotes = 0
    for jid in small.chat_jids():
        members = set(small.members(jid))
        earlier: set[str] = set()
        for message in small.messages(jid):
            assert message.key.chat_jid == jid
            assert message.key.sender_jid in members
            assert message.from_me == (message.key.sender_jid == small.me)
            if message.from_me:
                assert message.push_name is None
            if message.quoted_id is not None:
                quotes += 1
                assert message.quoted_id in earlier
            earlier.add(message.key.message_id)
    assert quotes > 100


def test_individual_chats_alternate_between_us_and_the_contact(tiny: Network) -> None:
    chat = next(c for c in tiny.chats() if c.kind is ChatKind.INDIVIDUAL)
    senders = {m.key.sender_jid for m in tiny.messages(chat.jid)}
    assert senders == {tiny.me, chat.jid}
    incoming = [m for m in tiny.messages(chat.jid) if not m.from_me]
    contact = tiny.contact(chat.jid)
    assert contact is not None
    assert all(m.push_name == contact.push_name for m in incoming)


def test_about_a_tenth_of_messages_carry_media(small: Network) -> None:
    messages = list(itertools.islice(small.iter_all_messages(), 5_000))
    media = [m for m in messages if m.kind in MEDIA_KINDS]
    assert 0.07 < len(media) / len(messages) < 0.13
    assert {m.kind for m in media} == set(MEDIA_KINDS)
    assert all(m.media is not None for m in media)
    assert all(m.media is None and m.text for m in messages if m.kind is MessageKind.TEXT)
    assert any(m.text for m in media)  # some captions


def test_media_info_describes_the_served_bytes(small: Network) -> None:
    checked = 0
    for message in itertools.islice(small.iter_all_messages(), 3_000):
        if message.media is None:
            continue
        info = message.media
        data = small.media_bytes(message.key.chat_jid, message.key.message_id)
        assert info.size == len(data)
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        assert info.url is not None and info.url.endswith(
            f"/media/{message.key.chat_jid}/{message.key.message_id}"
        )
        assert info.media_key and info.enc_sha256 and info.direct_path and info.mimetype
        if message.kind is MessageKind.DOCUMENT:
            assert info.filename and info.filename.endswith(".pdf")
        if message.kind is MessageKind.IMAGE:
            with Image.open(io.BytesIO(data)) as image:
                assert image.format == "JPEG"
                assert (image.width, image.height) == (info.width, info.height)
        checked += 1
    assert checked > 100


def test_media_bytes_are_unique_per_image(small: Network) -> None:
    images = [m for m in itertools.islice(small.iter_all_messages(), 3_000) if m.media]
    hashes = [m.media.sha256 for m in images if m.kind is MessageKind.IMAGE and m.media]
    assert len(hashes) == len(set(hashes)) > 10


def test_paging_helpers_agree(tiny: Network) -> None:
    jid = max(tiny.chat_jids(), key=tiny.message_count)
    total = tiny.message_count(jid)
    everything = list(tiny.messages(jid))
    assert len(everything) == total
    assert tiny.newest(jid, 5) == everything[-5:]
    assert tiny.newest(jid, total + 10) == everything
    assert list(tiny.messages(jid, 2, 6)) == everything[2:6]
    assert tiny.message(jid, total - 1) == everything[-1]
    with pytest.raises(IndexError):
        tiny.message(jid, total)
    with pytest.raises(LookupError):
        tiny.message_count("0@s.whatsapp.net")


def test_messages_are_found_by_time_and_id(small: Network) -> None:
    jid = max(small.chat_jids(), key=small.message_count)
    total = small.message_count(jid)
    for index in (0, 1, total // 3, total - 1):
        message = small.message(jid, index)
        assert small.index_of(jid, message.key.message_id, message.timestamp) == index
        assert small.find_message(jid, message.key.message_id) == message
    other = small.message(jid, 5)
    assert small.index_of(jid, other.key.message_id, other.timestamp + 1) is None
    assert small.index_of(jid, "3EB0000000000000BEEF", other.timestamp) is None
    assert small.find_message(jid, "3EB0000000000000BEEF") is None
    assert small.find_message(jid, "not-an-id") is None


def test_hash_inverts() -> None:
    for value in (0, 1, 2**63, 2**64 - 1, 123456789):
        assert unmix(mix(value)) == value


def test_large_network_is_lazy() -> None:
    tracemalloc.start()
    try:
        network = Network.from_scale("large", seed=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A million materialized messages would take hundreds of megabytes.
    assert peak < 80 * 2**20
    assert network.total_messages() == 1_000_000
    assert len(network.chats()) == 5_000
    for jid in network.chat_jids()[::250]:
        count = network.message_count(jid)
        last = network.message(jid, count - 1)
        assert network.index_of(jid, last.key.message_id, last.timestamp) == count - 1


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="individual_chats"):
        NetworkConfig(contacts=2, individual_chats=3)
    with pytest.raises(ValueError, match="unknown scale"):
        Network.from_scale("huge")


def test_overrides_change_a_scale() -> None:
    network = Network.from_scale("tiny", seed=1, messages=20, groups=0)
    assert network.total_messages() == 20
    assert network.groups() == []


def test_empty_chats_are_allowed() -> None:
    network = Network(NetworkConfig(contacts=5, individual_chats=5, groups=0, messages=2))
    counts = sorted(network.message_count(j) for j in network.chat_jids())
    assert counts == [0, 0, 0, 1, 1]
    empty = next(c for c in network.chats() if network.message_count(c.jid) == 0)
    assert empty.last_message_at is None
