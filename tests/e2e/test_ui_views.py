"""The chat view, the queues dashboard, the sync-state page and the error states of
`wasync demo`, driven in Chromium as a person would use them (one demo for the module;
the unreachable-server test stops a demo of its own).

Screenshots at 1280x800 and 390x844 go to test-artifacts/.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from wasync.jobs import queries as queue
from wasync.jobs.policy import RetryDecision
from wasync.store.db import Database
from wasync.store.sessions import get_session

from ..api.server_process import ServerProcess, spawn
from .conftest import artifact

pytestmark = pytest.mark.slow

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PAGE = 30  # messages the chat view loads at first (chats.js MESSAGE_PAGE)


async def until(page: Any, predicate: str, arg: Any = None, within: float = 60.0) -> Any:
    """Poll `predicate` in the page (the UI's CSP forbids wait_for_function's eval)."""
    async with asyncio.timeout(within):
        while not (value := await page.evaluate(predicate, arg)):
            await asyncio.sleep(0.05)
    return value


def _demo_args(data_dir: Path, *extra: str) -> list[str]:
    return [
        "demo",
        "--data-dir",
        str(data_dir),
        "--latency",
        "0.01",
        "--log-level",
        "warning",
        *extra,
    ]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def demo(demo_dir: Path) -> Iterator[ServerProcess]:
    server = spawn(_demo_args(demo_dir, "--port", "0", "--scale", "small", "--live-rate", "1"))
    try:
        assert server.key, server.output()
        yield server
    finally:
        assert server.stop() == 0, server.output()


@pytest.fixture
async def http(demo: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"X-Api-Key": demo.key or ""}
    async with httpx.AsyncClient(base_url=demo.base_url, headers=headers, timeout=30) as client:
        yield client


async def _signed_in(
    browser_context: Any, demo: ServerProcess, path: str = "/ui/sessions"
) -> tuple[Any, list[str]]:
    """A tab signed in with the demo's link, at `path`, and the script errors it meets."""
    page = await browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{demo.base_url}/ui/login?next={quote(path)}#key={demo.key}")
    # The whole address: the login page's own (…?next=/ui/…) ends with the same path.
    await page.wait_for_url(f"{demo.base_url}{path}")
    return page, errors


async def _until_synced(http: httpx.AsyncClient) -> None:
    async with asyncio.timeout(90):
        while True:
            s = (await http.get("/api/sessions/demo")).json()
            if s["status"] == "connected" and not s["syncing"]:
                chats = (await http.get("/api/sessions/demo/chats?limit=5")).json()["items"]
                if chats:
                    return
            await asyncio.sleep(0.2)


async def _messages(http: httpx.AsyncClient, jid: str, limit: int) -> list[dict[str, Any]]:
    r = await http.get(f"/api/sessions/demo/chats/{jid}/messages?limit={limit}")
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def _count(http: httpx.AsyncClient, jid: str) -> int:
    """How many messages of a chat the mirror holds (every page)."""
    n, cursor = 0, ""
    for _ in range(1000):
        url = f"/api/sessions/demo/chats/{jid}/messages?limit=500" + (
            f"&before={cursor}" if cursor else ""
        )
        page = (await http.get(url)).json()
        n += len(page["items"])
        if not (cursor := page["nextCursor"]):
            return n
    raise AssertionError("paging never ended")


async def _group_with_quote_off_screen(http: httpx.AsyncClient) -> tuple[str, dict, dict]:
    """A group chat whose newest page holds a reply to a stored message that is older
    than that page; returns (jid, reply, quoted)."""
    chats = (await http.get("/api/sessions/demo/chats?kind=group&limit=100")).json()["items"]
    for chat in chats:
        stored = await _messages(http, chat["jid"], 500)
        newest = stored[:PAGE]
        on_screen = {m["messageId"] for m in newest}
        for m in newest:
            q = m["quoted"]
            if q and q["messageId"] not in on_screen:
                return chat["jid"], m, q
    raise AssertionError("no group with a reply to a message off the first page")


def _local_day(ts: int, offset_minutes: int) -> dt.date:
    """The browser's calendar day of a timestamp (getTimezoneOffset is minutes west)."""
    return (dt.datetime.fromtimestamp(ts, dt.UTC) - dt.timedelta(minutes=offset_minutes)).date()


