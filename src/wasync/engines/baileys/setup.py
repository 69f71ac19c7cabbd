"""Build a BaileysEngine for a named session from wasync's settings and store."""

from __future__ import annotations

from wasync.config import Settings
from wasync.engines.baileys.auth import AuthStore
from wasync.engines.baileys.engine import BaileysEngine
from wasync.engines.baileys.options import BaileysOptions
from wasync.engines.base import LoggedOutError
from wasync.engines.neonize.setup import GONE, session_row
from wasync.store.sessions import validate_session_name


def auth_store(settings: Settings, session: str) -> AuthStore:
    return AuthStore.locate(settings.data_dir, settings.resolved_database_url(), session)


def baileys_engine_for(
    settings: Settings,
    session: str,
    *,
    allow_pairing: bool = False,
    full_history: bool = False,
    connect_timeout: float = 30.0,
    proxy: str | None = None,
) -> BaileysEngine:
    """The engine of `session`; refuses a session WhatsApp logged out, banned or replaced."""
    validate_session_name(session)
    row = session_row(settings, session)
    if row is not None and not allow_pairing and row.status in GONE:
        raise LoggedOutError(
            f"session {session!r} is {row.status.replace('_', ' ')}"
            f"{': ' + row.status_reason if row.status_reason else ''}; "
            f"pair it again with `wasync pair --engine baileys --session {session}`"
        )
    options = BaileysOptions(
        session=session,
        auth=auth_store(settings, session),
        own_jid=row.jid if row is not None else None,
        allow_pairing=allow_pairing,
        connect_timeout=connect_timeout,
        history_timeout=settings.history_answer_timeout,
        proxy=proxy,
        full_history=full_history,
        sidecar_dir=settings.baileys_dir,
    )
    return BaileysEngine(options)
