"""Durable events recorded inside the transaction that caused them.

A feature that changes the mirror outside the batch writer (the avatar worker
storing a new picture, say) calls `outbox.record(conn, session_id, topic, data)`
inside its own write transaction. Listeners (webhook delivery) turn the record into
durable work in that same transaction, so a crash can neither lose the event nor
send it for a change that was rolled back. Live consumers get the event from the
bus, published by the caller after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

OutboxListener = Callable[[Connection, int, str, dict[str, Any]], None]


class Outbox:
    def __init__(self) -> None:
        self.listeners: list[OutboxListener] = []

    def listen(self, listener: OutboxListener) -> None:
        self.listeners.append(listener)

    def record(self, conn: Connection, session_id: int, topic: str, data: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(conn, session_id, topic, data)
