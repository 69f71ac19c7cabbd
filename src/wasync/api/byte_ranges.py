"""The byte range a `Range` header asks for (RFC 9110 §14), for bodies we stream.

Files from the local store go out through Starlette's FileResponse, which answers
ranges itself; media streamed from the database store come here. Browsers need this
to play and seek audio and video (Safari will not play a video without it).

One range is served; a request for several, in another unit, or malformed, is
answered with the whole body (a server may ignore Range, §14.2). A range that starts
past the end is unsatisfiable (416). (Starlette answers files a little differently:
several ranges as multipart, a malformed header with 400.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ONE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # exclusive
    size: int  # of the whole body

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end - 1}/{self.size}"


class Unsatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"no byte of the range is within the {size} bytes")
        self.size = size

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"


def requested(header: str | None, size: int) -> ByteRange | None:
    """The range to send, or None for the whole body; Unsatisfiable for a 416."""
    if header is None:
        return None
    found = _ONE.match(header)
    if found is None:
        return None  # several ranges, another unit, or not a range at all
    first, last = found.group(1), found.group(2)
    if not first:
        if not last:
            return None
        suffix = int(last)  # the last N bytes
        if suffix == 0 or size == 0:
            raise Unsatisfiable(size)
        return ByteRange(max(0, size - suffix), size, size)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise Unsatisfiable(size)
    end = size if not last else min(int(last) + 1, size)
    return ByteRange(start, end, size)
