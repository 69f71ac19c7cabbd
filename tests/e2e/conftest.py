"""Browser tests: Playwright driving Debian's chromium (never a downloaded browser).

Skipped, saying why, when /usr/bin/chromium or Playwright is missing; .ci/run
installs both, so CI runs them. Screenshots go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Nothing leaves the machine: every name but loopback fails inside the browser
    # (it otherwise looks up autofill, sign-in and update servers on its own).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    "--dns-prefetch-disable",
    "--no-pings",
    "--disable-features=AutofillServerCommunication,OptimizationHints,MediaRouter,"
    "DialMediaRouteProvider,Translate",
]


@pytest.fixture
async def browser_context() -> AsyncIterator[Any]:
    if not CHROMIUM.is_file():  # noqa: ASYNC240 - one stat before a browser starts
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (.ci/run installs it)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("browser tests need Playwright: pip install -e '.[test]'")
    profile = tempfile.mkdtemp(prefix="wasync-chromium-")
    try:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,  # Playwright adds --user-data-dir=<profile>: a fresh one
                headless=True,
                viewport={"width": 1280, "height": 800},
            )
            try:
                yield context
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def artifact(name: str) -> str:
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / name)