async def _screens(page: Any, name: str, *, full_page: bool = False) -> None:
    """Screenshots at both sizes; the page is left at desktop size."""
    await page.set_viewport_size(DESKTOP)
    await page.screenshot(path=artifact(f"{name}-1280.png"), full_page=full_page)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=artifact(f"{name}-390.png"), full_page=full_page)
    await page.set_viewport_size(DESKTOP)


# The chat view.

LIST_STATE = """() => [...document.querySelectorAll('#message-list > li')].map(li =>
  li.classList.contains('day-sep') ? ['sep', li.textContent] :
  ['msg', li.dataset.id, Number(li.dataset.ts),
   li.querySelector('time.clock').getAttribute('datetime'),
   li.querySelector('time.clock').textContent, li.classList.contains('cont'),
   (li.querySelector('.sender') || {}).textContent || null,
   [...li.querySelectorAll('.pill')].map(p => [p.dataset.emoji, Number(p.dataset.count)]),
   li.querySelector('.face') ? li.querySelector('.face').dataset.avatar : null])"""


async def test_chat_view_times_days_reactions_quotes_and_its_address(
    browser_context: Any, demo: ServerProcess, http: httpx.AsyncClient
) -> None:
    await _until_synced(http)
    jid, reply, quoted = await _group_with_quote_off_screen(http)
    newest = await _messages(http, jid, PAGE)
    page, errors = await _signed_in(browser_context, demo, "/ui/sessions/demo")
    await page.locator(".chat-item").first.wait_for()

    # Opened from its own address.
    await page.goto(f"{demo.base_url}/ui/sessions/demo/chats/{jid}")
    await page.locator("#message-list .msg").nth(PAGE - 1).wait_for()
    offset = await page.evaluate("() => new Date().getTimezoneOffset()")
    rows = await page.evaluate(LIST_STATE)
    msgs = [r for r in rows if r[0] == "msg"]
    by_id = {m["messageId"]: m for m in newest}
    # Every bubble shows its time of day, from the message's own timestamp.
    assert [r[1] for r in msgs] == [m["messageId"] for m in reversed(newest)]
    for r in msgs:
        m = by_id[r[1]]
        assert r[2] == m["timestamp"]
        assert dt.datetime.fromisoformat(r[3].replace("Z", "+00:00")).timestamp() == m["timestamp"]
        local = dt.datetime.fromtimestamp(m["timestamp"], dt.UTC) - dt.timedelta(minutes=offset)
        # 24-hour or 12-hour, as the browser's locale writes it.
        assert r[4] in (local.strftime("%H:%M"), local.strftime("%I:%M %p")), r[4]
    # A separator before the first message of each day, and nowhere else.
    day = None
    for i, r in enumerate(rows):
        if r[0] != "msg":
            continue
        d = _local_day(r[2], offset)
        assert (rows[i - 1][0] == "sep") == (d != day) if i else rows[0][0] == "sep"
        day = d
    days = {_local_day(r[2], offset) for r in msgs}
    assert sum(1 for r in rows if r[0] == "sep") == len(days)
    # Group messages say who wrote them (once per run) with a face; reactions are pills.
    previous = None
    for r in rows:
        if r[0] == "sep":
            previous = None  # a new day starts a new run
            continue
        m = by_id[r[1]]
        if m["fromMe"]:
            assert r[6] is None and r[8] is None
        else:
            assert r[8] in ("initials", "picture")
            assert r[5] == (previous == m["senderJid"])
            assert r[6] == (m["senderName"] or m["pushName"] or m["senderJid"].split("@")[0])
        previous = m["senderJid"]
        counts: dict[str, int] = {}
        for reaction in m["reactions"]:
            counts[reaction["emoji"]] = counts.get(reaction["emoji"], 0) + 1
        assert dict(r[7]) == counts
    assert any(r[7] for r in msgs) or not any(m["reactions"] for m in newest)
    await _screens(page, "ui-views-chat")

    # The reply shows what it quotes; its button reloads the chat around the quoted one.
    bubble = page.locator(f'.msg[data-id="{reply["messageId"]}"] .quote')
    assert quoted["senderName"] in await bubble.inner_text() or quoted["fromMe"]
    await bubble.click()
    target = page.locator(f'.msg.highlight[data-id="{quoted["messageId"]}"]')
    await target.wait_for()
    assert await target.is_visible()
    assert await page.locator("#jump-latest").is_visible()
    assert page.url.endswith(f"/chats/{jid}?message={quote(quoted['messageId'])}")
    await _screens(page, "ui-views-quote-jump")
    # ... and a reload of that address comes back to it.
    await page.reload()
    await target.wait_for()
    await page.click("#jump-latest")
    await page.locator(f'.msg[data-id="{newest[0]["messageId"]}"]').wait_for()
    assert not await page.locator("#jump-latest").is_visible()
    assert page.url.endswith(f"/ui/sessions/demo/chats/{jid}")
    # A reload keeps the chat.
    await page.reload()
    await page.locator(f'.msg[data-id="{newest[0]["messageId"]}"]').wait_for()
    assert await page.locator("#chat-title").inner_text() != ""
    assert errors == []


