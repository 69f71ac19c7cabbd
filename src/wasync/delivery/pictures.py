"""The bytes of a picture an avatar event names, for sinks that post the image itself.

The avatar worker stores pictures under `<data dir>/media/...` and names them by the
path wasync serves them at (`/media/avatars/…`); read that file. A picture that
changed again since the event (its sha256 differs) is not the one announced: better
to post the embed without it than the wrong image.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

MAX_PICTURE = 16 * 2**20


def picture_path(data_dir: Path, data: dict[str, Any]) -> Path | None:
    """The local file of `data`'s picture, if its path is one wasync serves."""
    raw = data.get("picturePath") or data.get("pictureUrl")
    if not isinstance(raw, str) or not raw.startswith("/media/"):
        return None
    root = (data_dir / "media").resolve()
    candidate = (data_dir / raw.lstrip("/")).resolve()
    # Never outside the media directory, whatever the event says.
    if not candidate.is_relative_to(root):
        return None
    return candidate


def load_picture(data_dir: Path, data: dict[str, Any]) -> tuple[bytes | None, str | None]:
    """(bytes, None) or (None, why not)."""
    path = picture_path(data_dir, data)
    if path is None:
        return None, "the picture is not stored by this wasync"
    try:
        with path.open("rb") as fh:
            content = fh.read(MAX_PICTURE + 1)
    except OSError:
        return None, "the picture file is gone (it changed again since)"
    if len(content) > MAX_PICTURE:
        return None, "the picture file is too large"
    expected = data.get("sha256")
    if isinstance(expected, str) and expected and hashlib.sha256(content).hexdigest() != expected:
        return None, "the picture changed again since this event"
    return content, None
