"""What a `waE2E.Message` says: a storable message, an edit, a revoke or a reaction.

Pure functions over protobuf objects; no neonize import is needed to read them.
WhatsApp nests content in wrappers (ephemeral, view-once, document-with-caption,
edited, device-sent); `unwrap` peels them so one reader serves live events and
history alike.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from wasync.domain.models import MediaInfo, MessageKind

# FutureProofMessage wrappers: the real content is `.message` inside.
_WRAPPERS = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "editedMessage",
    "groupMentionedMessage",
    "botInvokeMessage",
    "lottieStickerMessage",
    "spoilerMessage",
    "deviceSentMessage",
)
_MAX_DEPTH = 8

_MEDIA = {
    "imageMessage": MessageKind.IMAGE,
    "videoMessage": MessageKind.VIDEO,
    "ptvMessage": MessageKind.VIDEO,
    "audioMessage": MessageKind.AUDIO,
    "documentMessage": MessageKind.DOCUMENT,
    "stickerMessage": MessageKind.STICKER,
}
_POLLS = (
    "pollCreationMessage",
    "pollCreationMessageV2",
    "pollCreationMessageV3",
    "pollCreationMessageV5",
    "pollCreationMessageV6",
)
# Fields that ride along with content (or alone, as key exchange) and say nothing
# a mirror keeps.
_NOISE = frozenset(
    {
        "messageContextInfo",
        "senderKeyDistributionMessage",
        "fastRatchetKeySenderKeyDistributionMessage",
    }
)
# Present but not mirrored: encrypted votes/reactions need keys we do not hold, and
# pins/keep-in-chat are chat state, not messages.
_SKIPPED = frozenset(
    {
        "pollUpdateMessage",
        "encReactionMessage",
        "encEventResponseMessage",
        "encCommentMessage",
        "keepInChatMessage",
        "pinInChatMessage",
        "call",
        "chat",
    }
)
# Business and interactive messages: the text a person would read, by field.
_SYSTEM_TEXT = {
    "buttonsMessage": "contentText",
    "buttonsResponseMessage": "selectedDisplayText",
    "templateButtonReplyMessage": "selectedDisplayText",
    "listResponseMessage": "title",
    "listMessage": "description",
    "eventMessage": "name",
    "groupInviteMessage": "groupName",
}

PROTOCOL_REVOKE = 0
PROTOCOL_EDIT = 14


@dataclass(frozen=True, slots=True)
class Content:
    kind: MessageKind
    text: str | None = None
    media: MediaInfo | None = None
    quoted_id: str | None = None


@dataclass(frozen=True, slots=True)
class EditOf:
    target: Any  # waCommon.MessageKey, as seen by the editor
    text: str | None
    at_ms: int | None


@dataclass(frozen=True, slots=True)
class RevokeOf:
    target: Any  # waCommon.MessageKey, as seen by the revoker


@dataclass(frozen=True, slots=True)
class ReactionTo:
    target: Any  # waCommon.MessageKey, as seen by the reactor
    emoji: str | None
    at_ms: int | None


Parsed = Content | EditOf | RevokeOf | ReactionTo


def unwrap(message: Any) -> Any:
    """The innermost content message."""
    for _ in range(_MAX_DEPTH):
        for name in _WRAPPERS:
            if message.HasField(name) and message_field(message, name).HasField("message"):
                message = message_field(message, name).message
                break
        else:
            return message
    return message


def message_field(message: Any, name: str) -> Any:
    return getattr(message, name)


def parse(message: Any | None) -> Parsed | None:
    """What `message` means to the mirror; None when it is nothing to keep."""
    if message is None:
        return None
    inner = unwrap(message)
    present = {fd.name: value for fd, value in inner.ListFields()}
    for noise in _NOISE:
        present.pop(noise, None)
    if not present:
        return None
    if "protocolMessage" in present:
        return _protocol(present["protocolMessage"])
    if "reactionMessage" in present:
        r = present["reactionMessage"]
        return ReactionTo(r.key, r.text or None, r.senderTimestampMS or None)
    if "conversation" in present:
        return Content(MessageKind.TEXT, text=present["conversation"])
    if "extendedTextMessage" in present:
        ext = present["extendedTextMessage"]
        return Content(MessageKind.TEXT, text=ext.text or None, quoted_id=_quoted(ext))
    for name, kind in _MEDIA.items():
        if name in present:
            media = present[name]
            return Content(kind, _caption(media), media_info(media), _quoted(media))
    return _other(present)


def text_of(message: Any | None) -> str | None:
    parsed = parse(message)
    return parsed.text if isinstance(parsed, Content) else None


def _protocol(proto: Any) -> Parsed | None:
    if proto.type == PROTOCOL_REVOKE and proto.HasField("key"):
        return RevokeOf(proto.key)
    if proto.type == PROTOCOL_EDIT and proto.HasField("key"):
        edited = proto.editedMessage if proto.HasField("editedMessage") else None
        return EditOf(proto.key, text_of(edited), proto.timestampMS or None)
    # History-sync notices, app-state keys, ephemeral settings: plumbing.
    return None


def _other(present: dict[str, Any]) -> Parsed | None:
    if "locationMessage" in present or "liveLocationMessage" in present:
        loc = present.get("locationMessage") or present["liveLocationMessage"]
        return Content(MessageKind.LOCATION, text=_location_text(loc), quoted_id=_quoted(loc))
    if "contactMessage" in present:
        card = present["contactMessage"]
        return Content(MessageKind.CONTACT, text=card.displayName or None, quoted_id=_quoted(card))
    if "contactsArrayMessage" in present:
        cards = present["contactsArrayMessage"]
        return Content(MessageKind.CONTACT, text=cards.displayName or None)
    for name in _POLLS:
        if name in present:
            return Content(MessageKind.POLL, text=present[name].name or None)
    if all(name in _SKIPPED for name in present):
        return None
    for name, attr in _SYSTEM_TEXT.items():
        if name in present:
            return Content(MessageKind.SYSTEM, text=getattr(present[name], attr) or None)
    return Content(MessageKind.SYSTEM)


def _location_text(loc: Any) -> str | None:
    parts = [getattr(loc, f, "") for f in ("name", "address", "comment", "caption")]
    words = [p for p in parts if p]
    if words:
        return ", ".join(words)
    if loc.degreesLatitude or loc.degreesLongitude:
        return f"{loc.degreesLatitude:.6f},{loc.degreesLongitude:.6f}"
    return None


def _caption(media: Any) -> str | None:
    return getattr(media, "caption", "") or None


def _quoted(sub: Any) -> str | None:
    if not _has(sub, "contextInfo"):
        return None
    return sub.contextInfo.stanzaID or None


def _has(message: Any, field: str) -> bool:
    return field in message.DESCRIPTOR.fields_by_name and bool(message.HasField(field))


def media_info(media: Any) -> MediaInfo:
    def opt(field: str) -> Any:
        if field not in media.DESCRIPTOR.fields_by_name:
            return None
        return getattr(media, field) or None

    sha = opt("fileSHA256")
    enc = opt("fileEncSHA256")
    key = opt("mediaKey")
    return MediaInfo(
        mimetype=opt("mimetype"),
        size=opt("fileLength"),
        sha256=sha.hex() if sha else None,
        enc_sha256=enc.hex() if enc else None,
        media_key=base64.b64encode(key).decode() if key else None,
        direct_path=opt("directPath"),
        url=opt("URL"),
        filename=opt("fileName"),
        width=opt("width"),
        height=opt("height"),
        seconds=opt("seconds"),
    )
