"""Registered secrets are replaced in every log record; WebSocket frames are not logged."""

from __future__ import annotations

import logging

import pytest
import websockets.frames

from wasync.logsafety import REDACTED, WithoutWebSocketFrames, never_log

SECRET = "unit-test-secret-" + "k" * 60  # long: the WebSocket library cuts it in frames


def test_secrets_are_replaced_wherever_they_are(caplog: pytest.LogCaptureFixture) -> None:
    never_log(SECRET)
    log = logging.getLogger("some.library")
    with caplog.at_level(logging.DEBUG, logger="some.library"):
        log.debug("header x-api-key: %s", SECRET)
        log.info({"auth": {"apiKey": SECRET}})
        try:
            raise ValueError(f"bad key {SECRET}")
        except ValueError:
            log.exception("failed")
    text = caplog.text
    assert SECRET not in text
    assert text.count(REDACTED) == 3


def test_websocket_frames_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("unit.uvicorn.error")
    logger.addFilter(WithoutWebSocketFrames())
    frame = websockets.frames.Frame(
        websockets.frames.Opcode.TEXT, ('{"apiKey": "' + SECRET + '"}').encode()
    )
    assert SECRET[:20] in str(frame)  # what the library would print
    record = logger.makeRecord(
        logger.name, logging.DEBUG, websockets.frames.__file__, 1, "< %s", (frame,), None
    )
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        logger.handle(record)
        logger.info("kept: our own lines at INFO")
    assert [r.getMessage() for r in caplog.records] == ["kept: our own lines at INFO"]
