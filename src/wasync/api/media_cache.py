"""On-demand media: downloaded through the engine on first request, then served from disk.

Nothing is downloaded during sync (WhatsApp media links expire, and most media is
never looked at). Files live under `<data-dir>/media/messages/<session id>/`, named
by a hash of the message's identity, so no path ever comes from user input. A file
appears whole or not at all (written to a temporary name, then renamed), and one
download per message runs at a time however many clients ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from wasync.engines.base import EngineError
from wasync.files import private_dir

MEDIA_SUBDIR = Path("media") / "messages"

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
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / MEDIA_SUBDIR
        self._locks: dict[Path, asyncio.Lock] = {}

    def path_for(self, session_id: int, chat_jid: str, sender_jid: str, message_id: str) -> Path:
        identity = "\0".join((str(session_id), chat_jid, sender_jid, message_id))
        digest = hashlib.sha256(identity.encode()).hexdigest()
        return self.root / str(session_id) / digest[:2] / digest

    async def fetch(
        self,
        path: Path,
        download: Callable[[], Awaitable[bytes]],
        expected_sha256: str | None,
    ) -> Path:
        """The cached file at `path`, downloading it first when absent."""
        if await asyncio.to_thread(path.exists):
            return path
        lock = self._locks.setdefault(path, asyncio.Lock())
        try:
            async with lock:
                if await asyncio.to_thread(path.exists):  # fetched while we waited
                    return path
                data = await download()
                if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256.lower():
                    raise EngineError(
                        "the downloaded media does not match its checksum; not stored"
                    )
                await asyncio.to_thread(_write_atomically, path, data)
                return path
        finally:
            if not lock.locked():
                self._locks.pop(path, None)


def _write_atomically(path: Path, data: bytes) -> None:
    # mkstemp makes the file 0600: other people's media, for the owner alone.
    fd, tmp = tempfile.mkstemp(dir=private_dir(path.parent), prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
