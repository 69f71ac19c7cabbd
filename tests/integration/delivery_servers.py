"""Real HTTP servers on 127.0.0.1 for delivery tests: a webhook receiver that checks
signatures, and a server implementing Discord's documented webhook contract."""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wasync.delivery.signing import verify


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival
    status: int = 0
    signed: bool | None = None  # the signature checked out (webhook receiver)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Script:
    """What a path answers: the given statuses in order, then `then` for ever."""

    statuses: list[int] = field(default_factory=list)
    then: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    trickle: float = 0.0  # > 0: the body is sent one byte every `trickle` seconds


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a worker killed mid-request is expected in these tests


class _Base:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender died mid-request (a killed worker): no request was
                    # received, as a real server would see it.
                    self.close_connection = True
                    return
                parts = urlsplit(self.path)
                got = Received(
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
                status, headers, answer, delay = owner.answer(got)
                got.status = status
                with owner.lock:
                    owner.received.append(got)
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                trickle = owner.trickle(got)
                if not trickle:
                    self.wfile.write(answer)
                    return
                try:  # a byte at a time: every read gets data, the answer never ends
                    for byte in answer:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(trickle)
                except OSError:
                    self.close_connection = True  # the sender gave up

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, got: Received) -> tuple[int, dict[str, str], bytes, float]:
        raise NotImplementedError

    def trickle(self, got: Received) -> float:
        return 0.0

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]


class WebhookReceiver(_Base):
    """Answers per path as scripted; checks each request's signature with `secret`."""

    def __init__(self, secret: str | None = None) -> None:
        super().__init__()
        self.secret = secret
        self.scripts: dict[str, Script] = {}
        self._count: dict[str, int] = {}

    def script(self, path: str, script: Script) -> str:
        self.scripts[path] = script
        return self.base_url + path

    def answer(self, got: Received) -> tuple[int, dict[str, str], bytes, float]:
        if self.secret is not None:
            got.signed = verify(self.secret, _Headers(got.headers), got.body)
        script = self.scripts.get(got.path, Script())
        with self.lock:
            n = self._count.get(got.path, 0)
            self._count[got.path] = n + 1
        status = script.statuses[n] if n < len(script.statuses) else script.then
        return status, script.headers, script.body, script.delay

    def trickle(self, got: Received) -> float:
        return self.scripts.get(got.path, Script()).trickle


class _Headers(dict[str, str]):
    """Case-insensitive lookups for `verify`."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class DiscordPost:
    webhook: str
    wait: bool
    payload: dict[str, Any]
    files: dict[str, tuple[str, str, bytes]]  # field → (filename, content type, bytes)
    at: float


class DiscordServer(_Base):
    """Discord's Execute Webhook, as documented: JSON or multipart (payload_json +
    files[n]), `attachments` naming the files, 8 MiB per file, 429 with a JSON
    `retry_after` (seconds) during a rate limit, 200 + message JSON with ?wait=true."""

    FILE_LIMIT = 8 * 2**20

    def __init__(
        self, *, rate_limited: int = 0, retry_after: float = 0.3, refuse_next: int = 0
    ) -> None:
        super().__init__()
        self.rate_limited = rate_limited  # answer this many first requests with 429
        self.refuse_next = refuse_next  # then refuse this many as an invalid form body
        self.retry_after = retry_after
        self.posts: list[DiscordPost] = []
        self.refusals: list[tuple[int, str]] = []
        self.limited_at: list[float] = []

    def url(self, webhook_id: str = "123456789", token: str = "tok-en_XYZ") -> str:
        return f"{self.base_url}/api/webhooks/{webhook_id}/{token}"

    def answer(self, got: Received) -> tuple[int, dict[str, str], bytes, float]:
        parts = got.path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["api", "webhooks"]:
            return self._error(404, 10015, "Unknown Webhook")
        with self.lock:
            if self.rate_limited > 0:
                self.rate_limited -= 1
                self.limited_at.append(got.at)
                body = {
                    "message": "You are being rate limited.",
                    "retry_after": self.retry_after,
                    "global": False,
                }
                return (
                    429,
                    {"Content-Type": "application/json", "Retry-After": "1"},
                    json.dumps(body).encode(),
                    0.0,
                )
        with self.lock:
            refuse, self.refuse_next = self.refuse_next > 0, max(0, self.refuse_next - 1)
        if refuse:
            return self._error(400, 50035, "Invalid Form Body")
        try:
            payload, files = self._parse(got)
        except ValueError as exc:
            return self._error(400, 50109, str(exc))
        for _, (_, _, data) in files.items():
            if len(data) > self.FILE_LIMIT:
                return self._error(413, 40005, "Request entity too large")
        if not (payload.get("content") or payload.get("embeds") or files):
            return self._error(400, 50006, "Cannot send an empty message")
        declared = {a.get("filename") for a in payload.get("attachments", [])}
        if files and declared and declared != {f[0] for f in files.values()}:
            return self._error(400, 50035, "attachments do not match the files")
        wait = got.query.get("wait", ["false"])[0] == "true"
        with self.lock:
            self.posts.append(DiscordPost(parts[2], wait, payload, files, got.at))
        if not wait:
            return 204, {}, b"", 0.0
        message = {"id": str(1000 + len(self.posts)), "channel_id": "1", **payload}
        return 200, {"Content-Type": "application/json"}, json.dumps(message).encode(), 0.0

    def _error(
        self, status: int, code: int, message: str
    ) -> tuple[int, dict[str, str], bytes, float]:
        with self.lock:
            self.refusals.append((status, message))
        body = json.dumps({"code": code, "message": message}).encode()
        return status, {"Content-Type": "application/json"}, body, 0.0

    @staticmethod
    def _parse(got: Received) -> tuple[dict[str, Any], dict[str, tuple[str, str, bytes]]]:
        ctype = got.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            return json.loads(got.body), {}
        if not ctype.startswith("multipart/form-data"):
            raise ValueError(f"unsupported content type {ctype!r}")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + got.body
        )
        payload: dict[str, Any] | None = None
        files: dict[str, tuple[str, str, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True) or b""
            if name == "payload_json":
                payload = json.loads(data)
            elif isinstance(name, str) and name.startswith("files["):
                files[name] = (part.get_filename() or "", part.get_content_type(), data)
            else:
                raise ValueError(f"unexpected form field {name!r}")
        if payload is None:
            raise ValueError("payload_json is missing")
        return payload, files


@contextmanager
def running(server: _Base) -> Iterator[Any]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
