"""A real HTTP server on loopback for the network's picture and media URLs.

Avatar workers and downloads then exercise real HTTP (status codes, content types,
connection handling) instead of a mocked transport. The download faults of `Faults`
(slow, failing, non-image and oversized pictures) are served here, for real.

Engines share one server per process (`shared_media_server`): each network is a
*site* under `/n/<site>/`, so a thousand simulated sessions cost one listening thread,
not a thousand. A test that wants a server of its own still makes a `MediaServer`.
"""

from __future__ import annotations

import itertools
import random
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from wasync.engines.simulator.faults import Faults
from wasync.engines.simulator.hashing import derive
from wasync.engines.simulator.media import padded_jpeg_chunks
from wasync.engines.simulator.network import Network

_NOT_AN_IMAGE = b"<html><body><h1>502 Bad Gateway</h1>upstream hiccup</body></html>\n"
_POLL = 0.01  # seconds between checks while a slow download waits


@dataclass(slots=True)
class PictureDownloads:
    """What the server did with picture downloads, per (jid, picture id)."""

    started: Counter[tuple[str, str]] = field(default_factory=Counter)
    completed: Counter[tuple[str, str]] = field(default_factory=Counter)  # every byte sent
    abandoned: Counter[tuple[str, str]] = field(default_factory=Counter)  # the client left
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, which: Counter[tuple[str, str]], key: tuple[str, str]) -> None:
        with self.lock:
            which[key] += 1


@dataclass(slots=True)
class _Site:
    """What one network's URLs are served from: its ground truth and its faults."""

    network: Network
    faults: Faults
    downloads: PictureDownloads
    rng: random.Random
    lock_rng: threading.Lock = field(default_factory=threading.Lock)  # many handler threads

    @classmethod
    def of(cls, network: Network, faults: Faults, downloads: PictureDownloads) -> _Site:
        return cls(
            network, faults, downloads, random.Random(derive(network.seed, "download-faults"))
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], site: _Site | None = None) -> None:
        super().__init__(address, _Handler)
        self.site = site  # a server of one network; None: sites under /n/<site>/
        self.sites: dict[str, _Site] = {}

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-response are normal in tests; keep stderr quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each response waits ~40 ms.
    disable_nagle_algorithm = True
    site: _Site

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        site = self.server.site
        if site is None:  # the shared server: /n/<site>/<path>
            _, _, rest = path.partition("/n/")
            key, _, tail = rest.partition("/")
            found = self.server.sites.get(key)
            if found is None:
                self._send(HTTPStatus.NOT_FOUND, b"no such network\n", "text/plain")
                return
            site, path = found, "/" + tail
        self.site = site
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "pictures" and parts[2].endswith(".jpg"):
            self._serve_picture(parts[1], parts[2].removesuffix(".jpg"))
            return
        found_body = self._resolve(path)
        if found_body is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        else:
            body, content_type = found_body
            self._send(HTTPStatus.OK, body, content_type)

    def _resolve(self, path: str) -> tuple[bytes, str] | None:
        network = self.site.network
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "pictures" and parts[2].endswith(".jpg"):
            jid, picture_id = parts[1], parts[2].removesuffix(".jpg")
            if network.picture_id(jid) != picture_id:
                return None  # unknown, hidden, removed or replaced since
            return network.picture_bytes(jid, picture_id), "image/jpeg"
        if len(parts) == 3 and parts[0] == "media":
            message = network.find_message(parts[1], parts[2])
            if message is None or message.media is None:
                return None
            if parts[2] in self.site.faults.expired_media:
                return None
            body = network.media_bytes(parts[1], parts[2])
            return body, message.media.mimetype or "application/octet-stream"
        return None

    def _serve_picture(self, jid: str, picture_id: str) -> None:
        site = self.site
        network, faults, downloads = site.network, site.faults, site.downloads
        if network.picture_id(jid) != picture_id:
            # Unknown, hidden, removed or replaced since: WhatsApp's CDN says 404 too.
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            return
        key = (jid, picture_id)
        downloads.count(downloads.started, key)
        if not self._wait_out_delay():
            downloads.count(downloads.abandoned, key)
            self.close_connection = True
            return
        with site.lock_rng:
            roll = site.rng.random()
        if roll < faults.download_failure_rate:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"try later\n", "text/plain")
            return
        try:
            if jid in faults.non_image_pictures:
                self._send(HTTPStatus.OK, _NOT_AN_IMAGE, "image/jpeg")
            elif jid in faults.oversized_pictures:
                body = network.picture_bytes(jid, picture_id)
                self._send_chunked(padded_jpeg_chunks(body, faults.oversized_picture_bytes))
            else:
                self._send(HTTPStatus.OK, network.picture_bytes(jid, picture_id), "image/jpeg")
        except OSError:  # the client hung up (a size cap, a killed worker)
            downloads.count(downloads.abandoned, key)
            self.close_connection = True
            return
        downloads.count(downloads.completed, key)

    def _wait_out_delay(self) -> bool:
        """Hold the response while `download_delay` lasts; False if the client left."""
        started = time.monotonic()
        # Read at every tick, so a test can shorten the delay while a download waits.
        while time.monotonic() - started < self.site.faults.download_delay:
            if self._client_gone():
                return False
            time.sleep(_POLL)
        return True

    def _client_gone(self) -> bool:
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            peeked: bytes = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True
        return not peeked  # readable with nothing to read: the peer closed

    def _send_chunked(self, chunks: Iterator[bytes]) -> None:
        # No Content-Length: the client learns the size only by reading, so a cap
        # must hold while streaming.
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class MediaServer:
    """Serves `/pictures/<jid>/<picture_id>.jpg` and `/media/<chat_jid>/<message_id>`."""

    def __init__(
        self,
        network: Network,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        faults: Faults | None = None,
    ) -> None:
        self.network = network
        self.faults = faults if faults is not None else Faults()
        self.downloads = PictureDownloads()
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MediaServer:
        if self._server is None:
            site = _Site.of(self.network, self.faults, self.downloads)
            self._server = _Server(self._address, site)
            # A short poll interval keeps stop() quick (it waits for one poll).
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                args=(0.05,),
                name="wasync-sim-media",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the media server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def picture_url(self, jid: str, picture_id: str) -> str:
        return f"{self.base_url}/pictures/{jid}/{picture_id}.jpg"

    def resolve(self, url: str) -> str:
        """A network media URL made fetchable here: same path, this server's address."""
        parts = urlsplit(url)
        return self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")

    def __enter__(self) -> MediaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class RemoteMediaServer(MediaServer):
    """A media server that runs elsewhere (another process): URLs point at it.

    Lets a worker in a child process fetch from the parent's server, so the parent
    sees every download (including those of a worker it kills).
    """

    def __init__(self, network: Network, base_url: str) -> None:
        super().__init__(network)
        self._base_url = base_url.rstrip("/")

    def start(self) -> MediaServer:
        return self

    def stop(self) -> None:
        pass

    @property
    def running(self) -> bool:
        return True

    @property
    def base_url(self) -> str:
        return self._base_url


