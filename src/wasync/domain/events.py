"""What engines emit: facts about the network, in domain types only.

An engine's `events()` yields these. The sync layer turns them into rows; nothing in
here knows about storage or transport.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from wasync.domain.models import (
    Chat,
    Contact,
    Group,
    Message,
    MessageEdit,
    MessageRevoke,
    Reaction,
)


class SessionStatus(enum.StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    PAIRING = "pairing"
    CONNECTED = "connected"
    LOGGED_OUT = "logged_out"
    BANNED = "banned"
    REPLACED = "replaced"


class HistorySyncType(enum.StrEnum):
    INITIAL_BOOTSTRAP = "initial_bootstrap"
    RECENT = "recent"
    FULL = "full"
    PUSH_NAME = "push_name"
    ON_DEMAND = "on_demand"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Connected:
    jid: str | None = None


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class LoggedOut:
    """The session is gone for good (logged out, replaced or banned)."""

    reason: str
    status: SessionStatus = SessionStatus.LOGGED_OUT


@dataclass(frozen=True, slots=True)
class PairingCode:
    """A QR string (or phone pair code) to show the user while pairing."""

    code: str
    kind: str = "qr"  # "qr" or "phone"


@dataclass(frozen=True, slots=True)
class Paired:
    jid: str


@dataclass(frozen=True, slots=True)
class PairingFailed:
    """The phone refused or failed the link; pairing can be tried again."""

    reason: str


@dataclass(frozen=True, slots=True)
class KeepAliveLost:
    """The server stopped answering keep-alives; the engine is trying to recover."""

    error_count: int = 0
    last_success: int | None = None


@dataclass(frozen=True, slots=True)
class KeepAliveRestored:
    pass


@dataclass(frozen=True, slots=True)
class MessageReceived:
    message: Message


@dataclass(frozen=True, slots=True)
class MessageEdited:
    edit: MessageEdit


@dataclass(frozen=True, slots=True)
class MessageRevoked:
    revoke: MessageRevoke


@dataclass(frozen=True, slots=True)
class ReactionReceived:
    reaction: Reaction


@dataclass(frozen=True, slots=True)
class HistoryBatch:
    """A block of history pushed by the phone (whatsmeow's HistorySync)."""

    sync_type: HistorySyncType
    chats: tuple[Chat, ...] = ()
    messages: tuple[Message, ...] = ()
    contacts: tuple[Contact, ...] = ()
    # Percent of the phone's whole transfer done after this block, when it says.
    progress: int | None = None
    # Chats the phone says it has nothing older of: their history is complete.
    complete_chats: tuple[str, ...] = ()
    # (lid, phone JID) pairs the phone sent along (whatsmeow: phoneNumberToLidMappings).
    mappings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class LidMappingsLearned:
    """People's two addresses, (lid, phone JID) pairs, learned outside any record."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class IdentitiesRestated:
    """Not from an engine: a session starting asks the store to state again every pair
    it holds (store/identities.py), so rows a mirror wrote under both forms before it
    knew them to be one person merge."""


@dataclass(frozen=True, slots=True)
class ChatUpserted:
    chat: Chat


@dataclass(frozen=True, slots=True)
class ContactsUpserted:
    contacts: tuple[Contact, ...]


@dataclass(frozen=True, slots=True)
class GroupUpserted:
    group: Group


@dataclass(frozen=True, slots=True)
class PictureChanged:
    jid: str
    removed: bool = False
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class OfflineSyncStarted:
    """The server starts replaying what it queued while we were away."""

    total: int | None = None


@dataclass(frozen=True, slots=True)
class OfflineSyncCompleted:
    count: int | None = None


Event = (
    Connected
    | Disconnected
    | LoggedOut
    | PairingCode
    | Paired
    | PairingFailed
    | KeepAliveLost
    | KeepAliveRestored
    | MessageReceived
    | MessageEdited
    | MessageRevoked
    | ReactionReceived
    | HistoryBatch
    | LidMappingsLearned
    | IdentitiesRestated
    | ChatUpserted
    | ContactsUpserted
    | GroupUpserted
    | PictureChanged
    | OfflineSyncStarted
    | OfflineSyncCompleted
)
