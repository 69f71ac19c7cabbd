"""Domain records: what wasync knows about contacts, chats, groups and messages.

All timestamps are whole seconds since the Unix epoch (UTC). JIDs are canonical
strings (see `wasync.domain.jid.normalize_jid`): engines normalize before they emit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ChatKind(enum.StrEnum):
    INDIVIDUAL = "individual"
    GROUP = "group"
    BROADCAST = "broadcast"
    NEWSLETTER = "newsletter"


class MessageKind(enum.StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACT = "contact"
    POLL = "poll"
    SYSTEM = "system"
    # A row created by an edit, revoke or reaction that arrived before its message;
    # the original overwrites it when it comes.
    UNKNOWN = "unknown"


MEDIA_KINDS = frozenset(
    {
        MessageKind.IMAGE,
        MessageKind.VIDEO,
        MessageKind.AUDIO,
        MessageKind.DOCUMENT,
        MessageKind.STICKER,
    }
)


@dataclass(frozen=True, slots=True)
class Contact:
    jid: str
    name: str | None = None  # the name saved in the phone's address book
    push_name: str | None = None  # the name the person chose for themselves
    business_name: str | None = None
    phone: str | None = None  # E.164 digits, when known
    lid: str | None = None  # the @lid form of the same person, when known


@dataclass(frozen=True, slots=True)
class Chat:
    jid: str
    kind: ChatKind
    name: str | None = None
    last_message_at: int | None = None
    unread_count: int = 0
    archived: bool = False
    pinned: bool = False
    muted_until: int | None = None


@dataclass(frozen=True, slots=True)
class Participant:
    jid: str
    is_admin: bool = False
    is_super_admin: bool = False
    phone: str | None = None
    lid: str | None = None
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class Group:
    jid: str
    name: str | None = None
    topic: str | None = None
    owner_jid: str | None = None
    created_at: int | None = None
    participants: tuple[Participant, ...] = ()


@dataclass(frozen=True, slots=True)
class PersonMerged:
    """Rows kept under a person's phone JID moved to their LID (store/merge.py)."""

    lid: str
    phone_jid: str
    contact: bool  # a contact row was kept under the number
    chat: bool  # a direct chat was kept under the number
    messages_moved: int


@dataclass(frozen=True, slots=True, order=True)
class MessageKey:
    """WhatsApp's identity of a message within a session.

    A message id is unique per sender, so the key carries the chat and the sender.
    """

    chat_jid: str
    sender_jid: str
    message_id: str


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """Enough to download the media later, on demand (nothing is downloaded in sync)."""

    mimetype: str | None = None
    size: int | None = None
    sha256: str | None = None  # hex of the plaintext's SHA-256
    enc_sha256: str | None = None  # hex of the encrypted blob's SHA-256
    media_key: str | None = None  # base64 of the key that decrypts the blob
    direct_path: str | None = None
    url: str | None = None
    filename: str | None = None
    width: int | None = None
    height: int | None = None
    seconds: int | None = None


@dataclass(frozen=True, slots=True)
class Message:
    key: MessageKey
    timestamp: int
    from_me: bool = False
    kind: MessageKind = MessageKind.TEXT
    text: str | None = None  # body, or the caption of a media message
    media: MediaInfo | None = None
    quoted_id: str | None = None
    push_name: str | None = None


@dataclass(frozen=True, slots=True)
class MessageAnchor:
    """A stored message used as the starting point of a backwards history page."""

    key: MessageKey
    timestamp: int
    from_me: bool = False


@dataclass(frozen=True, slots=True)
class MessageEdit:
    key: MessageKey  # the edited message
    text: str | None
    edited_at: int


@dataclass(frozen=True, slots=True)
class MessageRevoke:
    key: MessageKey  # the message deleted for everyone
    revoked_at: int
    revoked_by: str | None = None


@dataclass(frozen=True, slots=True)
class Reaction:
    target: MessageKey  # the message reacted to
    sender_jid: str  # who reacted
    emoji: str | None  # None (or "") removes the sender's reaction
    timestamp: int


@dataclass(frozen=True, slots=True)
class SyncState:
    chat_jid: str
    newest_message_id: str | None = None
    newest_sender_jid: str | None = None
    newest_timestamp: int | None = None
    oldest_message_id: str | None = None
    oldest_sender_jid: str | None = None
    oldest_timestamp: int | None = None
    fully_synced: bool = False
    last_synced_at: int | None = None
    last_error: str | None = None
    # A possible hole after downtime: None, "pending", "filling" or "failed". Messages
    # after `gap_since_*` may be missing, down from `gap_until_*` (None: the newest).
    gap_status: str | None = None
    gap_since_message_id: str | None = None
    gap_since_sender_jid: str | None = None
    gap_since_timestamp: int | None = None
    gap_until_message_id: str | None = None
    gap_until_sender_jid: str | None = None
    gap_until_timestamp: int | None = None
    gap_detected_at: int | None = None
    gap_epoch: int = 0


# Profile picture answers (engine port `profile_picture`).


@dataclass(frozen=True, slots=True)
class Picture:
    id: str
    url: str


@dataclass(frozen=True, slots=True)
class PictureUnchanged:
    id: str


@dataclass(frozen=True, slots=True)
class PictureNotSet:
    pass


@dataclass(frozen=True, slots=True)
class PictureForbidden:
    pass


PictureResult = Picture | PictureUnchanged | PictureNotSet | PictureForbidden


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """The `sync_chats` progress contract (DESIGN.md section 7)."""

    session_id: str
    n_chats: int
    current_chat: int
    chat_id: str | None = None
    messages_synced: int | None = None

    def as_payload(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "sessionId": self.session_id,
            "nChats": self.n_chats,
            "currentChat": self.current_chat,
        }
        if self.chat_id is not None:
            payload["chatId"] = self.chat_id
        if self.messages_synced is not None:
            payload["messagesSynced"] = self.messages_synced
        return payload


@dataclass(frozen=True, slots=True)
class ChatFailure:
    chat_jid: str
    error: str


@dataclass(slots=True)
class SyncReport:
    chats: int = 0
    contacts: int = 0
    groups: int = 0
    messages: int = 0  # fetched from the engine
    new_messages: int = 0  # of those, the ones the mirror did not hold yet
    failed_chats: list[ChatFailure] = field(default_factory=list)
    seconds: float = 0.0
