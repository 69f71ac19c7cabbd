"""A real HTTP server on loopback for the network's picture and media URLs.

Avatar workers and downloads then exercise real HTTP (status codes, content types,
connection handling) instead of a mocked transport.
"""

from __future__ import annotations

import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from wasync.engines.simulator.network import Network


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], network: Network) -> None:
        super().__init__(address, _Handler)
        self.network = network

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-response are normal in tests; keep stderr quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each response waits ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        found = self._resolve(unquote(urlsplit(self.path).path))
        if found is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        else:
            body, content_type = found
            self._send(HTTPStatus.OK, body, content_type)

    def _resolve(self, path: str) -> tuple[bytes, str] | None:
        network = self.server.network
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
            body = network.media_bytes(parts[1], parts[2])
            return body, message.media.mimetype or "application/octet-stream"
        return None

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class MediaServer:
    """Serves `/pictures/<jid>/<picture_id>.jpg` and `/media/<chat_jid>/<message_id>`."""

    def __init__(self, network: Network, host: str = "127.0.0.1", port: int = 0) -> None:
        self.network = network
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MediaServer:
        if self._server is None:
            self._server = _Server(self._address, self.network)
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
