"""Session rows: one per WhatsApp account wasync mirrors."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Connection, select, update

from wasync.domain.events import SessionStatus
from wasync.errors import DomainError
from wasync.store.schema import sessions
from wasync.store.upsert import upsert

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class InvalidSessionName(DomainError):
    pass


class SessionNotFound(DomainError):
    pass


def validate_session_name(name: str) -> str:
    """Session names become file names and URL parts: keep them boring."""
    if not _NAME.match(name) or name in (".", ".."):
        raise InvalidSessionName(
            f"invalid session name {name[:80]!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: int
    name: str
    engine: str
    status: str
    status_reason: str | None
    jid: str | None
    created_at: int
    updated_at: int
    # What the engine is built with (a simulator's seed and scale); None: the defaults.
    engine_options: dict[str, Any] | None = None


def ensure_session(
    conn: Connection, name: str, engine: str, options: dict[str, Any] | None = None
) -> int:
    """The id of session `name`, creating it on first use.

    `options` are stored when the session has none yet (a session made before they
    were kept learns them at its next use); stored options are never replaced.
    """
    validate_session_name(name)
    now = int(time.time())
    stored = json.dumps(options, sort_keys=True) if options else None
    row: dict[str, object] = {"name": name, "engine": engine, "created_at": now, "updated_at": now}
    if stored is not None:  # (only then: a database not yet migrated has no such column)
        row["engine_options"] = stored
    upsert(conn, sessions, [row], keys=("name",))
    if stored is not None:
        conn.execute(
            update(sessions)
            .where(sessions.c.name == name, sessions.c.engine_options.is_(None))
            .values(engine_options=stored)
        )
    found = conn.execute(select(sessions.c.id).where(sessions.c.name == name)).scalar_one()
    return int(found)


# The columns a SessionRow carries (the table has more, for the features that own them).
_ROW_COLUMNS = [sessions.c[f.name] for f in fields(SessionRow)]


def _row(mapping: Any) -> SessionRow:
    values = dict(mapping)
    raw = values.pop("engine_options")
    return SessionRow(**values, engine_options=json.loads(raw) if raw else None)


def find_session(conn: Connection, name: str) -> SessionRow | None:
    row = conn.execute(select(*_ROW_COLUMNS).where(sessions.c.name == name)).one_or_none()
    return None if row is None else _row(row._mapping)


def get_session(conn: Connection, name: str) -> SessionRow:
    found = find_session(conn, name)
    if found is None:
        raise SessionNotFound(f"no session named {name!r}")
    return found


def list_sessions(conn: Connection) -> list[SessionRow]:
    return [_row(r._mapping) for r in conn.execute(select(*_ROW_COLUMNS).order_by(sessions.c.name))]


def set_status(
    conn: Connection,
    session_id: int,
    status: SessionStatus,
    reason: str | None = None,
    jid: str | None = None,
) -> None:
    values: dict[str, object] = {
        "status": status.value,
        "status_reason": reason,
        "updated_at": int(time.time()),
    }
    if jid is not None:
        values["jid"] = jid
    conn.execute(update(sessions).where(sessions.c.id == session_id).values(**values))


def set_jid(conn: Connection, session_id: int, jid: str) -> None:
    """Remember the account's own JID (learnt when pairing or connecting)."""
    conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id)
        .values(jid=jid, updated_at=int(time.time()))
    )
