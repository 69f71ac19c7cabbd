"""Bytes the simulated media server serves: message media and profile pictures.

Images, stickers and pictures are real files Pillow can open, so tests can check
what the avatar worker and downloads store. Encoding a JPEG costs ~150 µs, so
message images reuse a few cached base images and become unique per message by a
JPEG comment segment carrying the message's identity; other kinds are a format
header plus deterministic noise.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from functools import lru_cache

from PIL import Image, ImageDraw

from wasync.domain.models import MediaInfo, MessageKind
from wasync.engines.simulator.hashing import mix
from wasync.engines.simulator.words import GROUP_WORDS

MIMETYPES: dict[MessageKind, str] = {
    MessageKind.IMAGE: "image/jpeg",
    MessageKind.VIDEO: "video/mp4",
    MessageKind.AUDIO: "audio/ogg; codecs=opus",
    MessageKind.DOCUMENT: "application/pdf",
    MessageKind.STICKER: "image/webp",
}

# Indexed by a few hash bits: images are the most common media, as on real phones.
MEDIA_KIND_TABLE = (
    (MessageKind.IMAGE,) * 4
    + (MessageKind.AUDIO,) * 2
    + (MessageKind.DOCUMENT,) * 2
    + (MessageKind.VIDEO, MessageKind.STICKER)
)

_IMAGE_SIZES = ((64, 48), (48, 64), (64, 64), (80, 45))
_IMAGE_VARIANTS = 32
_STICKER_VARIANTS = 8
_MP4_HEADER = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def _colour(value: int) -> tuple[int, int, int]:
    return (value & 0xFF, (value >> 8) & 0xFF, (value >> 16) & 0xFF)


def _draw(size: tuple[int, int], value: int) -> Image.Image:
    image = Image.new("RGB", size, _colour(value))
    width, height = size
    inset = min(width, height) // 5
    ImageDraw.Draw(image).ellipse(
        (inset, inset, width - inset, height - inset), fill=_colour(value >> 24)
    )
    return image


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=80)
    return buffer.getvalue()


@lru_cache(maxsize=_IMAGE_VARIANTS)
def _base_jpeg(variant: int) -> bytes:
    return _encode(_draw(_IMAGE_SIZES[variant % len(_IMAGE_SIZES)], mix(variant)), "JPEG")


@lru_cache(maxsize=_STICKER_VARIANTS)
def _sticker(variant: int) -> bytes:
    return _encode(_draw((64, 64), mix(variant + 1000)), "WEBP")


@lru_cache(maxsize=1024)
def picture_jpeg(jid: str, picture_id: str) -> bytes:
    """A profile picture: a real 96x96 JPEG whose colours follow from (jid, id)."""
    value = int.from_bytes(hashlib.blake2b(f"{jid}/{picture_id}".encode(), digest_size=8).digest())
    return _encode(_draw((96, 96), value), "JPEG")


def padded_jpeg_chunks(jpeg: bytes, size: int) -> Iterator[bytes]:
    """A still valid JPEG of about `size` bytes (the picture behind comment segments).

    Yielded in pieces so an oversized picture is never held in memory whole.
    """
    yield jpeg[:2]
    sent = 2
    filler = b"\xff\xfe\xff\xff" + b"\x00" * (0xFFFF - 2)  # one maximal COM segment
    while sent + len(filler) + len(jpeg) - 2 <= size:
        yield filler
        sent += len(filler)
    yield jpeg[2:]


def _with_comment(jpeg: bytes, comment: bytes) -> bytes:
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return jpeg[:2] + segment + jpeg[2:]


def media_payload(kind: MessageKind, h: int, tag: bytes) -> bytes:
    """The plaintext of one message's media; `tag` (chat and id) makes it unique."""
    if kind is MessageKind.IMAGE:
        return _with_comment(_base_jpeg(h % _IMAGE_VARIANTS), tag)
    if kind is MessageKind.STICKER:
        # Stickers are shared between chats on WhatsApp too: identical bytes are real.
        return _sticker(h % _STICKER_VARIANTS)
    noise = hashlib.shake_128(h.to_bytes(8, "little") + tag).digest(256 + (h >> 20) % 3840)
    if kind is MessageKind.AUDIO:
        return b"OggS\x00\x02" + noise
    if kind is MessageKind.VIDEO:
        return _MP4_HEADER + noise
    return b"%PDF-1.4\n% " + tag + b"\n" + noise + b"\n%%EOF\n"


def media_path(chat_jid: str, message_id: str) -> str:
    return f"/media/{chat_jid}/{message_id}"


def media_info(
    kind: MessageKind, h: int, chat_jid: str, message_id: str, base_url: str
) -> MediaInfo:
    data = media_payload(kind, h, f"{chat_jid}/{message_id}".encode())
    media_key = hashlib.shake_128(b"media-key" + h.to_bytes(8, "little")).digest(32)
    width = height = seconds = None
    filename = None
    if kind is MessageKind.IMAGE:
        width, height = _IMAGE_SIZES[(h % _IMAGE_VARIANTS) % len(_IMAGE_SIZES)]
    elif kind is MessageKind.STICKER:
        width = height = 64
    elif kind in (MessageKind.AUDIO, MessageKind.VIDEO):
        seconds = 1 + (h >> 40) % 180
    else:
        filename = f"{GROUP_WORDS[(h >> 40) % len(GROUP_WORDS)]} {(h >> 50) % 100}.pdf"
    return MediaInfo(
        mimetype=MIMETYPES[kind],
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        enc_sha256=hashlib.sha256(media_key + data).hexdigest(),
        media_key=base64.b64encode(media_key).decode(),
        direct_path=f"/v/t62.7118-24/{h % 10**8}_{(h >> 27) % 10**15}_n.enc?ccb=11-4",
        url=base_url + media_path(chat_jid, message_id),
        filename=filename,
        width=width,
        height=height,
        seconds=seconds,
    )
