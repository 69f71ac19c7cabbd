"""How a Baileys engine is set up: which keys, which sidecar, how patient."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wasync.engines.baileys.auth import AuthStore
from wasync.sessions.supervision import Backoff


@dataclass(frozen=True, slots=True)
class BaileysOptions:
    session: str
    auth: AuthStore
    own_jid: str | None = None
    allow_pairing: bool = False
    connect_timeout: float = 30.0
    # How long an engine call waits for a lost connection to come back.
    offline_wait: float = 120.0
    # How long the phone has to answer an on-demand history request.
    history_timeout: float = 60.0
    proxy: str | None = None
    full_history: bool = False
    backoff: Backoff = field(default_factory=Backoff)
    sidecar_dir: Path | None = None  # WASYNC_BAILEYS_DIR; None: see install.run_dir
    log_level: str = "warn"
    # Tests only: WhatsApp's WebSocket URL (a closed or silent loopback port) and the
    # sidecar's test hooks (sidecar/hooks.mjs).
    ws_url: str | None = None
    test_hooks: bool = False
