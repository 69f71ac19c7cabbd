"""Discord's 429s are waited out; a 429 that is not Discord's counts as a failed try."""

from __future__ import annotations

import json
import time

import httpx

from wasync.delivery.discord import post, text_message
from wasync.jobs.outcome import Defer, Retry

URL = "https://discord.test/api/webhooks/1/token"


async def _post_answered(response: httpx.Response) -> object:
    transport = httpx.MockTransport(lambda request: response)
    async with httpx.AsyncClient(transport=transport) as client:
        return await post(client, URL, text_message("hello"))


async def test_discords_own_rate_limit_is_deferred_for_its_retry_after() -> None:
    body = json.dumps({"message": "You are being rate limited.", "retry_after": 2.5})
    outcome = await _post_answered(
        httpx.Response(429, content=body, headers={"Content-Type": "application/json"})
    )
    assert isinstance(outcome, Defer)  # not a failed try
    assert time.time() + 2 < outcome.run_at <= time.time() + 2.5


async def test_a_429_without_discords_body_is_a_failed_try() -> None:
    block_page = httpx.Response(429, content=b"<html>blocked</html>", headers={"Retry-After": "30"})
    outcome = await _post_answered(block_page)
    assert isinstance(outcome, Retry) and not outcome.permanent
    assert outcome.retry_after == 30
