"""Live traffic: the next events of a network, drawn from its own seeded RNG.

Each event is applied to ground truth as it is drawn, so after `next_events(n)` the
network already shows the new messages, edits, revokes and reactions.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from wasync.domain.events import (
    Event,
    MessageEdited,
    MessageReceived,
    MessageRevoked,
    ReactionReceived,
)
from wasync.domain.models import Message, MessageEdit, MessageKey, MessageRevoke, Reaction
from wasync.engines.simulator.words import EMOJIS, PHRASES

if TYPE_CHECKING:
    from wasync.engines.simulator.network import Network

# Cumulative shares of each kind of live event; what is left are new messages.
_EDIT, _REVOKE, _REACTION, _LEAD = 0.08, 0.13, 0.23, 0.25
_REMOVAL_SHARE = 0.25  # of reaction events, when there is a reaction to remove
_RECENT = 10  # edits, revokes and reactions target one of a chat's newest messages
_LEAD_SHARE = 0.1  # of new messages, written in chats opened by new leads


class LiveTraffic:
    def __init__(
        self,
        network: Network,
        key: int,
        history_end: int,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self._network = network
        self._rng = random.Random(key)
        self.clock = history_end
        # With a wall clock (the demo), live events carry the real time: history keeps
        # its generated dates, and what arrives now looks like now.
        self._wall_clock = wall_clock
        self._cumulative: list[float] | None = None
        self._base_chats: list[str] = []
        self._lead_chats: list[str] = []
        self.edits: dict[MessageKey, MessageEdit] = {}
        self.revokes: dict[MessageKey, MessageRevoke] = {}
        self.reactions: dict[tuple[MessageKey, str], Reaction] = {}
        self._active: list[tuple[MessageKey, str]] = []  # reactions that can be removed
        # When each chat last saw an edit, a delete or a reaction.
        self.activity: dict[str, int] = {}

    def advance(self, seconds: int) -> int:
        if self._wall_clock is not None:
            # Never backwards, and one second apart at least: events stay in order.
            self.clock = max(self.clock + 1, int(self._wall_clock()))
        else:
            self.clock += max(1, seconds)
        return self.clock

    def next_events(self, n: int) -> list[Event]:
        events: list[Event] = []
        for _ in range(n):
            self.advance(self._rng.randint(1, 20))
            roll = self._rng.random()
            event: Event | None = None
            if not self._network.chat_count() or _REACTION <= roll < _LEAD:
                message = self._network.add_lead(self.clock)
                self._lead_chats.append(message.key.chat_jid)
                event = MessageReceived(message)
            elif roll < _EDIT:
                event = self._edit()
            elif roll < _REVOKE:
                event = self._revoke()
            elif roll < _REACTION:
                event = self._reaction()
            if event is None:
                event = MessageReceived(self._network.add_message(self._pick_chat(), self.clock))
            events.append(event)
        return events

    def _pick_chat(self) -> str:
        if self._lead_chats and self._rng.random() < _LEAD_SHARE:
            return self._rng.choice(self._lead_chats)
        if self._cumulative is None:
            # Busy chats stay busy: weight by history size.
            net = self._network
            self._base_chats = net.chat_jids()
            weights = (net.message_count(jid) + 1 for jid in self._base_chats)
            self._cumulative = list(itertools.accumulate(weights, initial=0.0))[1:]
        if not self._base_chats:
            return self._rng.choice(self._lead_chats)
        return self._rng.choices(self._base_chats, cum_weights=self._cumulative)[0]

    def _recent_target(self) -> Message | None:
        """A recent, not revoked message of a busy chat, or None if none is found."""
        for _ in range(3):
            chat = self._pick_chat()
            total = self._network.message_count(chat)
            if not total:
                continue
            index = total - 1 - self._rng.randrange(min(total, _RECENT))
            message = self._network.message(chat, index)
            if message.key not in self.revokes:
                return message
        return None

    def _edit(self) -> Event | None:
        target = self._recent_target()
        if target is None or target.text is None:
            return None
        edit = MessageEdit(target.key, self._rng.choice(PHRASES), self.clock)
        self.edits[target.key] = edit
        self.activity[target.key.chat_jid] = self.clock
        return MessageEdited(edit)

    def _revoke(self) -> Event | None:
        target = self._recent_target()
        if target is None:
            return None
        revoke = MessageRevoke(target.key, self.clock, target.key.sender_jid)
        self.revokes[target.key] = revoke
        self.activity[target.key.chat_jid] = self.clock
        return MessageRevoked(revoke)

    def _reaction(self) -> Event | None:
        if self._active and self._rng.random() < _REMOVAL_SHARE:
            slot = self._rng.randrange(len(self._active))
            target, sender = self._active[slot]
            self._active[slot] = self._active[-1]
            self._active.pop()
            removal = Reaction(target, sender, None, self.clock)
            self.reactions[(target, sender)] = removal
            self.activity[target.chat_jid] = self.clock
            return ReactionReceived(removal)
        message = self._recent_target()
        if message is None:
            return None
        sender = self._rng.choice(self._network.members(message.key.chat_jid))
        reaction = Reaction(message.key, sender, self._rng.choice(EMOJIS), self.clock)
        previous = self.reactions.get((message.key, sender))
        if previous is None or previous.emoji is None:
            self._active.append((message.key, sender))
        self.reactions[(message.key, sender)] = reaction
        self.activity[message.key.chat_jid] = self.clock
        return ReactionReceived(reaction)
