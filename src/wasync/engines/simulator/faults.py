"""Fault injection knobs for the simulator engine, all off by default.

The engine reads each knob at the point of use, so a test may turn a fault on or off
in the middle of a run. To add a fault: add a field here (off by default), read it
where the engine does the affected work, and test it in tests/unit/test_simulator_faults.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wasync.engines.simulator.hashing import fraction, mix, stable_hash


@dataclass(slots=True)
class Faults:
    # Live delivery.
    duplicate_rate: float = 0.0  # probability that a delivered event comes twice
    # Shuffle delivery within windows of this many events of one push (0 or 1: off).
    reorder_window: int = 0
    disconnect_after: int | None = None  # drop the connection once, after N delivered events
    # While disconnected, the server keeps only this many of the newest events (None: all);
    # older ones are lost, so the sync layer must fill the gap from history.
    offline_retention: int | None = None
    live_rate: float = 0.0  # live events per second while connected (0: only push_live)
    # Requests.
    latency: float = 0.0  # seconds every request waits (history, lists, pictures)
    failing_chats: frozenset[str] = field(default_factory=frozenset)
    failing_chat_rate: float = 0.0  # share of chats (chosen by hash) whose history fails

    def __post_init__(self) -> None:
        if not 0.0 <= self.duplicate_rate <= 1.0 or not 0.0 <= self.failing_chat_rate <= 1.0:
            raise ValueError("rates must be between 0 and 1")
        if min(self.reorder_window, self.latency, self.live_rate) < 0:
            raise ValueError("reorder_window, latency and live_rate must not be negative")
        self.failing_chats = frozenset(self.failing_chats)

    def history_fails(self, chat_jid: str, seed: int) -> bool:
        if chat_jid in self.failing_chats:
            return True
        if self.failing_chat_rate <= 0.0:
            return False
        return fraction(mix(stable_hash(chat_jid) ^ seed)) < self.failing_chat_rate
