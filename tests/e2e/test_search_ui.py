"""The message search box of the chats page, in Chromium: hits with their words marked,
and a hit opens its chat at the message."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from ..api.server_process import ServerProcess
from .conftest import artifact
from .test_ui import _until_not_syncing, demo, until

__all__ = ["demo"]  # the fixture, shared with test_ui.py

pytestmark = pytest.mark.slow


async def _a_searched_word(demo: ServerProcess) -> str:
    """A word of a stored message, once the search index holds it."""
    headers = {"X-Api-Key": demo.key or ""}
    async with httpx.AsyncClient(base_url=demo.base_url, headers=headers) as http:
        chats = (await http.get("/api/sessions/demo/chats?limit=5")).json()["items"]
        jid = chats[0]["jid"]
        page = (await http.get(f"/api/sessions/demo/chats/{jid}/messages?limit=20")).json()
        words = [
            w.lower()
            for m in page["items"]
            for w in re.findall(r"[^\W_]+", m["text"] or "")
            if len(w) > 3
        ]
        word = words[0]
        async with asyncio.timeout(30):  # the indexer runs about once a second
            while not (await http.get(f"/api/sessions/demo/search?q={word}")).json()["items"]:
                await asyncio.sleep(0.2)
        return word


async def test_search_box_shows_hits_and_opens_one(
    browser_context: Any, demo: ServerProcess
) -> None:
    page = await browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{demo.base_url}/ui/login#key={demo.key}")
    await page.wait_for_url("**/ui/sessions")
    await _until_not_syncing(demo)
    word = await _a_searched_word(demo)

    await page.goto(f"{demo.base_url}/ui/sessions/demo")
    await page.locator(".chat-item").first.wait_for()
    await page.fill("#message-search-input", word.upper())
    hits = page.locator("#search-results .search-hit")
    await hits.first.wait_for()
    await until(page, '!document.getElementById("chat-list").offsetParent')  # list hidden
    count = await hits.count()
    assert count >= 1
    marks = await page.eval_on_selector_all(
        "#search-results .search-hit",
        "items => items.map(i => [...i.querySelectorAll('mark')]"
        ".map(m => m.textContent.toLowerCase()))",
    )
    assert all(word in found for found in marks), marks
    await page.screenshot(path=artifact("ui-search-1280.png"))
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.screenshot(path=artifact("ui-search-390.png"))
    await page.set_viewport_size({"width": 1280, "height": 800})

    first = hits.first.locator("a")
    jid = await first.get_attribute("data-jid")
    message = await first.get_attribute("data-message")
    assert jid and message
    await first.click()
    await page.wait_for_url(re.compile(r"/ui/sessions/demo/chats/[^?]+\?message=.+"))
    assert f"message={message}" in page.url and jid.split("@")[0] in page.url

    # Escape clears the search and brings the chat list back.
    await page.goto(f"{demo.base_url}/ui/sessions/demo")
    await page.locator(".chat-item").first.wait_for()
    await page.fill("#message-search-input", word)
    await hits.first.wait_for()
    await page.press("#message-search-input", "Escape")
    await until(page, '!!document.getElementById("chat-list").offsetParent')
    assert await page.locator("#search-results").is_hidden()
    assert errors == []