async def _chat_with_reactions(http: httpx.AsyncClient) -> str:
    """A chat whose newest page has reactions (live traffic adds them to recent messages)."""
    async with asyncio.timeout(90):
        while True:
            chats = (await http.get("/api/sessions/demo/chats?limit=15")).json()["items"]
            for chat in chats:
                if any(m["reactions"] for m in await _messages(http, chat["jid"], PAGE)):
                    return str(chat["jid"])
            await asyncio.sleep(1)


async def test_reactions_are_pills_with_counts(
    browser_context: Any, demo: ServerProcess, http: httpx.AsyncClient
) -> None:
    await _until_synced(http)
    jid = await _chat_with_reactions(http)
    page, errors = await _signed_in(browser_context, demo, "/ui/sessions/demo")
    async with page.expect_response(lambda r: "/messages?limit=" in r.url) as answer:
        await page.goto(f"{demo.base_url}/ui/sessions/demo/chats/{jid}")
    shown = (await (await answer.value).json())["items"]
    reacted = [m for m in shown if m["reactions"]]
    assert reacted
    for m in reacted:
        counts: dict[str, int] = {}
        for reaction in m["reactions"]:
            counts[reaction["emoji"]] = counts.get(reaction["emoji"], 0) + 1
        pills = page.locator(f'.msg[data-id="{m["messageId"]}"] .pill')
        await pills.first.wait_for()
        got = await pills.evaluate_all("ps => ps.map(p => [p.dataset.emoji, p.textContent])")
        assert {e: int(t[len(e) :] or 1) for e, t in got} == counts
    await page.locator(f'.msg[data-id="{reacted[0]["messageId"]}"]').scroll_into_view_if_needed()
    await _screens(page, "ui-views-reactions")
    assert errors == []


async def _stored_with_media(http: httpx.AsyncClient, kinds: set[str]) -> tuple[str, dict]:
    chats = (await http.get("/api/sessions/demo/chats?limit=60")).json()["items"]
    for chat in chats:
        for m in await _messages(http, chat["jid"], 60):
            if m["kind"] in kinds and m["media"]:
                return str(chat["jid"]), m
    raise AssertionError(f"no stored message of kinds {kinds} with media")


async def test_media_previews_players_on_click_and_a_message_address(
    browser_context: Any, demo: ServerProcess, http: httpx.AsyncClient
) -> None:
    await _until_synced(http)
    page, errors = await _signed_in(browser_context, demo, "/ui/sessions/demo")
    for kinds, player in (({"video"}, "video"), ({"audio"}, "audio")):
        jid, m = await _stored_with_media(http, kinds)
        # A message's own address (what search hits link to) opens the chat around it.
        await page.goto(f"{demo.base_url}/ui/sessions/demo/chats/{jid}?message={m['messageId']}")
        li = page.locator(f'.msg.highlight[data-id="{m["messageId"]}"]')
        await li.wait_for()
        assert await li.locator(player).count() == 0  # nothing fetched before the click
        await li.locator("button.media-play").click()
        loaded = li.locator(f'{player}[src^="blob:"]')
        await loaded.wait_for()
    await _screens(page, "ui-views-media")
    # Images are previewed at once.
    jid, m = await _stored_with_media(http, {"image"})
    await page.goto(f"{demo.base_url}/ui/sessions/demo/chats/{jid}?message={m['messageId']}")
    image = page.locator(f'.msg[data-id="{m["messageId"]}"] img.media-image')
    await image.wait_for()
    async with asyncio.timeout(30):
        while not await image.evaluate("img => img.complete && img.naturalWidth > 0"):
            await asyncio.sleep(0.05)
    assert errors == []


