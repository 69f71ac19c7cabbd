"""The one check of a media key, shared by every store.

A key names a stored object like a relative path: `avatars/<session>/<jid>.jpg`. The
local store turns it into a file path, so a key that could climb out of the media
folder (`..`, an absolute path, a drive, a backslash) or hide (a leading dot: the
local store's temporary files start with one) is refused by every store alike; the
database store holds exactly the keys the local store could.
"""

from __future__ import annotations

import re
from typing import Final

from wasync.errors import DomainError

MAX_KEY_LENGTH: Final = 512
MAX_KEY_PARTS: Final = 8
_PART = re.compile(r"[0-9A-Za-z@_+=-][0-9A-Za-z@._+=-]*")


class InvalidMediaKey(DomainError):
    """A media key that no store accepts."""


def check_key(key: str) -> str:
    """`key` when it is a valid media key; raises InvalidMediaKey."""
    _check_parts(key, key)
    return key


def check_prefix(prefix: str) -> str:
    """`prefix` when it is a folder of keys (valid parts, ending with `/`)."""
    if not isinstance(prefix, str) or not prefix.endswith("/"):
        raise InvalidMediaKey(f"a media prefix ends with '/': {prefix!r}")
    _check_parts(prefix[:-1], prefix)
    return prefix


def _check_parts(path: str, shown: str) -> None:
    if not isinstance(path, str) or not path or len(shown) > MAX_KEY_LENGTH:
        raise InvalidMediaKey(f"not a media key (1 to {MAX_KEY_LENGTH} characters): {shown!r}")
    parts = path.split("/")
    if len(parts) > MAX_KEY_PARTS:
        raise InvalidMediaKey(f"a media key has at most {MAX_KEY_PARTS} parts: {shown!r}")
    for part in parts:
        # Letters, digits and @._+=- only: no NUL, backslash, colon (drives), space;
        # never empty, never starting with a dot (so never `.` or `..`).
        if not _PART.fullmatch(part):
            raise InvalidMediaKey(f"not a safe media key: {shown!r}")
