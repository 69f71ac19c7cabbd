"""On-demand media: downloaded through the engine on first request, then kept in the
media store (the local directory, or the database every node serves from).

Nothing is downloaded during sync (WhatsApp media links expire, and most media is
never looked at). Objects are `messages/<session id>/...`, named by a hash of the
message's identity (media/layout.py), so no key ever comes from user input. An
object appears whole or not at all, and one download per message runs at a time in
a process however many clients ask; what another node stored is not downloaded again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

from wasync.engines.base import EngineError
from wasync.media.layout import message_media_key
from wasync.media.store import MediaStore

# Shown in the browser; anything else is sent as a download (attachment).
INLINE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "video/mp4",
        "video/3gpp",
        "video/webm",
        "audio/ogg",
        "audio/mpeg",
        "audio/mp4",
        "audio/aac",
        "audio/amr",
        "audio/wav",
        "application/pdf",
    }
)


def is_inline(mimetype: str | None) -> bool:
    base = (mimetype or "").split(";", 1)[0].strip().lower()
    return base in INLINE_TYPES


class MediaCache:
    def __init__(self, store: MediaStore) -> None:
        self.store = store
        self._locks: dict[str, asyncio.Lock] = {}

    def key_for(self, session_id: int, chat_jid: str, sender_jid: str, message_id: str) -> str:
        return message_media_key(session_id, chat_jid, sender_jid, message_id)

    async def fetch(
        self,
        key: str,
        download: Callable[[], Awaitable[bytes]],
        expected_sha256: str | None,
        content_type: str | None = None,
    ) -> None:
        """Make sure object `key` is stored, downloading it first when absent."""
        # `exists`, not `stat`: the local store's stat reads the whole file to hash it
        # (a large video, on its first request in a process), and no one needs the hash.
        if await asyncio.to_thread(self.store.exists, key):
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                if await asyncio.to_thread(self.store.exists, key):  # fetched while we waited
                    return
                data = await download()
                if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256.lower():
                    raise EngineError(
                        "the downloaded media does not match its checksum; not stored"
                    )
                await asyncio.to_thread(self.store.put, key, data, content_type=content_type)
        finally:
            if not lock.locked():
                self._locks.pop(key, None)
