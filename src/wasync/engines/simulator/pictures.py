"""Profile picture state of every JID on the simulated network.

The state of a JID follows from the seed and the JID alone, so any phone number has
a stable answer (the one-shot picture job asks about arbitrary numbers); only
explicit changes are stored.
"""

from __future__ import annotations

import enum
import threading

from wasync.engines.simulator.hashing import derive, mix, stable_hash


class PictureState(enum.StrEnum):
    SET = "set"
    NOT_SET = "not_set"
    FORBIDDEN = "forbidden"  # the person hides their picture from us (WhatsApp's 401)


class PictureBook:
    def __init__(self, seed: int) -> None:
        self._key = derive(seed, "pictures")
        self._changes: dict[str, tuple[PictureState, int]] = {}
        # The media server reads from its own threads while tests change pictures.
        self._lock = threading.Lock()

    def _initial(self, jid: str) -> tuple[PictureState, int]:
        roll = mix(self._key ^ stable_hash(jid)) % 100
        if roll < 70:
            return PictureState.SET, 0
        if roll < 85:
            return PictureState.NOT_SET, 0
        return PictureState.FORBIDDEN, 0

    def _current(self, jid: str) -> tuple[PictureState, int]:
        with self._lock:
            change = self._changes.get(jid)
        return change if change is not None else self._initial(jid)

    def state(self, jid: str) -> PictureState:
        return self._current(jid)[0]

    def _id(self, jid: str, version: int) -> str:
        # Ids grow with each change, like WhatsApp's, so a new id never repeats an old one.
        base = mix(self._key ^ stable_hash(jid) ^ 0xA5A5) % 90_000_000
        return str(1_600_000_000 + base + version * 1_000_003)

    def picture_id(self, jid: str) -> str | None:
        """The id of the picture we may see, or None (not set, or hidden from us)."""
        state, version = self._current(jid)
        return self._id(jid, version) if state is PictureState.SET else None

    def change(self, jid: str) -> str:
        """Set a new picture; a hidden picture stays hidden. Returns the new id."""
        state, version = self._current(jid)
        new_state = PictureState.FORBIDDEN if state is PictureState.FORBIDDEN else PictureState.SET
        with self._lock:
            self._changes[jid] = (new_state, version + 1)
        return self._id(jid, version + 1)

    def remove(self, jid: str) -> None:
        _, version = self._current(jid)
        with self._lock:
            self._changes[jid] = (PictureState.NOT_SET, version + 1)

    def set_state(self, jid: str, state: PictureState) -> None:
        """Force a state (for tests of one answer); keeps the current id's version."""
        _, version = self._current(jid)
        with self._lock:
            self._changes[jid] = (state, version)
