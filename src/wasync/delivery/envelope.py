"""The delivered event: `{id, event, session, timestamp, data}` and its id.

Ids of facts that happen once (a message, an edit at a given time, a reaction, a
picture) derive from the fact itself, so if the same fact is ever enqueued twice
(two writers racing on PostgreSQL) it carries the same id and receivers, told to
dedupe by it, see it once. Occurrences that may repeat with identical content (a
status change, a contact renamed back) get a random id: the same content twice is
then two real events. Either way the id is fixed when the delivery is enqueued and
every retry sends the same body.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

from wasync import jsonbytes


def fact_id(session: str, topic: str, *identity: object) -> str:
    material = "\x1f".join([session, topic, *(str(part) for part in identity)])
    return "evt_" + hashlib.sha256(material.encode()).hexdigest()[:32]


def random_id() -> str:
    return "evt_" + uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    topic: str
    session: str
    data: dict[str, Any]
    timestamp: float

    @classmethod
    def of_fact(cls, session: str, topic: str, data: dict[str, Any], *identity: object) -> Event:
        return cls(fact_id(session, topic, *identity), topic, session, data, time.time())

    @classmethod
    def occurrence(cls, session: str, topic: str, data: dict[str, Any]) -> Event:
        return cls(random_id(), topic, session, data, time.time())

    def envelope(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.topic,
            "session": self.session,
            "timestamp": round(self.timestamp, 3),
            "data": self.data,
        }


def body_of(envelope: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    return jsonbytes.dumps(envelope)