async def test_live_messages_on_the_real_clock_and_a_list_that_holds_still(
    browser_context: Any, demo: ServerProcess, http: httpx.AsyncClient
) -> None:
    await _until_synced(http)
    started = time.time()
    page, errors = await _signed_in(browser_context, demo, "/ui/sessions/demo")
    items = page.locator(".chat-item")
    await items.nth(20).wait_for()
    order = (
        "() => [...document.querySelectorAll('.chat-item')].slice(0, 15).map(n => n.dataset.jid)"
    )
    # The pointer rests on the list: new activity is counted, not moved.
    await items.nth(3).hover()
    before = await page.evaluate(order)
    pill = page.locator("#new-chats")
    await pill.wait_for(timeout=60_000)
    await until(
        page,
        """() => /^[2-9]\\d* chats with new messages$/.test(
            document.getElementById('new-chats').textContent)""",
    )
    assert await page.evaluate(order) == before
    assert await page.evaluate("() => document.getElementById('chat-list').scrollTop") == 0
    await page.screenshot(path=artifact("ui-views-list-holding-1280.png"))
    moved = await page.evaluate(
        "() => Number(document.getElementById('new-chats').textContent.split(' ')[0])"
    )
    await pill.click()
    assert not await pill.is_visible()
    after = await page.evaluate(order)
    assert after != before
    # The moved chats are on top, newest activity first, as the API orders them.
    api_order = [
        c["jid"] for c in (await http.get("/api/sessions/demo/chats?limit=15")).json()["items"]
    ]
    assert after[0] in api_order[: moved + 2]

    # The newest chat's last message arrived live: stamped with the real time, today.
    await page.mouse.move(900, 400)
    await items.first.locator("button").click()
    last = page.locator("#message-list .msg").last
    await last.wait_for()
    ts = int(await last.get_attribute("data-ts") or 0)
    assert ts >= int(started) - 1
    seps = page.locator("#message-list .day-sep")
    assert await seps.last.inner_text() == "Today"
    await _screens(page, "ui-views-live")
    assert errors == []


# The queues dashboard.

AVATAR_BARS = '.queue-card[data-kind="avatar"] .finished-chart .bar'


def _dead_letter(data_dir: Path, key: str) -> int:
    """A failed job in the demo's own jobs table, of a kind no worker runs."""
    db = Database(f"sqlite:///{data_dir / 'wasync.db'}")
    try:
        with db.write() as conn:
            sid = get_session(conn, "demo").id
            now = time.time()
            job_id = queue.enqueue(conn, "test.dead", session_id=sid, unique_key=key, now=now)
            assert job_id is not None
            (job,) = queue.claim(conn, ["test.dead"], "e2e", limit=1, now=now)
            queue.fail(
                conn, job.id, "e2e", f"{key}: the receiver said 410", RetryDecision(None), now=now
            )
        return job_id
    finally:
        db.close()


