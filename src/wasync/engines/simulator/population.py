"""Who is on a simulated network: contacts, groups and chats, drawn from one seed.

Everything here is per-network and small (a few objects per contact, group and chat),
so it is built eagerly with `random.Random`; messages are not built here at all.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from wasync.domain.models import ChatKind, Contact, Group, Participant
from wasync.engines.simulator.config import NetworkConfig
from wasync.engines.simulator.hashing import derive, mix
from wasync.engines.simulator.history import ChatState
from wasync.engines.simulator.identities import with_identity
from wasync.engines.simulator.words import (
    FIRST_NAMES,
    GROUP_SUFFIXES,
    GROUP_WORDS,
    LAST_NAMES,
)

# country code:national number length
_COUNTRY_LENGTHS = (
    "1:10 44:10 49:11 33:9 34:9 39:10 55:11 52:10 91:10 62:11 234:10 27:9 61:9 81:10 90:10 "
    "351:9 31:9 48:9"
)
_COUNTRIES = tuple((c, int(n)) for c, n in (p.split(":") for p in _COUNTRY_LENGTHS.split()))


def user_jid(phone: str) -> str:
    return f"{phone}@s.whatsapp.net"


def random_phone(rng: random.Random) -> str:
    code, length = rng.choice(_COUNTRIES)
    return code + str(rng.randrange(10 ** (length - 1), 10**length))


def make_contact(phone: str, rng: random.Random, saved: bool = True) -> Contact:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    roll = rng.random()
    name = f"{first} {last}" if saved and roll < 0.85 else None
    push_name = first if roll < 0.6 else (f"{first} {last[0]}." if roll < 0.9 else None)
    business = f"{last} {rng.choice(GROUP_WORDS)}" if rng.random() < 0.04 else None
    # Drawn for everyone, so the network is the same draw whatever the LID share; only
    # the people WhatsApp addresses by LID (identities.py) are given theirs.
    lid = f"{rng.randrange(10**14, 10**15)}@lid"
    return Contact(user_jid(phone), name, push_name, business, phone, lid)


@dataclass(slots=True)
class Population:
    contacts: list[Contact]
    groups: list[Group]
    chats: list[ChatState]
    phones: set[str]
    history_end: int  # one second after the newest history message


def _groups(
    config: NetworkConfig, rng: random.Random, me: str, contacts: list[Contact]
) -> list[Group]:
    groups: list[Group] = []
    seen: set[str] = set()
    while len(groups) < config.groups:
        jid = f"120363{rng.randrange(10**11, 10**12)}@g.us"
        if jid in seen:
            continue
        seen.add(jid)
        # Most groups are small and a few are big, as on real phones.
        spread = config.group_size_max - config.group_size_min
        size = config.group_size_min + int(spread * rng.random() ** 3 + 0.5)
        size = min(size, len(contacts) + 1)
        members = [contacts[i] for i in rng.sample(range(len(contacts)), size - 1)]
        owner = me if rng.random() < 0.2 or not members else members[0].jid
        people = [Participant(me, owner == me, owner == me, config.own_phone)]
        for contact in members:
            is_owner = contact.jid == owner
            admin = is_owner or rng.random() < 0.1
            people.append(Participant(contact.jid, admin, is_owner, contact.phone, contact.lid))
        name = rng.choice(GROUP_WORDS) + rng.choice(GROUP_SUFFIXES)
        topic = f"{name}: {rng.choice(GROUP_WORDS).lower()}" if rng.random() < 0.3 else None
        created = config.start_ts - rng.randrange(1, config.span_seconds + 1)
        groups.append(Group(jid, name, topic, owner, created, tuple(people)))
    return groups


def _allocate(total: int, weights: list[float]) -> list[int]:
    """Split `total` messages across chats in proportion to `weights`, summing exactly."""
    if not weights:
        return []
    floor_each = 1 if total >= len(weights) else 0
    spare = total - floor_each * len(weights)
    scale = spare / sum(weights)
    counts = [floor_each + int(w * scale) for w in weights]
    leftover = total - sum(counts)
    by_weight = sorted(range(len(weights)), key=lambda i: -weights[i])
    for i in range(leftover):
        counts[by_weight[i % len(by_weight)]] += 1
    return counts


def build(config: NetworkConfig) -> Population:
    rng = random.Random(config.seed)
    me = user_jid(config.own_phone)
    phones = {config.own_phone}
    contacts: list[Contact] = []
    while len(contacts) < config.contacts:
        phone = random_phone(rng)
        if phone not in phones:
            phones.add(phone)
            contacts.append(with_identity(make_contact(phone, rng), config))
    groups = _groups(config, rng, me, contacts)
    push = {c.jid: c.push_name for c in contacts}

    chat_key = derive(config.seed, "chats")
    chats: list[ChatState] = []
    for index in sorted(rng.sample(range(len(contacts)), config.individual_chats)):
        contact = contacts[index]
        name = contact.name or contact.push_name
        chats.append(
            ChatState(
                contact.jid,
                ChatKind.INDIVIDUAL,
                0,
                0,
                0,
                1,
                name,
                peer=contact.jid,
                peer_push=contact.push_name,
            )
        )
    for group in groups:
        senders = tuple((p.jid, push.get(p.jid)) for p in group.participants)
        chats.append(ChatState(group.jid, ChatKind.GROUP, 0, 0, 0, 1, group.name, senders=senders))
    # Busy chats are few and quiet ones many; groups talk more than individuals.
    weights = [rng.lognormvariate(0.0, 1.3) * (2.0 if c.peer is None else 1.0) for c in chats]
    start, span = config.start_ts, config.span_seconds
    history_end = start + span
    for number, (chat, count) in enumerate(
        zip(chats, _allocate(config.messages, weights), strict=True)
    ):
        first = start + rng.randrange(0, max(1, span * 6 // 10))
        last = start + span - rng.randrange(0, max(1, span // 4))
        chat.key = mix(chat_key ^ (number << 32))
        chat.count = count
        chat.base = first
        chat.step = max(1, (last - first) // max(1, count))
        chat.unread_count = rng.choice((0, 0, 0, 0, 0, 1, 2, 3, 12))
        chat.archived = rng.random() < 0.05
        chat.pinned = number < 3
        chat.muted_until = start + span + 86_400 * 30 if rng.random() < 0.08 else None
        history_end = max(history_end, first + count * chat.step + 1)
    return Population(contacts, groups, chats, phones, history_end)