class _SharedServer:
    """The one server of a process that engines share, started on first use."""

    def __init__(self) -> None:
        self._server: _Server | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def add(self, site: _Site) -> tuple[str, str]:
        """Serve `site`; its key and its base URL."""
        with self._lock:
            if self._server is None:
                self._server = _Server(("127.0.0.1", 0))
                thread = threading.Thread(
                    target=self._server.serve_forever,
                    args=(0.5,),
                    name="wasync-sim-media-shared",
                    daemon=True,
                )
                thread.start()
            key = f"s{next(self._ids)}"
            self._server.sites[key] = site
            host, port = self._server.server_address[:2]
            return key, f"http://{host!s}:{port}/n/{key}"

    def remove(self, key: str) -> None:
        with self._lock:
            if self._server is not None:
                self._server.sites.pop(key, None)


_SHARED = _SharedServer()


class SharedMediaServer(MediaServer):
    """A network's URLs on the process's shared server (what engines use by default):
    no thread of its own, and the same fault knobs as a dedicated server."""

    def __init__(self, network: Network, *, faults: Faults | None = None) -> None:
        super().__init__(network, faults=faults)
        self._key: str | None = None
        self._base_url = ""

    def start(self) -> MediaServer:
        if self._key is None:
            site = _Site.of(self.network, self.faults, self.downloads)
            self._key, self._base_url = _SHARED.add(site)
        return self

    def stop(self) -> None:
        if self._key is not None:
            _SHARED.remove(self._key)
            self._key = None

    @property
    def running(self) -> bool:
        return self._key is not None

    @property
    def base_url(self) -> str:
        if self._key is None:
            raise RuntimeError("the media server is not started")
        return self._base_url
