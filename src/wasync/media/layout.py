"""Where each kind of media lives in a store, and what belongs to one session."""

from __future__ import annotations

import hashlib
from typing import Final

from sqlalchemy import Connection

from wasync.media.store import MediaStore

AVATARS: Final = "avatars"  # avatars/<session name>/<jid>.jpg (avatars/storage.py)
MESSAGES: Final = "messages"  # messages/<session id>/<2 hex>/<sha256 of the identity>


def message_media_key(session_id: int, chat_jid: str, sender_jid: str, message_id: str) -> str:
    """A message's media, named by a hash of its identity: no part comes from user input."""
    identity = "\0".join((str(session_id), chat_jid, sender_jid, message_id))
    digest = hashlib.sha256(identity.encode()).hexdigest()
    return f"{MESSAGES}/{session_id}/{digest[:2]}/{digest}"


def session_prefixes(name: str, session_id: int) -> list[str]:
    return [f"{AVATARS}/{name}/", f"{MESSAGES}/{session_id}/"]


def delete_session_media(
    store: MediaStore, name: str, session_id: int, *, conn: Connection | None = None
) -> int:
    """Delete a session's pictures and cached media (in `conn`'s transaction if any)."""
    return sum(store.delete_prefix(p, conn=conn) for p in session_prefixes(name, session_id))
