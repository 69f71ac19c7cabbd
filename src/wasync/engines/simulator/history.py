"""Lazy message histories: message `i` of a chat is a pure function of (chat key, i).

A chat stores only a handful of integers; its `count` history messages are computed
on demand, and live messages (which can be edited into the network by tests and live
traffic) are kept explicitly after them. Timestamps follow
`base + i*step + jitter(i)` with `0 <= jitter < step`, so they are strictly
increasing in `i` and an anchor can be found by binary search.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wasync.domain.models import ChatKind, Message, MessageKey, MessageKind
from wasync.engines.simulator.hashing import mix, unmix
from wasync.engines.simulator.media import MEDIA_KIND_TABLE, media_info
from wasync.engines.simulator.words import PHRASES

_ID_SALT = 0x2545F4914F6CDD1D
_MEDIA_ROLL = 26  # out of 256: ~10% of messages carry media
_QUOTE_MASK = 31  # one message in 32 quotes an earlier one
_QUOTE_REACH = 20  # how far back a quote may point
_CAPTIONED = frozenset({MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.DOCUMENT})
_TEXT = MessageKind.TEXT


@dataclass(slots=True, eq=False)
class ChatState:
    jid: str
    kind: ChatKind
    key: int  # per-chat hash key: message i hashes `key ^ i`
    count: int  # lazily generated history messages
    base: int  # timestamp slot of message 0
    step: int  # seconds per timestamp slot, >= 1
    name: str | None
    # An individual chat's contact, or None for a group.
    peer: str | None = None
    peer_push: str | None = None
    # A group's possible senders: (jid, push name), `me` included.
    senders: tuple[tuple[str, str | None], ...] = ()
    unread_count: int = 0
    archived: bool = False
    pinned: bool = False
    muted_until: int | None = None
    live: list[Message] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.count + len(self.live)

    def members(self, me: str) -> tuple[str, ...]:
        if self.peer is not None:
            return (me, self.peer)
        return tuple(jid for jid, _ in self.senders)


def message_id(chat: ChatState, index: int) -> str:
    return f"3EB0{mix(mix(chat.key ^ index) ^ _ID_SALT):016X}"


def index_from_id(chat: ChatState, message_id: str) -> int | None:
    """The index a generated id belongs to (by inverting the hash), or None."""
    if len(message_id) != 20 or not message_id.startswith("3EB0"):
        return None
    try:
        value = int(message_id[4:], 16)
    except ValueError:
        return None
    index = unmix(unmix(value) ^ _ID_SALT) ^ chat.key
    return index if index < chat.total else None


def timestamp(chat: ChatState, index: int) -> int:
    if index >= chat.count:
        return chat.live[index - chat.count].timestamp
    step = chat.step
    return chat.base + index * step + (mix(chat.key ^ index) >> 33) % step


def generate(
    chat: ChatState,
    index: int,
    me: str,
    media_base_url: str,
    at: int | None = None,
    from_peer: bool = False,
) -> Message:
    """Message `index` of `chat`; `at` overrides the timestamp (live messages)."""
    h = mix(chat.key ^ index)
    mid = f"3EB0{mix(h ^ _ID_SALT):016X}"
    if at is None:
        step = chat.step
        at = chat.base + index * step + (h >> 33) % step
    peer = chat.peer
    push: str | None
    if peer is not None:
        if h & 0x100 and not from_peer:
            sender, from_me, push = me, True, None
        else:
            sender, from_me, push = peer, False, chat.peer_push
    else:
        senders = chat.senders
        sender, push = senders[(h >> 8) % len(senders)]
        from_me = sender == me
    roll = h & 0xFF
    if roll >= _MEDIA_ROLL:
        kind = _TEXT
        text: str | None = PHRASES[(h >> 16) & 0xFFF]
        media = None
    else:
        kind = MEDIA_KIND_TABLE[roll % len(MEDIA_KIND_TABLE)]
        media = media_info(kind, h, chat.jid, mid, media_base_url)
        captioned = kind in _CAPTIONED and (h >> 12) & 3 == 0
        text = PHRASES[(h >> 16) & 0xFFF] if captioned else None
    quoted = None
    if index and (h >> 28) & _QUOTE_MASK == 0:
        quoted = message_id(chat, index - 1 - (h >> 16) % min(index, _QUOTE_REACH))
    return Message(MessageKey(chat.jid, sender, mid), at, from_me, kind, text, media, quoted, push)


def message_hash(chat: ChatState, index: int) -> int:
    return mix(chat.key ^ index)


def find_index(chat: ChatState, at: int, message_id_: str) -> int | None:
    """The index of the message with this timestamp and id, by binary search on time."""
    lo, hi = 0, chat.total
    while lo < hi:
        middle = (lo + hi) // 2
        if timestamp(chat, middle) < at:
            lo = middle + 1
        else:
            hi = middle
    if lo < chat.total and timestamp(chat, lo) == at and message_id(chat, lo) == message_id_:
        return lo
    return None
