"""Secrets never reach a log line, whichever library writes it and at whatever level.

wasync itself never logs the API key, but the libraries under it log what passes
through them when their loggers are turned up: the WebSocket library logs every
frame and header at DEBUG (the UI's first message `{"apiKey": ...}`, an
`X-Api-Key` header), Engine.IO every packet at INFO (Socket.IO's auth). So:

- every log record is searched for the registered secrets as it is made (a record
  factory: whatever the logger, handler or level), and they are replaced;
- the WebSocket library's own DEBUG lines, which print frames cut short (a long key
  would show its first characters) and every message's text, are not logged at all.
"""

from __future__ import annotations

import logging
import os
from typing import Any

REDACTED = "[redacted]"
_secrets: set[str] = set()
_installed = False


def never_log(secret: str | None) -> None:
    """Register a secret: from now on no log record of this process contains it."""
    global _installed
    if not secret:
        return
    _secrets.add(secret)
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def _hide(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, REDACTED)
    return text


def _redact(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: the handler will report it
        return
    hidden = _hide(message)
    if hidden != message:
        record.msg, record.args = hidden, None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        if _hide(text) != text:
            record.exc_text = _hide(text)  # handlers print it instead of formatting again
    if record.stack_info:
        record.stack_info = _hide(record.stack_info)


class WithoutWebSocketFrames(logging.Filter):
    """Drops the WebSocket library's DEBUG lines (frames, headers) from a logger."""

    def __init__(self) -> None:
        super().__init__()
        import websockets

        self.package = os.path.dirname(websockets.__file__) + os.sep

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO or not record.pathname.startswith(self.package)


def quiet_websocket_frames(*loggers: str) -> None:
    """Install the filter on the loggers the WebSocket library is given (uvicorn's)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, WithoutWebSocketFrames) for f in logger.filters):
            logger.addFilter(WithoutWebSocketFrames())
