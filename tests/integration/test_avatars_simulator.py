"""The simulator's picture faults: 429 bursts, changing ids, and bad downloads served for real."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest
from PIL import Image

from wasync.domain.models import Picture, PictureUnchanged
from wasync.engines.base import RateLimited, TransientEngineError
from wasync.engines.simulator import (
    Faults,
    MediaServer,
    Network,
    PictureState,
    RemoteMediaServer,
    SimulatorEngine,
)


def shown_jid(network: Network, n: int = 0) -> str:
    jids = [c.jid for c in network.contacts()]
    for jid in jids:
        network.set_picture_state(jid, PictureState.SET)
    return jids[n]


async def connected(faults: Faults) -> SimulatorEngine:
    engine = SimulatorEngine(Network.from_scale("tiny", 8), faults)
    await engine.connect()
    return engine


async def test_a_burst_gets_429_with_retry_after_and_asking_early_extends_it() -> None:
    engine = await connected(
        Faults(picture_burst=2, picture_burst_window=10.0, picture_retry_after=0.05)
    )
    jid = shown_jid(engine.network)
    try:
        await engine.profile_picture(jid, None)
        await engine.profile_picture(jid, None)
        with pytest.raises(RateLimited) as caught:
            await engine.profile_picture(jid, None)
        assert caught.value.retry_after == 0.05
        with pytest.raises(RateLimited):  # still within the penalty: extended
            await engine.profile_picture(jid, None)
        assert len(engine.picture_refusals) == engine.stats.pictures_rate_limited == 2
        engine.faults.picture_burst = None
        assert isinstance(await engine.profile_picture(jid, None), Picture)
    finally:
        await engine.close()


async def test_picture_ids_change_over_time_and_requests_can_fail() -> None:
    engine = await connected(Faults(picture_change_rate=1.0))
    jid = shown_jid(engine.network)
    try:
        first = engine.network.picture_id(jid)
        answer = await engine.profile_picture(jid, first)
        assert isinstance(answer, Picture) and answer.id != first  # changed meanwhile
        engine.faults.picture_change_rate = 0.0
        assert await engine.profile_picture(jid, answer.id) == PictureUnchanged(answer.id)
        engine.faults.picture_failure_rate = 1.0
        with pytest.raises(TransientEngineError, match="simulated"):
            await engine.profile_picture(jid, None)
    finally:
        await engine.close()


def test_bad_downloads_are_served_for_real() -> None:
    network = Network.from_scale("tiny", 8)
    fake, huge, flaky = (shown_jid(network, n) for n in range(3))
    faults = Faults(
        non_image_pictures=frozenset({fake}),
        oversized_pictures=frozenset({huge}),
        oversized_picture_bytes=3 * 2**20,
    )
    with MediaServer(network, faults=faults) as server, httpx.Client(trust_env=False) as http:
        fake_url = server.picture_url(fake, network.picture_id(fake) or "")
        r = http.get(fake_url)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert not r.content.startswith(b"\xff\xd8")
        with pytest.raises(OSError):
            Image.open(io.BytesIO(r.content))

        r = http.get(server.picture_url(huge, network.picture_id(huge) or ""))
        assert "content-length" not in r.headers and r.headers["transfer-encoding"] == "chunked"
        assert 3 * 2**20 - 2**16 < len(r.content) <= 3 * 2**20
        with Image.open(io.BytesIO(r.content)) as image:  # huge, but a real JPEG
            image.load()
            assert image.size == (96, 96)

        faults.download_failure_rate = 1.0
        assert (
            http.get(server.picture_url(flaky, network.picture_id(flaky) or "")).status_code == 503
        )
        faults.download_failure_rate = 0.0

        # A stale id is a 404, as on WhatsApp's CDN after a change.
        old = network.picture_id(flaky) or ""
        network.change_picture(flaky)
        assert http.get(server.picture_url(flaky, old)).status_code == 404
        picture = (fake, network.picture_id(fake) or "")
        assert server.downloads.started[picture] == server.downloads.completed[picture] == 1


async def test_a_slow_download_left_by_its_client_is_not_counted_as_done() -> None:
    network = Network.from_scale("tiny", 8)
    jid = shown_jid(network)
    picture = (jid, network.picture_id(jid) or "")
    faults = Faults(download_delay=30.0)
    with MediaServer(network, faults=faults) as server:
        async with httpx.AsyncClient(trust_env=False) as http:
            request = asyncio.create_task(http.get(server.picture_url(*picture)))
            while server.downloads.started[picture] == 0:
                await asyncio.sleep(0.01)
            request.cancel()  # the client goes away mid-download
            with pytest.raises(asyncio.CancelledError):
                await request
        while server.downloads.abandoned[picture] == 0:
            await asyncio.sleep(0.01)
        assert server.downloads.completed[picture] == 0


async def test_a_worker_elsewhere_downloads_from_this_server() -> None:
    network = Network.from_scale("tiny", 8)
    jid = shown_jid(network)
    with MediaServer(network) as server:
        engine = SimulatorEngine(network, media_server=RemoteMediaServer(network, server.base_url))
        await engine.connect()
        try:
            answer = await engine.profile_picture(jid, None)
            assert isinstance(answer, Picture) and answer.url.startswith(server.base_url)
        finally:
            await engine.close()
        assert server.running  # closing the engine does not stop a server it does not own