async def test_queues_dashboard_charts_the_job_data_and_handles_dead_letters(
    browser_context: Any, demo: ServerProcess, demo_dir: Path, http: httpx.AsyncClient
) -> None:
    await _until_synced(http)
    data_dir = demo_dir
    assert (data_dir / "wasync.db").exists(), list(data_dir.iterdir())
    keep = _dead_letter(data_dir, "retry-me")
    drop = _dead_letter(data_dir, "discard-me")
    from playwright.async_api import Error as PlaywrightError  # (skipped when missing)

    page, errors = await _signed_in(browser_context, demo, "/ui/queues")
    answers: dict[str, Any] = {}

    async def keep_answer(response: Any) -> None:
        if response.url.endswith("/api/queues") and response.ok:
            with contextlib.suppress(PlaywrightError):  # an answer to the page reloaded away
                body = await response.json()
                answers[str(body["generatedAt"])] = body

    page.on("response", keep_answer)
    await page.reload(wait_until="networkidle")
    # Wait for avatar jobs in the chart (the demo fetches pictures all the time).
    bars = page.locator(AVATAR_BARS)
    await until(
        page,
        "(bars) => [...document.querySelectorAll(bars)].some(b => Number(b.dataset.done) > 0)",
        AVATAR_BARS,
    )
    drawn = await page.evaluate(
        """(bars) => ({generatedAt: document.getElementById('queues').dataset.generatedAt,
          bars: [...document.querySelectorAll(bars)].map(b => [
            Number(b.dataset.minute), Number(b.dataset.done), Number(b.dataset.failed),
            Number(b.querySelector('rect.done').getAttribute('height')),
            Number(b.querySelector('rect.failed').getAttribute('height'))])})""",
        AVATAR_BARS,
    )
    body = answers[drawn["generatedAt"]]
    series = next(q for q in body["queues"] if q["kind"] == "avatar")["series"]
    assert [b[0] for b in drawn["bars"]] == series["minutes"]
    assert [b[1] for b in drawn["bars"]] == series["done"]
    assert [b[2] for b in drawn["bars"]] == series["failed"]
    # Bar heights in proportion to the counts, the tallest one full height.
    peak = max(d + f for d, f in zip(series["done"], series["failed"], strict=True))
    unit = max(b[3] + b[4] for b in drawn["bars"]) / peak
    for _, done, failed, h_done, h_failed in drawn["bars"]:
        assert abs(h_done - done * unit) < 0.01 and abs(h_failed - failed * unit) < 0.01
    assert await bars.count() == 60
    # The pace reads as requests/s against the limit; no raw internal names.
    card = page.locator('.queue-card[data-kind="avatar"]')
    assert "requests/s allowed" in await card.locator(".pace").inner_text()
    text = await card.inner_text()
    for raw in ("configuredRate", "currentRate", "pausedFor", "recordingErrors"):
        assert raw not in text
    await page.locator('#queue-sessions tr[data-session="demo"]').wait_for()
    await page.locator("#queue-nodes tbody tr").first.wait_for()

    # Dead letters: Discard deletes one, Retry queues the other again.
    dead = page.locator('.queue-card[data-kind="test.dead"] .dead-letters')
    await dead.locator(f'li[data-job="{drop}"]').wait_for()
    await _screens(page, "ui-views-queues", full_page=True)
    await dead.locator(f'li[data-job="{drop}"] button.discard').click()
    await dead.locator(f'li[data-job="{drop}"]').wait_for(state="detached")
    await page.locator(
        f'.queue-card[data-kind="test.dead"] .dead-letters li[data-job="{keep}"] button.retry'
    ).click()
    await page.locator('.queue-card[data-kind="test.dead"] .dead-letters').wait_for(
        state="detached"
    )
    stats = page.locator('.queue-card[data-kind="test.dead"] .state-queued .value')
    await until(
        page,
        """() => (document.querySelector('.queue-card[data-kind="test.dead"] .state-queued .value')
            || {}).textContent === '1'""",
    )
    assert await stats.inner_text() == "1"
    db = Database(f"sqlite:///{data_dir / 'wasync.db'}")
    try:
        with db.read() as conn:
            assert queue.get_job(conn, drop) is None
            kept = queue.get_job(conn, keep)
            assert kept is not None and kept.state == "queued"
    finally:
        db.close()
    assert errors == []


# The sync-state page.


async def test_sync_page_fills_a_chat(
    browser_context: Any, demo: ServerProcess, http: httpx.AsyncClient
) -> None:
    await _until_synced(http)
    page, errors = await _signed_in(browser_context, demo, "/ui/sessions/demo/sync")
    rows = page.locator("#sync-rows tr")
    await rows.nth(10).wait_for()
    partial = page.locator('#sync-rows tr:has(.state[data-state="partial"])').first
    jid = await partial.get_attribute("data-jid")
    assert jid
    stored_before = int((await partial.locator(".stored").inner_text()).replace(",", ""))
    await _screens(page, "ui-views-sync")
    await partial.locator("button.fill").click()
    row = page.locator(f'#sync-rows tr[data-jid="{jid}"]')
    await row.locator('.state[data-state="complete"]').wait_for(timeout=90_000)
    state = (await http.get(f"/api/sessions/demo/chats/{jid}/sync-state")).json()
    assert state["fullySynced"] is True
    # The row's count is re-read once the chat is complete: more than before, and no
    # more than the mirror holds now (live messages may have come since).
    shown = await until(
        page,
        """([jid, before]) => {
          const n = Number(document.querySelector(`#sync-rows tr[data-jid='${jid}'] .stored`)
            .textContent.replace(/\\D/g, ''));
          return n > before ? n : 0;
        }""",
        [jid, stored_before],
    )
    assert shown <= await _count(http, jid)
    assert not await row.locator("button.fill").is_visible()
    assert errors == []


# Error states.


