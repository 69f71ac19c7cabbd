"""Fetch a picture URL and make sure what came back is a picture worth storing.

The URL comes from WhatsApp (or the simulator); the bytes come from a CDN that may
answer slowly, fail, send an error page with a 200, or send far more than a profile
picture. So: streamed with a byte cap that holds even without a Content-Length,
identity encoding only (a compressed body could inflate past any cap), and Pillow
must decode the whole thing as a JPEG of sane dimensions before anything is written.

WhatsApp's picture URLs carry signed query parameters; messages here name only the
host and path, so tokens never reach logs or the jobs table.
"""

from __future__ import annotations

import asyncio
import io
import warnings
from urllib.parse import urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from wasync.errors import WasyncError


class PictureDownloadError(WasyncError):
    """The picture could not be fetched now; another try may work (a new URL, say)."""


class PictureRejected(WasyncError):
    """What the URL served is not a picture wasync will store; trying again will not help."""


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"


async def download_picture(
    client: httpx.AsyncClient, url: str, max_bytes: int, deadline: float | None = None
) -> bytes:
    """The body of `url`, at most `max_bytes` long; raises PictureDownloadError/Rejected.

    `deadline` bounds the whole download in seconds: the client's timeout is per read,
    so a server trickling a byte at a time would otherwise hold the session's only
    worker for as long as it likes.
    """
    shown = redact_url(url)
    try:
        async with asyncio.timeout(deadline):
            return await _download(client, url, max_bytes, shown)
    except TimeoutError:
        raise PictureDownloadError(
            f"picture download from {shown} took longer than {deadline:g}s"
        ) from None


async def _download(client: httpx.AsyncClient, url: str, max_bytes: int, shown: str) -> bytes:
    try:
        async with client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
            if response.status_code != 200:
                # 403/404/410 mean an expired or replaced URL: a new request gets a new one.
                raise PictureDownloadError(
                    f"picture download from {shown} answered HTTP {response.status_code}"
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise PictureRejected(
                    f"picture at {shown} is {int(declared)} bytes, over the {max_bytes}-byte cap"
                )
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > max_bytes:
                    raise PictureRejected(
                        f"picture at {shown} is larger than the {max_bytes}-byte cap"
                    )
            return bytes(body)
    except httpx.HTTPError as error:
        reason = type(error).__name__
        raise PictureDownloadError(f"picture download from {shown} failed ({reason})") from None


def check_picture(data: bytes, max_pixels: int) -> tuple[int, int]:
    """Raise PictureRejected unless `data` is a complete, sane JPEG; returns its size."""
    if not data:
        raise PictureRejected("the picture download was empty")
    try:
        with warnings.catch_warnings():
            # A decompression bomb is an attack, not a warning to log and carry on.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind = image.format
                width, height = image.size
                image.verify()  # structure and checksums, without decoding pixels
            if kind != "JPEG":
                raise PictureRejected(f"the picture is {kind or 'an unknown format'}, not a JPEG")
            if width * height > max_pixels:
                raise PictureRejected(f"the picture is {width}x{height}, too large to be an avatar")
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # decode everything: a truncated file fails here, not in a browser
    except PictureRejected:
        raise
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        OSError,
        SyntaxError,
        ValueError,
    ) as error:
        raise PictureRejected(f"the download is not a valid image ({error})") from None
    return width, height
