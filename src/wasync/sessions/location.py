"""Where a session's WhatsApp keys live: a whatsmeow database per wasync session.

By default each session has its own SQLite file, `<data-dir>/sessions/<name>.db`.
When the mirror itself is in PostgreSQL, new sessions keep their keys there too
(whatsmeow's `whatsmeow_*` tables next to wasync's), so a stateless server needs no
volume. A session file that exists wins, so a session imported from a file keeps
working on a PostgreSQL deployment.

Nothing here loads neonize: "is it paired?" is a plain query of whatsmeow's table.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from wasync.domain.jid import parse_jid
from wasync.errors import InvalidJID
from wasync.store.db import normalize_url
from wasync.store.sessions import validate_session_name

SESSIONS_DIR = "sessions"


@dataclass(frozen=True, slots=True)
class SessionStore:
    """One session's whatsmeow database: a file, or PostgreSQL."""

    name: str
    path: Path | None = None
    database_url: str | None = None  # wasync's own URL of the PostgreSQL store

    @property
    def is_file(self) -> bool:
        return self.path is not None

    @property
    def neonize_name(self) -> str:
        """What neonize's `NewAClient(name=...)` expects: a path or a postgres URL."""
        if self.path is not None:
            return str(self.path)
        assert self.database_url is not None
        return whatsmeow_url(self.database_url)

    def describe(self) -> str:
        if self.path is not None:
            return str(self.path)
        return "PostgreSQL (whatsmeow_* tables of the mirror database)"


@dataclass(frozen=True, slots=True)
class Device:
    """The paired device recorded in a session store."""

    jid: str  # as whatsmeow stores it: user[:device]@server
    user_jid: str  # canonical account JID
    device: int
    lid: str | None = None


def sessions_dir(data_dir: Path) -> Path:
    return data_dir / SESSIONS_DIR


def session_file(data_dir: Path, name: str) -> Path:
    # Absolute: the Go side opens it from its own idea of the working directory.
    return (sessions_dir(data_dir) / f"{validate_session_name(name)}.db").resolve()


def locate(data_dir: Path, database_url: str, name: str) -> SessionStore:
    path = session_file(data_dir, name)
    url = normalize_url(database_url)
    if path.exists() or not url.startswith("postgresql"):
        return SessionStore(name, path=path)
    return SessionStore(name, database_url=url)


def whatsmeow_url(url: str) -> str:
    """wasync's PostgreSQL URL in the form whatsmeow's driver (lib/pq) reads.

    lib/pq wants `postgres://`, knows `search_path` but not libpq's `options`, and
    defaults to sslmode=require where libpq prefers; keep libpq's default.
    """
    parts = urlsplit(normalize_url(url))
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "options" and value.startswith("-csearch_path="):
            query.append(("search_path", value.split("=", 1)[1]))
        elif key != "options":
            query.append((key, value))
    if not any(k == "sslmode" for k, _ in query):
        query.append(("sslmode", "prefer"))
    return urlunsplit(("postgres", parts.netloc, parts.path, urlencode(query), ""))


def paired_device(store: SessionStore, account_jid: str | None = None) -> Device | None:
    """The device paired in `store` (for PostgreSQL: the one of `account_jid`)."""
    if store.path is not None:
        return _file_device(store.path)
    if account_jid is None or store.database_url is None:
        return None
    return _postgres_device(store.database_url, account_jid)


def _device(jid: str, lid: str | None) -> Device | None:
    try:
        parsed = parse_jid(jid)
    except InvalidJID:
        return None
    return Device(jid=jid, user_jid=str(parsed), device=parsed.device, lid=lid or None)


def _file_device(path: Path) -> Device | None:
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT jid, lid FROM whatsmeow_device LIMIT 1").fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return None if row is None else _device(row[0], row[1])


def _postgres_device(database_url: str, account_jid: str) -> Device | None:
    user = parse_jid(account_jid).user
    engine = create_engine(normalize_url(database_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT jid, lid FROM whatsmeow_device WHERE jid LIKE :prefix"),
                {"prefix": f"{user}%"},
            ).all()
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    for jid, lid in rows:
        device = _device(jid, lid)
        if device is not None and device.user_jid == account_jid:
            return device
    return None
