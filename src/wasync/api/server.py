"""Running the HTTP server: runtime, app, uvicorn, and the demo session.

`wasync serve` and `wasync demo` both come here; the demo adds a simulated, already
paired session with live traffic and syncs it at start, so a newcomer sees every
part working without a phone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from wasync.api.api_key import ApiKey, resolve_api_key
from wasync.api.app import asgi_app, create_app
from wasync.api.install import api_services
from wasync.api.session_control import SessionControl
from wasync.assemble import build_runtime
from wasync.config import Settings
from wasync.engines.factory import EngineFactory, SimulatorOptions
from wasync.errors import ConfigError
from wasync.files import secure_data_dir
from wasync.logsafety import never_log, quiet_websocket_frames
from wasync.store.sessions import ensure_session

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    session: str = "demo"
    limit_per_chat: int = 50


@dataclass(frozen=True, slots=True)
class Started:
    """What the server tells the person who started it, once it listens."""

    url: str
    key: ApiKey
    restored: list[str]
    restore_errors: dict[str, str]


class _Server(uvicorn.Server):
    """uvicorn, minus re-raising SIGINT/SIGTERM after a graceful stop, plus a hook that
    runs as soon as the signal arrives (the sessions are handed over meanwhile), and
    closing live clients before it waits for open connections.

    uvicorn re-raises the signal once it has shut down, so the process would end as
    "interrupted" (130) or killed; a server that stopped cleanly on request exits 0.

    Its graceful shutdown waits for every open request, up to its timeout (10 s), and
    a Socket.IO client on the polling transport always has one open: its long poll.
    One such client made a SIGTERM take 11 s (Docker kills at 10). So once the
    listening sockets are closed (no client can come back), `before_shutdown` closes
    the live clients, and the wait that follows finds nothing left to wait for.
    """

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: object) -> None:
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to drain
            self._on_exit()
        super().handle_exit(sig, frame)  # type: ignore[arg-type]

    before_shutdown: Callable[[], Awaitable[None]] | None = None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for listener in self.servers:
            listener.close()  # uvicorn closes them again: harmless
        if self.before_shutdown is not None:
            try:
                await self.before_shutdown()
            except Exception:
                log.exception("closing the live clients failed; shutting down anyway")
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind first, so "address in use" is one clear line, and port 0 picks a free port."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    # Listening at once: the address is printed before uvicorn starts accepting, and a
    # client that connects in between waits in the backlog instead of being refused.
    sock.listen()
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def run_server(
    settings: Settings,
    *,
    simulator: SimulatorOptions | None = None,
    demo: DemoOptions | None = None,
    on_started: Callable[[Started], None] | None = None,
    log_level: str = "warning",
    access_log: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM; sessions are restored at start and stopped in order."""
    secure_data_dir(settings.data_dir)
    key = resolve_api_key(settings, settings.host)
    never_log(key.value)
    sock = listening_socket(settings.host, settings.port)
    runtime = build_runtime(settings, address=url_of(sock))
    control, _hub = api_services(runtime)
    runtime.manager.engines = EngineFactory(
        settings, simulator or SimulatorOptions.from_settings(settings)
    )
    try:
        # Start before serving: a refused database or a node name in use is then one
        # clear line, where uvicorn would print the traceback of a failed startup.
        await runtime.start()
    except BaseException:
        sock.close()
        with contextlib.suppress(Exception):
            await runtime.stop()
        raise

    draining: list[asyncio.Task[None]] = []

    def drain() -> None:
        # SIGTERM: hand the sessions over at once, while uvicorn closes connections.
        if not draining:
            draining.append(asyncio.get_running_loop().create_task(runtime.drain()))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            restored = await control.restore()
            if demo is not None:
                await _start_demo(control, demo)
            # From now on: take sessions others let go, give back more than our share.
            runtime.manager.run_in_background()
            if on_started is not None:
                on_started(Started(url_of(sock), key, restored, dict(control.restore_errors)))
            yield
        finally:
            drain()
            await app.state.socketio.close()
            await asyncio.gather(*draining, return_exceptions=True)
            await runtime.stop()

    app = create_app(runtime, api_key=key.value, lifespan=lifespan)
    config = uvicorn.Config(
        asgi_app(app),
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        # Plain asyncio: the neonize engine hands whatsmeow's events to this loop from
        # a Go thread; httptools (a dependency) parses HTTP.
        loop="asyncio",
        timeout_graceful_shutdown=10,
    )
    # After uvicorn has set its loggers up: the WebSocket library logs through its own.
    quiet_websocket_frames("uvicorn.error")
    server = _Server(config, on_exit=drain)
    server.before_shutdown = app.state.socketio.close
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()


async def _start_demo(control: SessionControl, demo: DemoOptions) -> None:
    runtime = control.runtime
    if demo.session not in runtime.sessions:
        options = runtime.manager.engines.options_for("simulator")

        def register() -> None:
            with runtime.db.write() as conn:
                # With its seed and scale: `wasync history` on the demo's data uses them.
                ensure_session(conn, demo.session, "simulator", options)

        await asyncio.to_thread(register)
        await runtime.manager.assign()
    # Runs in the background: the UI shows its progress bar moving.
    control.start_sync(demo.session, demo.limit_per_chat)
