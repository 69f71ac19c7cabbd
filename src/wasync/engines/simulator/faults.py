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
    # Live traffic ends after this many events of the network (None: it never ends), so
    # a test knows the network's final state.
    live_limit: int | None = None
    # connect() fails as it does without a network (the one-shot job's "no network").
    unreachable: bool = False
    # Requests.
    latency: float = 0.0  # seconds every request waits (history, lists, pictures)
    failing_chats: frozenset[str] = field(default_factory=frozenset)
    failing_chat_rate: float = 0.0  # share of chats (chosen by hash) whose history fails
    # History requests go to the phone, whose answer arrives later: after this many
    # seconds (the engine waits for it up to `history_timeout`, then HistoryTimeout).
    history_delay: float = 0.0
    history_timeout: float = 5.0
    history_timeout_rate: float = 0.0  # share of history requests never answered (seeded)
    timeout_chats: frozenset[str] = field(default_factory=frozenset)  # never answered
    # Time-based offline retention: queued events older than this many (virtual)
    # seconds at reconnect are lost, like a server that expires its offline queue.
    offline_retention_seconds: int | None = None
    # Profile picture requests (engine side).
    picture_burst: int | None = None  # requests allowed per picture_burst_window, then 429
    picture_burst_window: float = 1.0  # seconds
    picture_retry_after: float | None = 1.0  # the 429's retry-after (None: no hint given)
    picture_change_rate: float = 0.0  # chance a shown picture was replaced since last asked
    picture_failure_rate: float = 0.0  # share of picture requests failing transiently
    # Picture downloads (the media server serves these faults for real).
    download_delay: float = 0.0  # seconds before a picture's bytes are sent
    download_failure_rate: float = 0.0  # share of picture downloads answered 503
    non_image_pictures: frozenset[str] = field(default_factory=frozenset)  # JIDs: HTML, not JPEG
    oversized_pictures: frozenset[str] = field(default_factory=frozenset)  # JIDs: huge, chunked
    # Bigger than loopback socket buffers, so a client that stops reading is noticed.
    oversized_picture_bytes: int = 32 * 2**20
    # Message media (by message id) the server no longer has: 404, as WhatsApp answers
    # for media past its expiry.
    expired_media: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        self._check_picture_knobs()
        if not 0.0 <= self.duplicate_rate <= 1.0 or not 0.0 <= self.failing_chat_rate <= 1.0:
            raise ValueError("rates must be between 0 and 1")
        if not 0.0 <= self.history_timeout_rate <= 1.0:
            raise ValueError("rates must be between 0 and 1")
        if min(self.history_delay, self.history_timeout) < 0:
            raise ValueError("history_delay and history_timeout must not be negative")
        self.timeout_chats = frozenset(self.timeout_chats)
        if min(self.reorder_window, self.latency, self.live_rate) < 0:
            raise ValueError("reorder_window, latency and live_rate must not be negative")
        self.failing_chats = frozenset(self.failing_chats)

    def _check_picture_knobs(self) -> None:
        rates = (self.picture_change_rate, self.picture_failure_rate, self.download_failure_rate)
        if not all(0.0 <= r <= 1.0 for r in rates):
            raise ValueError("rates must be between 0 and 1")
        if self.picture_burst is not None and self.picture_burst < 1:
            raise ValueError("picture_burst must be at least 1 (or None: off)")
        if min(self.picture_burst_window, self.download_delay, self.picture_retry_after or 0) < 0:
            raise ValueError("picture windows, delays and retry-after must not be negative")
        self.non_image_pictures = frozenset(self.non_image_pictures)
        self.oversized_pictures = frozenset(self.oversized_pictures)

    def history_fails(self, chat_jid: str, seed: int) -> bool:
        if chat_jid in self.failing_chats:
            return True
        if self.failing_chat_rate <= 0.0:
            return False
        return fraction(mix(stable_hash(chat_jid) ^ seed)) < self.failing_chat_rate
