"""Which events an endpoint receives: the event filter and its validation."""

from __future__ import annotations

from collections.abc import Iterable

from wasync.errors import DomainError

# Every event a webhook can subscribe to, in the order the docs list them.
EVENT_TYPES = (
    "message",
    "message.edit",
    "message.delete",
    "reaction",
    "chat",
    "contact",
    "group",
    "contact.merged",
    "chat.merged",
    "avatar",
    "session.status",
    "sync.progress",
)
ALL = "*"
# Discord shows pictures and alerts; a firehose of messages does not belong there.
DISCORD_EVENT_TYPES = ("avatar", "session.status")
# Sent by `ping` whatever the filter: it checks the receiver, not a subscription.
PING = "ping"


class InvalidEventFilter(DomainError):
    pass


def parse_filter(value: str | Iterable[str]) -> tuple[str, ...]:
    """Normalize a filter ("message,avatar", ["*"], …): sorted, unique, validated."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = {item.strip() for item in items if item.strip()}
    if not names:
        raise InvalidEventFilter(
            f"the event filter is empty: name events ({', '.join(EVENT_TYPES)}) or '*'"
        )
    unknown = sorted(names - set(EVENT_TYPES) - {ALL})
    if unknown:
        raise InvalidEventFilter(
            f"unknown event type {', '.join(map(repr, unknown))}: choose from "
            f"{', '.join(EVENT_TYPES)} or '*'"
        )
    if ALL in names:
        return (ALL,)
    return tuple(sorted(names, key=EVENT_TYPES.index))


def check_discord_filter(events: tuple[str, ...]) -> None:
    if events == (ALL,):
        return
    other = [e for e in events if e not in DISCORD_EVENT_TYPES]
    if other:
        raise InvalidEventFilter(
            f"a Discord endpoint posts only {' and '.join(DISCORD_EVENT_TYPES)} events, "
            f"not {', '.join(other)}"
        )


def wants(events: tuple[str, ...], topic: str, *, kind: str = "webhook") -> bool:
    if kind == "discord" and topic not in DISCORD_EVENT_TYPES:
        return False
    return topic in events or (ALL in events and topic in EVENT_TYPES)
