"""A delivery worker killed mid-delivery loses nothing; one stopped politely repeats nothing.

The worker is a real `wasync webhooks deliver` process on the test database; the
receiver answers slowly, so deliveries are in flight when the signal arrives.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from wasync.store.db import Database

from .delivery_processes import deliver, enqueue_avatars
from .delivery_servers import Script, WebhookReceiver, running
from .webhooks_harness import SECRET

pytestmark = pytest.mark.slow

EVENTS = 24
CONCURRENCY = 4
WASYNC = str(Path(sys.executable).parent / "wasync")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with running(WebhookReceiver(SECRET)) as server:
        yield server


def enqueue(db: Database, tmp_path: Path, url: str) -> None:
    asyncio.run(enqueue_avatars(db, tmp_path, url, EVENTS, SECRET))


def worker(db: Database, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return deliver(
        db,
        tmp_path,
        *args,
        env={
            "WASYNC_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "WASYNC_WEBHOOK_CONCURRENCY": str(CONCURRENCY),
        },
    )


def wait_for(cond: object, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def ids_of(receiver: WebhookReceiver) -> list[str]:
    return [r.json()["id"] for r in receiver.on("/slow")]


def all_done(db: Database) -> bool:
    from wasync.jobs import queries as queue

    with db.read() as conn:
        counts = queue.counts(conn, kind="webhook")["webhook"]
    return counts["done"] == EVENTS


def test_sigkill_mid_delivery_loses_nothing(
    db: Database, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    enqueue(db, tmp_path, receiver.script("/slow", Script(delay=0.3)))
    first = worker(db, tmp_path)
    wait_for(lambda: len(receiver.on("/slow")) >= CONCURRENCY + 2)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)  # reaps it and closes its pipes
    seen_before_kill = len(receiver.on("/slow"))
    assert seen_before_kill < EVENTS  # it really died mid-way

    second = worker(db, tmp_path, "--until-idle")
    _, err = second.communicate(timeout=90)
    assert second.returncode == 0, err
    assert all_done(db)
    counts = Counter(ids_of(receiver))
    assert len(counts) == EVENTS  # every event arrived
    repeated = [i for i, n in counts.items() if n > 1]
    # Only deliveries in flight when the worker died (sent, never acknowledged in the
    # database) may arrive twice, each with its one event id.
    assert len(repeated) <= CONCURRENCY
    assert all(n == 2 for n in counts.values() if n > 1)
    assert all(r.signed for r in receiver.on("/slow"))


def test_sigterm_finishes_in_hand_deliveries_and_repeats_none(
    db: Database, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    enqueue(db, tmp_path, receiver.script("/slow", Script(delay=0.3)))
    first = worker(db, tmp_path)
    wait_for(lambda: len(receiver.on("/slow")) >= CONCURRENCY + 2)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert "delivery worker stopped after" in err

    second = worker(db, tmp_path, "--until-idle")
    _, err = second.communicate(timeout=90)
    assert second.returncode == 0, err
    assert all_done(db)
    counts = Counter(ids_of(receiver))
    assert len(counts) == EVENTS and set(counts.values()) == {1}
