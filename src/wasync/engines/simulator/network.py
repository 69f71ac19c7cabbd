"""A deterministic, seeded fake WhatsApp network with queryable ground truth.

Tests assert "the mirror equals the network" against this object: it answers what
exists (contacts, groups, chats, messages, pictures, edits, revokes, reactions)
without ever holding the message history in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from wasync.domain.events import Event, MessageEdited, MessageRevoked, ReactionReceived
from wasync.domain.models import (
    Chat,
    ChatKind,
    Contact,
    Group,
    Message,
    MessageEdit,
    MessageKey,
    MessageRevoke,
    Reaction,
)
from wasync.engines.simulator import history
from wasync.engines.simulator.config import SCALES, NetworkConfig
from wasync.engines.simulator.hashing import derive, mix
from wasync.engines.simulator.history import ChatState
from wasync.engines.simulator.identities import hides_number
from wasync.engines.simulator.live import LiveTraffic
from wasync.engines.simulator.media import media_payload, picture_jpeg
from wasync.engines.simulator.pictures import PictureBook, PictureState
from wasync.engines.simulator.population import build, user_jid
from wasync.engines.simulator.words import FIRST_NAMES

__all__ = ["DEFAULT_MEDIA_BASE_URL", "SCALES", "Network", "NetworkConfig"]

# Media URLs name a CDN host like WhatsApp's; the media server answers any URL by its
# path, so URLs stay valid across engines and server restarts.
DEFAULT_MEDIA_BASE_URL = "https://mmg.simulator.invalid"


class Network:
    def __init__(
        self,
        config: NetworkConfig,
        *,
        media_base_url: str = DEFAULT_MEDIA_BASE_URL,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self.media_base_url = media_base_url.rstrip("/")
        self.live_count = 0  # live events drawn so far
        self.me = user_jid(config.own_phone)
        population = build(config)
        self._contacts = population.contacts
        self._contact_by_jid = {c.jid: c for c in self._contacts}
        self._groups = population.groups
        self._group_by_jid = {g.jid: g for g in self._groups}
        self._chats: dict[str, ChatState] = {c.jid: c for c in population.chats}
        self._phones = population.phones
        self._history_total = sum(c.count for c in population.chats)
        self._live_total = 0
        self._chat_key = derive(config.seed, "chats")
        self._lead_key = derive(config.seed, "leads")
        self._pictures = PictureBook(config.seed)
        self._live = LiveTraffic(
            self, derive(config.seed, "live"), population.history_end, wall_clock
        )

    @classmethod
    def from_scale(
        cls,
        name: str,
        seed: int = 0,
        *,
        wall_clock: Callable[[], float] | None = None,
        **overrides: Any,
    ) -> Network:
        """A network of a named size ("tiny", "small", "medium", "large")."""
        try:
            config = SCALES[name]
        except KeyError:
            raise ValueError(f"unknown scale {name!r}; choose one of {sorted(SCALES)}") from None
        return cls(config.replace(seed=seed, **overrides), wall_clock=wall_clock)

    @property
    def seed(self) -> int:
        return self.config.seed

    # People and chats.

    def contacts(self) -> list[Contact]:
        return list(self._contacts)

    def contact(self, jid: str) -> Contact | None:
        return self._contact_by_jid.get(jid)

    def groups(self) -> list[Group]:
        return list(self._groups)

    # People, one each whatever address the wire used (wire.py).

    def canonical(self, jid: str) -> str:
        """The key a mirror keeps a person under: their LID if they have one."""
        contact = self._contact_by_jid.get(jid)
        return contact.lid if contact is not None and contact.lid else jid

    def canonical_key(self, key: MessageKey) -> MessageKey:
        return MessageKey(
            self.canonical(key.chat_jid), self.canonical(key.sender_jid), key.message_id
        )

    def person(self, jid: str) -> Contact | None:
        """A contact as a mirror should hold it: keyed canonically, with the forms
        WhatsApp tells (no number for a person who hides it)."""
        contact = self._contact_by_jid.get(jid)
        if contact is None or contact.lid is None:
            return contact
        phone = None if hides_number(self.config, contact.phone or "") else contact.phone
        return replace(contact, jid=contact.lid, phone=phone)

    def people(self) -> list[Contact]:
        return [p for c in self._contacts if (p := self.person(c.jid)) is not None]

    def group(self, jid: str) -> Group | None:
        return self._group_by_jid.get(jid)

    def chat_jids(self) -> list[str]:
        return list(self._chats)

    def chat_count(self) -> int:
        return len(self._chats)

    def chat(self, jid: str) -> Chat:
        """The chat as its list shows it; `last_message_at` is its last activity: a
        message, or an edit, delete or reaction (each is an entry of its timeline)."""
        state = self._state(jid)
        last = history.timestamp(state, state.total - 1) if state.total else None
        changed = self._live.activity.get(jid)
        if changed is not None and (last is None or changed > last):
            last = changed
        return Chat(
            state.jid,
            state.kind,
            state.name,
            last,
            state.unread_count,
            state.archived,
            state.pinned,
            state.muted_until,
        )

    def chats(self) -> list[Chat]:
        return [self.chat(jid) for jid in self._chats]

    def members(self, chat_jid: str) -> tuple[str, ...]:
        """Who can write in a chat: us and the contact, or the group's participants."""
        return self._state(chat_jid).members(self.me)

    def _state(self, chat_jid: str) -> ChatState:
        try:
            return self._chats[chat_jid]
        except KeyError:
            raise LookupError(f"no chat {chat_jid!r} on this network") from None

    # Messages.

    def message_count(self, chat_jid: str) -> int:
        return self._state(chat_jid).total

    def total_messages(self) -> int:
        return self._history_total + self._live_total

    def message(self, chat_jid: str, index: int) -> Message:
        """Message `index` of a chat, 0 being the oldest. O(1); nothing is cached."""
        state = self._chats.get(chat_jid) or self._state(chat_jid)
        if index < state.count:
            if index < 0:
                raise IndexError(f"message index {index} is negative")
            return history.generate(state, index, self.me, self.media_base_url)
        try:
            return state.live[index - state.count]
        except IndexError:
            raise IndexError(f"{chat_jid} has {state.total} messages, not {index + 1}") from None

    def messages(self, chat_jid: str, start: int = 0, stop: int | None = None) -> Iterator[Message]:
        """Messages [start, stop) of a chat, oldest first, generated as they are read."""
        state = self._state(chat_jid)
        stop = state.total if stop is None else min(stop, state.total)
        for index in range(max(0, start), stop):
            yield self.message(chat_jid, index)

    def newest(self, chat_jid: str, n: int) -> list[Message]:
        """The newest `n` messages of a chat, oldest first."""
        total = self.message_count(chat_jid)
        return list(self.messages(chat_jid, max(0, total - n)))

    def iter_all_messages(self) -> Iterator[Message]:
        for jid in list(self._chats):
            yield from self.messages(jid)

    def index_of(self, chat_jid: str, message_id: str, timestamp: int) -> int | None:
        """Where a message sits in its chat (binary search on time, then the id)."""
        return history.find_index(self._state(chat_jid), timestamp, message_id)

    def find_message(self, chat_jid: str, message_id: str) -> Message | None:
        """A message by its id alone (the id encodes its index), or None."""
        state = self._chats.get(chat_jid)
        if state is None:
            return None
        index = history.index_from_id(state, message_id)
        return None if index is None else self.message(chat_jid, index)

    def media_bytes(self, chat_jid: str, message_id: str) -> bytes:
        """The plaintext media of a message, as the media server serves it."""
        state = self._state(chat_jid)
        index = history.index_from_id(state, message_id)
        if index is None:
            raise LookupError(f"no message {message_id!r} in {chat_jid!r}")
        message = self.message(chat_jid, index)
        if message.media is None:
            raise LookupError(f"message {message_id!r} has no media")
        tag = f"{chat_jid}/{message_id}".encode()
        return media_payload(message.kind, history.message_hash(state, index), tag)

    # Changes to ground truth (live traffic and tests).

    @property
    def now(self) -> int:
        """The virtual clock: after all history, advanced by live traffic."""
        return self._live.clock

    def advance_clock(self, seconds: int = 1) -> int:
        return self._live.advance(seconds)

    def _stamp(self, timestamp: int | None) -> int:
        # An explicit time also moves the clock, so later live events stay in order.
        if timestamp is None:
            return self.advance_clock()
        self._live.clock = max(self._live.clock, timestamp)
        return timestamp

    def add_message(self, chat_jid: str, timestamp: int | None = None) -> Message:
        """Append a new (live) message to a chat; content comes from the same hash."""
        state = self._state(chat_jid)
        at = self._stamp(timestamp)
        if state.total and at <= history.timestamp(state, state.total - 1):
            raise ValueError(f"timestamp {at} is not after the newest message of {chat_jid}")
        message = history.generate(state, state.total, self.me, self.media_base_url, at)
        state.live.append(message)
        self._live_total += 1
        return message

    def add_lead(self, timestamp: int | None = None) -> Message:
        """A new contact writes to us first: a new contact, chat and message appear.

        On a network with LIDs, every other lead is a group member (known by LID from the
        roster) writing to us directly for the first time, while one remains.
        """
        at = self._stamp(timestamp)
        number = len(self._chats)
        value = mix(self._lead_key ^ number)
        member = self._member_without_chat(value) if self.config.lid_fraction > 0 else None
        if member is not None:
            return self._first_direct_message(member, number, at)
        phone = "1555" + str(value % 10**7).zfill(7)
        while phone in self._phones:
            value = mix(value)
            phone = "1555" + str(value % 10**7).zfill(7)
        self._phones.add(phone)
        # Not in our address book: WhatsApp only knows the name they chose.
        contact = Contact(user_jid(phone), None, FIRST_NAMES[value % len(FIRST_NAMES)], phone=phone)
        self._contacts.append(contact)
        self._contact_by_jid[contact.jid] = contact
        state = ChatState(
            contact.jid,
            ChatKind.INDIVIDUAL,
            mix(self._chat_key ^ (number << 32)),
            0,
            at,
            1,
            contact.push_name,
            contact.jid,
            contact.push_name,
            unread_count=1,
        )
        self._chats[contact.jid] = state
        message = history.generate(state, 0, self.me, self.media_base_url, at, from_peer=True)
        state.live.append(message)
        self._live_total += 1
        return message

    def _member_without_chat(self, value: int) -> Contact | None:
        if value & 1:
            return None
        members = {p.jid for g in self._groups for p in g.participants}
        waiting = [
            c for c in self._contacts if c.lid and c.jid in members and c.jid not in self._chats
        ]
        return waiting[(value >> 1) % len(waiting)] if waiting else None

    def _first_direct_message(self, contact: Contact, number: int, at: int) -> Message:
        state = ChatState(
            contact.jid,
            ChatKind.INDIVIDUAL,
            mix(self._chat_key ^ (number << 32)),
            0,
            at,
            1,
            contact.name or contact.push_name,
            contact.jid,
            contact.push_name,
            unread_count=1,
        )
        self._chats[contact.jid] = state
        message = history.generate(state, 0, self.me, self.media_base_url, at, from_peer=True)
        state.live.append(message)
        self._live_total += 1
        return message

    def live_events(self, n: int) -> list[Event]:
        """The next `n` live events, already applied to ground truth."""
        events = self._live.next_events(n)
        self.live_count += len(events)
        return events

    def edits(self) -> dict[MessageKey, MessageEdit]:
        return dict(self._live.edits)

    def revokes(self) -> dict[MessageKey, MessageRevoke]:
        return dict(self._live.revokes)

    def reactions(self) -> dict[tuple[MessageKey, str], Reaction]:
        return dict(self._live.reactions)

    def changes_in(self, chat_jid: str, since: int | None, until: int | None) -> list[Event]:
        """The chat's edits, revokes and reactions made in [since, until), as they stand.

        In WhatsApp's history each of these is an entry of the chat's timeline at its
        own time, so a history page carries those of the span it covers (None: no
        bound), as the latest state of each (a later edit replaced an earlier one).
        """
        live = self._live

        def within(ts: int) -> bool:
            return (since is None or ts >= since) and (until is None or ts < until)

        out: list[Event] = []
        out += [
            MessageEdited(e)
            for k, e in live.edits.items()
            if k.chat_jid == chat_jid and within(e.edited_at)
        ]
        out += [
            MessageRevoked(r)
            for k, r in live.revokes.items()
            if k.chat_jid == chat_jid and within(r.revoked_at)
        ]
        out += [
            ReactionReceived(r)
            for (k, _), r in live.reactions.items()
            if k.chat_jid == chat_jid and within(r.timestamp)
        ]
        return out

    # Profile pictures.

    def picture_state(self, jid: str) -> PictureState:
        return self._pictures.state(jid)

    def picture_id(self, jid: str) -> str | None:
        """The id of the picture we can see, or None when not set or hidden."""
        return self._pictures.picture_id(jid)

    def picture_bytes(self, jid: str, picture_id: str) -> bytes:
        """A real JPEG for (jid, picture id); the server serves only current ids."""
        return picture_jpeg(jid, picture_id)

    def change_picture(self, jid: str) -> str:
        return self._pictures.change(jid)

    def remove_picture(self, jid: str) -> None:
        self._pictures.remove(jid)

    def set_picture_state(self, jid: str, state: PictureState) -> None:
        self._pictures.set_state(jid, state)
