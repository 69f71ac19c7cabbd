"""Build a NeonizeEngine for a named session from wasync's settings and store."""

from __future__ import annotations

from wasync.config import Settings
from wasync.domain.events import SessionStatus
from wasync.engines.base import LoggedOutError
from wasync.engines.neonize.engine import NeonizeEngine, NotPaired
from wasync.engines.neonize.jids import canonical
from wasync.engines.neonize.options import HistoryDepth, NeonizeOptions
from wasync.sessions.location import SessionStore, locate, paired_device
from wasync.store.db import Database
from wasync.store.sessions import SessionNotFound, SessionRow, get_session, validate_session_name

GONE = frozenset({SessionStatus.LOGGED_OUT, SessionStatus.BANNED, SessionStatus.REPLACED})


def session_row(settings: Settings, name: str) -> SessionRow | None:
    db = Database(settings.resolved_database_url())
    try:
        db.migrate()
        with db.read() as conn:
            return get_session(conn, name)
    except SessionNotFound:
        return None
    finally:
        db.close()


def session_store(settings: Settings, name: str) -> SessionStore:
    return locate(settings.data_dir, settings.resolved_database_url(), name)


def neonize_engine_for(
    settings: Settings,
    session: str,
    *,
    allow_pairing: bool = False,
    history: HistoryDepth | None = None,
    connect_timeout: float = 30.0,
    proxy: str | None = None,
) -> NeonizeEngine:
    """The engine of `session`; refuses a session WhatsApp logged out, banned or replaced.

    Such a session is not retried: its stored status says why, and only pairing again
    (which passes `allow_pairing=True`) brings it back.
    """
    validate_session_name(session)
    row = session_row(settings, session)
    if row is not None and not allow_pairing and row.status in GONE:
        raise LoggedOutError(
            f"session {session!r} is {row.status.replace('_', ' ')}"
            f"{': ' + row.status_reason if row.status_reason else ''}; "
            f"pair it again with `wasync pair --session {session}`"
        )
    store = session_store(settings, session)
    account = row.jid if row is not None else None
    device = paired_device(store, account)
    if device is None and store.is_file and not allow_pairing:
        # Known without the network: connecting would only open a pairing handshake
        # (and, offline, report "no network" for what is really "not paired").
        raise NotPaired(
            f"session {session!r} is not paired with a phone: "
            f"run `wasync pair --session {session}` (or import it)"
        )
    options = NeonizeOptions(
        session=session,
        store=store,
        # Pairing links a new device; otherwise a shared PostgreSQL store needs to
        # be told which of its devices is this session's.
        device_jid=None if allow_pairing or store.is_file or device is None else device.jid,
        own_jid=device.user_jid if device is not None else account,
        allow_pairing=allow_pairing,
        history=history or HistoryDepth(),
        connect_timeout=connect_timeout,
        proxy=proxy,
    )
    engine = NeonizeEngine(options)
    if device is not None and device.lid:
        engine.ids.learn(device.user_jid, canonical(device.lid))
    return engine
