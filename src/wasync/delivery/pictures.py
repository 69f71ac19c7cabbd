"""The bytes of a picture an avatar event names, for sinks that post the image itself.

The avatar worker stores pictures in the media store and names them by the path
wasync serves them at (`/media/avatars/…`, the key after `/media/`); read that
object, from whichever store the runtime uses (a shared one holds what other nodes
stored). A picture that changed again since the event (its sha256 differs) is not
the one announced: better to post the embed without it than the wrong image.
"""

from __future__ import annotations

import hashlib
from typing import Any

from wasync.media.keys import InvalidMediaKey, check_key
from wasync.media.store import MediaStore

MAX_PICTURE = 16 * 2**20
_URL_PREFIX = "/media/"


def picture_key(data: dict[str, Any]) -> str | None:
    """The media key of `data`'s picture, if its path is one wasync serves."""
    raw = data.get("picturePath") or data.get("pictureUrl")
    if not isinstance(raw, str) or not raw.startswith(_URL_PREFIX):
        return None
    try:
        # Never a key a store refuses (`..`, a hidden file), whatever the event says.
        return check_key(raw[len(_URL_PREFIX) :])
    except InvalidMediaKey:
        return None


def load_picture(store: MediaStore, data: dict[str, Any]) -> tuple[bytes | None, str | None]:
    """(bytes, None) or (None, why not)."""
    key = picture_key(data)
    if key is None:
        return None, "the picture is not stored by this wasync"
    found = store.stat(key)
    if found is not None and found.size > MAX_PICTURE:
        return None, "the picture file is too large"
    content = store.get(key) if found is not None else None
    if content is None:
        return None, "the picture file is gone (it changed again since)"
    expected = data.get("sha256")
    if isinstance(expected, str) and expected and hashlib.sha256(content).hexdigest() != expected:
        return None, "the picture changed again since this event"
    return content, None
