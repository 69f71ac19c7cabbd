"""Stored profile pictures: the object `avatars/<session>/<jid>.jpg` of the media store.

The store is the local directory (`<data-dir>/media/avatars/...`) or blobs in the
database every node reads (media/store.py). A key can only name something else if a
part could carry `/`, `..` or a drive; here both parts are validated by construction:
the session name by `validate_session_name` (letters, digits, `._-`, never `.` or
`..`), the file name is the canonical form of a parsed JID (digits, `@`, a known
server name) plus `.jpg`; and the store checks every key again (media/keys.py).

With the database store a picture's bytes (or their removal) can join the caller's
transaction, so they commit with the avatar's row and its outbox record; the local
store writes atomically on its own (a reader sees the old picture or the new one).
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from sqlalchemy import Connection

from wasync.domain.jid import parse_jid
from wasync.errors import InvalidJID
from wasync.media.store import MediaStat, MediaStore
from wasync.store.sessions import validate_session_name

URL_PREFIX: Final = "/media/avatars"
KEY_PREFIX: Final = "avatars"
SUFFIX: Final = ".jpg"
CONTENT_TYPE: Final = "image/jpeg"
# What a canonical JID can contain; checked again so a future JID form with other
# characters fails loudly here instead of producing a surprising file name.
_SAFE_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z@._-]*")


def file_name_for(jid: str) -> str:
    """The avatar file name of a JID in any spelling; raises InvalidJID."""
    canonical = str(parse_jid(jid))
    if not _SAFE_NAME.fullmatch(canonical) or ".." in canonical:
        raise InvalidJID(f"JID {canonical!r} cannot name an avatar file")
    return canonical + SUFFIX


def jid_of_file_name(name: str) -> str | None:
    """The JID an avatar file name stands for, or None when it is not one we write."""
    if not name.endswith(SUFFIX):
        return None
    stem = name[: -len(SUFFIX)]
    try:
        canonical = str(parse_jid(stem))
    except InvalidJID:
        return None
    # Only the canonical spelling: one file per account, no aliases.
    return canonical if canonical == stem and file_name_for(canonical) == name else None


class AvatarStorage:
    def __init__(self, store: MediaStore) -> None:
        self.store = store

    @property
    def transactional(self) -> bool:
        """Whether `write` and `remove` join the transaction they are given."""
        return self.store.transactional

    def key_for(self, session: str, jid: str) -> str:
        return f"{KEY_PREFIX}/{validate_session_name(session)}/{file_name_for(jid)}"

    def session_prefix(self, session: str) -> str:
        return f"{KEY_PREFIX}/{validate_session_name(session)}/"

    def url_for(self, session: str, jid: str) -> str:
        """The path wasync serves the picture at (what `profile_picture` holds)."""
        return f"{URL_PREFIX}/{validate_session_name(session)}/{file_name_for(jid)}"

    def exists(self, session: str, jid: str) -> bool:
        """Whether the picture is stored (by any node, with a shared store)."""
        return self.store.exists(self.key_for(session, jid))

    def read(self, session: str, jid: str) -> bytes | None:
        return self.store.get(self.key_for(session, jid))

    def write(
        self, session: str, jid: str, data: bytes, *, conn: Connection | None = None
    ) -> MediaStat:
        """Store a picture whole (in `conn`'s transaction when the store has them)."""
        return self.store.put(
            self.key_for(session, jid), data, content_type=CONTENT_TYPE, conn=conn
        )

    def remove(self, session: str, jid: str, *, conn: Connection | None = None) -> bool:
        return self.store.delete(self.key_for(session, jid), conn=conn)

    def remove_session(self, session: str, *, conn: Connection | None = None) -> int:
        return self.store.delete_prefix(self.session_prefix(session), conn=conn)

    def served_key(self, session: str, name: str) -> str | None:
        """The key behind `/media/avatars/<session>/<name>`, or None when it names none."""
        try:
            validate_session_name(session)
        except ValueError:
            return None
        jid = jid_of_file_name(name)
        return None if jid is None else self.key_for(session, jid)

    def stat_served(self, session: str, name: str) -> MediaStat | None:
        """Size and SHA-256 of `/media/avatars/<session>/<name>`, without its bytes."""
        key = self.served_key(session, name)
        return None if key is None else self.store.stat(key)

    def read_served(self, session: str, name: str) -> tuple[bytes, str] | None:
        """Bytes and SHA-256 of `/media/avatars/<session>/<name>`, or None if there is none."""
        key = self.served_key(session, name)
        if key is None:
            return None
        data = self.store.get(key)
        return None if data is None else (data, hashlib.sha256(data).hexdigest())
