"""Request bodies: the API key is checked before any body is read, and every body is capped.

FastAPI reads and parses a route's body before it runs the route's dependencies, the
key check among them: a 20 MB JSON body sent without a key was parsed into Python
objects (the server's memory grew by 500 MB, its event loop stalled) before the 401.
So this runs first, as plain ASGI around every route (Socket.IO's included):

- a request that carries a body must carry the key (the Socket.IO path excepted: it
  authenticates in its handshake, and its bodies are capped like every other);
- a declared `Content-Length` over the cap is answered 413 from the request head;
- a body without a length (chunked) is counted as it streams and refused once it
  passes the cap, so nothing larger than the cap is ever buffered.

The refused body is never read: the server discards what the client still sends.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wasync.api.deps import UNAUTHORIZED, key_matches, presented_key
from wasync.api.errors import error_response


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes the cap; answered 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit))


def too_large(limit: int) -> str:
    return f"the request body is larger than {limit} bytes (WASYNC_MAX_BODY_BYTES)"


class GuardBodies:
    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        max_bytes: int,
        self_authenticating: tuple[str, ...] = ("/socket.io/",),
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.max_bytes = max_bytes
        self.self_authenticating = self_authenticating

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        has_body = "transfer-encoding" in headers or declared not in (None, "0")
        if not has_body:
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if not path.startswith(self.self_authenticating) and not key_matches(
            self.api_key, presented_key(headers)
        ):
            refusal = error_response(
                401, "unauthorized", UNAUTHORIZED, {"WWW-Authenticate": "Bearer"}
            )
            await refusal(scope, receive, send)
            return
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await error_response(400, "bad_request", "Content-Length is not a number")(
                    scope, receive, send
                )
                return
            if length > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        await self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            # FastAPI's routes answer it themselves (it is an HTTPException); this is
            # for the apps that let it through, such as Socket.IO's polling transport.
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(413, "payload_too_large", too_large(self.max_bytes))(
            scope, receive, send
        )
