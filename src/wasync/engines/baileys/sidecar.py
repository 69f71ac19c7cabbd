"""The Node.js process behind the Baileys engine, and the JSON-lines protocol to it.

One `Sidecar` is one `node main.mjs` process (see `sidecar/protocol.mjs` for the
wire format). Requests carry ids and are answered in any order; events arrive in the
order Baileys emitted them and are handed to `on_event` in that order; the sidecar's
own requests (writes of the session's keys) go to `on_request`, which must finish
before the next line is read, so keys are stored in the order they were written.
Its stderr is logged line by line (the sidecar never writes keys or message bodies
there). When the process ends, every pending request fails and `on_exit` is called:
supervision (restarting it) belongs to the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from wasync.engines.base import EngineError, TransientEngineError

log = logging.getLogger(__name__)

EventHandler = Callable[[str, dict[str, Any]], None]
RequestHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]
ExitHandler = Callable[["Sidecar", int | None], None]

# A history set or a media download is one line: allow large ones.
LINE_LIMIT = 512 * 2**20
_STOP_WAIT = 5.0
_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}


class SidecarError(EngineError):
    """The sidecar answered a request with an error; `status` is Baileys' code."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SidecarGone(TransientEngineError):
    """The sidecar process ended before it answered."""


class Sidecar:
    def __init__(
        self,
        node: str,
        directory: Path,
        *,
        on_event: EventHandler,
        on_request: RequestHandler,
        on_exit: ExitHandler,
        env: dict[str, str] | None = None,
        label: str = "baileys",
    ) -> None:
        self.node = node
        self.directory = directory
        self.on_event = on_event
        self.on_request = on_request
        self.on_exit = on_exit
        self.env = env or {}
        self.label = label
        self.process: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 1
        self._tasks: list[asyncio.Task[None]] = []
        self._write_lock = asyncio.Lock()
        self.exited: asyncio.Event = asyncio.Event()
        self.returncode: int | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and not self.exited.is_set()

    async def start(self) -> None:
        env = {**os.environ, **self.env}
        try:
            self.process = await asyncio.create_subprocess_exec(
                self.node,
                "main.mjs",
                cwd=self.directory,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                limit=LINE_LIMIT,
            )
        except OSError as exc:
            raise EngineError(f"cannot start the Baileys sidecar ({self.node}): {exc}") from exc
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read_stdout(), name=f"{self.label}-stdout"),
            loop.create_task(self._read_stderr(), name=f"{self.label}-stderr"),
        ]

    async def request(self, op: str, args: dict[str, Any] | None = None, wait: float = 60.0) -> Any:
        if not self.running:
            raise SidecarGone("the Baileys sidecar is not running")
        request_id = self._next_id
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._send({"type": "req", "id": request_id, "op": op, "args": args or {}})
            return await asyncio.wait_for(asyncio.shield(future), wait)
        except TimeoutError:
            raise TransientEngineError(
                f"the Baileys sidecar did not answer {op!r} within {wait:g} s"
            ) from None
        finally:
            self._pending.pop(request_id, None)

    async def _send(self, message: dict[str, Any]) -> None:
        process = self.process
        if process is None or process.stdin is None:
            raise SidecarGone("the Baileys sidecar is not running")
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        async with self._write_lock:
            try:
                process.stdin.write(data)
                await process.stdin.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise SidecarGone(f"the Baileys sidecar is gone ({exc})") from None

    async def _read_stdout(self) -> None:
        process = self.process
        assert process is not None and process.stdout is not None
        try:
            while True:
                line = await process.stdout.readline()
                if not line:
                    break
                try:
                    message = json.loads(line)
                except ValueError:
                    log.warning("%s: a line that is not JSON on stdout; ignored", self.label)
                    continue
                await self._dispatch(message)
        except (ValueError, asyncio.LimitOverrunError) as exc:
            log.error("%s: stdout unreadable (%s); stopping the sidecar", self.label, exc)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        finally:
            self.returncode = await process.wait()
            self._ended()

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "res":
            future = self._pending.get(message.get("id"))  # type: ignore[arg-type]
            if future is None or future.done():
                return
            if message.get("ok"):
                future.set_result(message.get("result"))
            else:
                future.set_exception(
                    SidecarError(str(message.get("error") or "failed"), message.get("status"))
                )
        elif kind == "ev":
            try:
                self.on_event(str(message.get("name")), message.get("data") or {})
            except Exception:
                log.exception("%s: handling event %s failed", self.label, message.get("name"))
        elif kind == "req":
            reply: dict[str, Any] = {"type": "res", "id": message.get("id")}
            try:
                result = await self.on_request(str(message.get("op")), message.get("args") or {})
                reply.update(ok=True, result=result)
            except Exception as exc:
                log.exception("%s: %s from the sidecar failed", self.label, message.get("op"))
                reply.update(ok=False, error=str(exc))
            with contextlib.suppress(SidecarGone):
                await self._send(reply)

    async def _read_stderr(self) -> None:
        process = self.process
        assert process is not None and process.stderr is not None
        while True:
            line = await process.stderr.readline()
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            level, msg = logging.WARNING, text
            try:
                record = json.loads(text)
                level = _LEVELS.get(str(record.get("level")), logging.INFO)
                msg = str(record.get("msg"))
            except (ValueError, AttributeError):
                pass
            log.log(level, "%s: %s", self.label, msg)

    def _ended(self) -> None:
        if self.exited.is_set():
            return
        self.exited.set()
        gone = SidecarGone(f"the Baileys sidecar exited (code {self.returncode})")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(gone)
        self._pending.clear()
        try:
            self.on_exit(self, self.returncode)
        except Exception:
            log.exception("%s: exit handler failed", self.label)

    async def stop(self) -> None:
        """Close its stdin (it stops its socket and exits), then make sure it is gone."""
        process = self.process
        if process is None:
            return
        if process.returncode is None and process.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                process.stdin.close()
        try:
            await asyncio.wait_for(self.exited.wait(), _STOP_WAIT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exited.wait(), _STOP_WAIT)
        for task in self._tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