async def test_not_found_pages(browser_context: Any, demo: ServerProcess) -> None:
    page, errors = await _signed_in(browser_context, demo)
    response = await page.goto(f"{demo.base_url}/ui/no/such/page")
    assert response.status == 404 and "text/html" in response.headers["content-type"]
    assert await page.locator("#not-found h1").inner_text() == "Not found"
    await _screens(page, "ui-views-not-found")
    # An unknown session: the page says so (its shell cannot know without the key).
    await page.goto(f"{demo.base_url}/ui/sessions/ghost")
    await page.locator("#not-found").wait_for()
    assert "ghost" in await page.locator("#not-found").inner_text()
    await page.goto(f"{demo.base_url}/ui/sessions/ghost/sync")
    await page.locator("#not-found").wait_for()
    # An unknown chat of a known session.
    await page.goto(f"{demo.base_url}/ui/sessions/demo/chats/15550009999@s.whatsapp.net")
    note = page.locator("#history-note")
    await note.wait_for()
    assert "not in the mirror" in await note.inner_text()
    assert errors == []


async def test_a_stopped_session_keeps_its_reason_with_retry_pairing(
    browser_context: Any, demo: ServerProcess, http: httpx.AsyncClient
) -> None:
    assert (await http.post("/api/sessions", json={"name": "again"})).status_code == 201
    async with asyncio.timeout(30):
        while (await http.get("/api/sessions/again")).json()["status"] != "connected":
            await asyncio.sleep(0.1)
    assert (await http.post("/api/sessions/again/logout")).status_code == 200
    page, errors = await _signed_in(browser_context, demo)
    card = page.locator('.session-card[data-session="again"]')
    reason = card.locator(".session-error")
    await reason.wait_for()
    assert await reason.inner_text() == "Logged out: logged out via API"
    await _screens(page, "ui-views-session-reason")
    # It stays (no toast takes it away) until the session pairs again.
    await asyncio.sleep(6)
    assert await reason.is_visible()
    await card.locator("button.retry-pairing").click()
    await card.locator('.session-status[data-status="pairing"]').wait_for()
    await card.locator('.session-status[data-status="connected"]').wait_for(timeout=30_000)
    assert not await reason.is_visible()
    assert not await card.locator("button.retry-pairing").is_visible()
    assert errors == []


async def test_a_sign_in_link_pasted_into_an_open_login_tab_signs_in(
    browser_context: Any, demo: ServerProcess
) -> None:
    page = await browser_context.new_page()
    await page.goto(f"{demo.base_url}/ui/login")
    await page.locator("#api-key").wait_for()
    # Pasted into the address bar: only the fragment changes, no page load.
    await page.goto(f"{demo.base_url}/ui/login#key={demo.key}")
    await page.wait_for_url("**/ui/sessions")
    # Pasted into the key field of another login tab.
    other = await browser_context.new_page()
    await other.goto(f"{demo.base_url}/ui/login")
    await other.fill("#api-key", f"{demo.base_url}/ui/login#key={demo.key}")
    await other.click("button[type=submit]")
    await other.wait_for_url("**/ui/sessions")


async def test_an_unreachable_server_is_said_so_until_it_is_back(
    browser_context: Any, tmp_path: Path
) -> None:
    args = _demo_args(tmp_path, "--scale", "tiny", "--live-rate", "0")
    server = spawn([*args, "--port", "0"])
    port = server.base_url.rsplit(":", 1)[1]
    try:
        page = await browser_context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{server.base_url}/ui/login?next=/ui/sessions/demo#key={server.key}")
        await page.wait_for_url("**/ui/sessions/demo")
        badge = page.locator("#session-status")
        await page.locator('#session-status[data-status="connected"]').wait_for(timeout=60_000)
        assert server.stop() == 0, server.output()
        banner = page.locator("#offline-banner")
        await banner.wait_for(timeout=30_000)
        assert "unreachable" in (await banner.inner_text()).lower()
        assert await badge.inner_text() == "Server unreachable"
        await _screens(page, "ui-views-unreachable")
        # Back on the same address: the banner goes, the badge tells the truth again.
        server = spawn([*args, "--port", port])
        await banner.wait_for(state="hidden", timeout=60_000)
        await page.locator('#session-status[data-status="connected"]').wait_for(timeout=60_000)
        assert await badge.inner_text() == "Connected"
        assert errors == []
    finally:
        server.stop()
