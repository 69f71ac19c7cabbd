"""The simulator's media server over real HTTP on loopback."""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from wasync.domain.models import MediaInfo, Message, MessageKind, Picture
from wasync.engines.base import MediaGone, TransientEngineError
from wasync.engines.simulator import MediaServer, Network, PictureState, SimulatorEngine


@pytest.fixture(scope="module")
def network() -> Network:
    return Network.from_scale("small", seed=17)


@pytest.fixture(scope="module")
def server(network: Network) -> Iterator[MediaServer]:
    with MediaServer(network) as server:
        yield server


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as client:
        yield client


def media_messages(network: Network, kind: MessageKind | None = None) -> list[Message]:
    found = [
        m
        for m in itertools.islice(network.iter_all_messages(), 2_000)
        if m.media is not None and (kind is None or m.kind is kind)
    ]
    assert found
    return found


def test_serves_pictures_as_real_jpegs(
    network: Network, server: MediaServer, http: httpx.Client
) -> None:
    jid = network.contacts()[0].jid
    network.set_picture_state(jid, PictureState.SET)
    picture_id = network.picture_id(jid)
    assert picture_id is not None
    response = http.get(server.picture_url(jid, picture_id))
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content == network.picture_bytes(jid, picture_id)
    with Image.open(io.BytesIO(response.content)) as image:
        image.verify()
        assert image.format == "JPEG"

    network.change_picture(jid)
    assert http.get(server.picture_url(jid, picture_id)).status_code == 404  # outdated id


def test_hidden_and_unknown_paths_are_404(
    network: Network, server: MediaServer, http: httpx.Client
) -> None:
    jid = network.contacts()[1].jid
    network.set_picture_state(jid, PictureState.FORBIDDEN)
    assert http.get(server.picture_url(jid, "1600000000")).status_code == 404
    assert http.get(server.base_url + "/nothing/here").status_code == 404
    assert http.get(server.base_url + "/media/1@s.whatsapp.net/3EB0").status_code == 404
    text = next(m for m in network.iter_all_messages() if m.media is None)
    path = f"/media/{text.key.chat_jid}/{text.key.message_id}"
    assert http.get(server.base_url + path).status_code == 404


def test_serves_media_with_its_mimetype(
    network: Network, server: MediaServer, http: httpx.Client
) -> None:
    kinds = set()
    for message in media_messages(network):
        assert message.media is not None and message.media.url is not None
        response = http.get(server.resolve(message.media.url))
        assert response.status_code == 200
        assert response.headers["content-type"] == message.media.mimetype
        assert hashlib.sha256(response.content).hexdigest() == message.media.sha256
        kinds.add(message.kind)
    assert MessageKind.IMAGE in kinds


async def test_download_returns_the_media_bytes(network: Network) -> None:
    engine = SimulatorEngine(network)
    for message in media_messages(network)[:20]:
        assert message.media is not None
        data = await engine.download(message.media)
        assert hashlib.sha256(data).hexdigest() == message.media.sha256
        assert len(data) == message.media.size
    server = engine.media_server
    await engine.close()
    assert not server.running  # the engine stops the server it started


async def test_download_of_missing_media_is_gone(network: Network, server: MediaServer) -> None:
    engine = SimulatorEngine(network, media_server=server)
    missing = MediaInfo(url="https://mmg.simulator.invalid/media/1@s.whatsapp.net/3EB0AA")
    with pytest.raises(MediaGone):
        await engine.download(missing)
    await engine.close()
    assert server.running  # a server the caller started stays up


async def test_server_failure_is_transient(
    network: Network, server: MediaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(chat_jid: str, message_id: str) -> bytes:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(network, "media_bytes", broken)
    engine = SimulatorEngine(network, media_server=server)
    media = media_messages(network)[0].media
    assert media is not None
    with pytest.raises(TransientEngineError):
        await engine.download(media)
    await engine.close()


async def test_picture_urls_from_the_engine_are_fetchable(network: Network) -> None:
    engine = SimulatorEngine(network)
    await engine.connect()
    jid = network.groups()[0].jid
    network.set_picture_state(jid, PictureState.SET)
    picture = await engine.profile_picture(jid, None)
    assert isinstance(picture, Picture)
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(picture.url)
    assert response.content == network.picture_bytes(jid, picture.id)
    await engine.close()


async def test_engines_share_one_server_per_process() -> None:
    """A thousand simulated sessions must not cost a thousand threads: every engine's
    URLs are served by the process's one shared server, each network under its own path."""
    import threading

    engines = [SimulatorEngine(Network.from_scale("tiny", seed)) for seed in range(1, 31)]
    try:
        servers = [engine.media_server for engine in engines]
        first = servers[0].base_url
        assert len({s.base_url for s in servers}) == len(servers)  # a site each
        listening = [t for t in threading.enumerate() if t.name == "wasync-sim-media-shared"]
        assert len(listening) == 1
        async with httpx.AsyncClient(trust_env=False) as client:
            for engine in engines[:3]:
                jid = next(
                    c.jid for c in engine.network.contacts() if engine.network.picture_id(c.jid)
                )
                picture_id = engine.network.picture_id(jid)
                assert picture_id is not None
                url = engine.media_server.picture_url(jid, picture_id)
                got = await client.get(url)
                assert got.status_code == 200
                assert got.content == engine.network.picture_bytes(jid, picture_id)
    finally:
        for engine in engines:
            await engine.close()
    # A closed engine's site is gone.
    async with httpx.AsyncClient(trust_env=False) as client:
        assert (await client.get(first + "/pictures/x/y.jpg")).status_code == 404
