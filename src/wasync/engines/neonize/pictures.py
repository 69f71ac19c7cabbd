"""Profile picture answers and errors, as whatsmeow words them, to the port's types.

whatsmeow reports failures as text (neonize wraps the text in `GetProfilePictureError`
with the return protobuf as its argument), so the mapping is by the stable parts of
those sentences and status codes:

- 401 "the user has hidden their profile picture from you"  -> PictureForbidden
- 404 / 204 "... does not have a profile picture"           -> PictureNotSet
- "info query returned status 429: rate-overlimit"          -> RateLimited
- anything else                                             -> TransientEngineError
"""

from __future__ import annotations

import re
from typing import Any

from wasync.domain.models import (
    Picture,
    PictureForbidden,
    PictureNotSet,
    PictureResult,
    PictureUnchanged,
)
from wasync.engines.base import EngineError, MediaGone, RateLimited, TransientEngineError

# Until WhatsApp says otherwise, a rate-limited session waits this long.
RATE_LIMIT_PAUSE = 60.0

_FORBIDDEN = re.compile(r"hidden their profile picture|status 401|\bnot-authorized\b", re.I)
_NOT_SET = re.compile(r"does not have a profile picture|status 404|status 204|item-not-found", re.I)
_RATE = re.compile(r"rate-overlimit|status 429", re.I)
_GONE = re.compile(r"\b(404|410)\b|status code (404|410)|media .*(expired|gone)", re.I)


def error_text(exc: BaseException) -> str:
    """The whatsmeow sentence inside a neonize exception."""
    if exc.args:
        first = exc.args[0]
        text = getattr(first, "Error", None)
        if isinstance(text, str) and text:
            return text
        return str(first)
    return str(exc) or type(exc).__name__


def picture_result(info: Any, existing_id: str | None) -> PictureResult:
    """The answer of a successful `get_profile_picture` call."""
    if not info.ID:
        # With ExistingID, whatsmeow answers an unchanged picture with an empty info.
        if existing_id:
            return PictureUnchanged(existing_id)
        return PictureNotSet()
    return Picture(id=info.ID, url=info.URL)


def picture_error(exc: BaseException, jid: str) -> PictureResult:
    """PictureForbidden or PictureNotSet for refusals; raises for everything else."""
    text = error_text(exc)
    if _RATE.search(text):
        raise RateLimited(f"WhatsApp rate-limited picture requests ({text})", RATE_LIMIT_PAUSE)
    if _FORBIDDEN.search(text):
        return PictureForbidden()
    if _NOT_SET.search(text):
        return PictureNotSet()
    raise TransientEngineError(f"profile picture of {jid} failed: {text}")


def download_error(exc: BaseException) -> EngineError:
    text = error_text(exc)
    if _GONE.search(text):
        return MediaGone(f"the media expired on WhatsApp's servers ({text})")
    return TransientEngineError(f"media download failed: {text}")
