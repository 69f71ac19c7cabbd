"""A picture download is bounded in time as a whole, not only per read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from wasync.avatars.download import PictureDownloadError, download_picture


class Trickle(httpx.AsyncByteStream):
    """A byte every 50 ms: each read is quick, the whole never ends in time."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(1_000):
            await asyncio.sleep(0.05)
            yield b"x"


async def test_a_trickling_download_fails_at_its_deadline() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=Trickle()))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(PictureDownloadError, match=r"took longer than 0\.3s"):
            await download_picture(client, "https://cdn.test/p.jpg?token=secret", 10**6, 0.3)


async def test_a_prompt_download_is_unaffected_by_the_deadline() -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, stream=httpx.ByteStream(b"jpeg"))
    )
    async with httpx.AsyncClient(transport=transport) as client:
        assert await download_picture(client, "https://cdn.test/p.jpg", 10**6, 5.0) == b"jpeg"
