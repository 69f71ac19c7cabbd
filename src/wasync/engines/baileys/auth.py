"""Where a Baileys session's keys live, and reading and writing them.

The sidecar holds the keys in memory and sends every change here before Baileys goes
on (see `sidecar/auth.mjs`). By default a session's keys are a SQLite file of their
own, `<data-dir>/sessions/<name>.baileys.db` (mode 0600 in a 0700 directory, as the
neonize engine's); when the mirror is PostgreSQL, new sessions keep them in its
`baileys_auth` table, so any node of a cluster can take the session over. A session
file that exists wins, as for neonize. Values are the sidecar's JSON, opaque here,
except the account in `creds` ("is it paired, and as whom?").
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from wasync.domain.jid import parse_jid
from wasync.errors import InvalidJID
from wasync.sessions.location import sessions_dir
from wasync.store.db import Database, normalize_url
from wasync.store.schema import baileys_auth
from wasync.store.sessions import validate_session_name
from wasync.store.upsert import upsert

CREDS = "creds"
_a = baileys_auth.c


@dataclass(frozen=True, slots=True)
class Account:
    jid: str  # canonical phone JID
    lid: str | None = None


def auth_file(data_dir: Path, name: str) -> Path:
    return (sessions_dir(data_dir) / f"{validate_session_name(name)}.baileys.db").resolve()


class AuthStore:
    """One session's keys: a SQLite file, or rows of the mirror's PostgreSQL."""

    def __init__(self, name: str, *, path: Path | None = None, database_url: str | None = None):
        self.name = validate_session_name(name)
        self.path = path
        self.database_url = database_url
        self._db: Database | None = None

    @classmethod
    def locate(cls, data_dir: Path, database_url: str, name: str) -> AuthStore:
        path = auth_file(data_dir, name)
        url = normalize_url(database_url)
        if path.exists() or not url.startswith("postgresql"):
            return cls(name, path=path)
        return cls(name, database_url=url)

    @property
    def is_file(self) -> bool:
        return self.path is not None

    def describe(self) -> str:
        if self.path is not None:
            return str(self.path)
        return "PostgreSQL (baileys_auth table of the mirror database)"

    def _database(self) -> Database:
        if self._db is None:
            if self.path is not None:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                if not self.path.exists():
                    # The keys are the account: private from the first byte.
                    os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
                self._db = Database(f"sqlite:///{self.path}")
                baileys_auth.create(self._db.engine, checkfirst=True)
            else:
                assert self.database_url is not None
                self._db = Database(self.database_url)
        return self._db

    def load(self) -> tuple[str | None, list[tuple[str, str, str]]]:
        """The creds (JSON) and every key row (category, id, JSON)."""
        if self.path is not None and not self.path.exists():
            return None, []
        with self._database().read() as conn:
            rows = conn.execute(
                select(_a.category, _a.key_id, _a.value).where(_a.session_name == self.name)
            ).all()
        creds = next((r.value for r in rows if r.category == CREDS), None)
        keys = [(r.category, r.key_id, r.value) for r in rows if r.category != CREDS]
        return creds, keys

    def apply(self, rows: Sequence[Sequence[Any]]) -> None:
        """Write changes in one transaction: (category, id, JSON or None to delete);
        ("*", "*", None) clears every key but the creds."""
        # The last write of each key wins, as in the sidecar's memory.
        latest: dict[tuple[str, str], str | None] = {}
        clear_all = False
        for category, key_id, value in rows:
            if category == "*":
                clear_all = True
                latest = {k: v for k, v in latest.items() if k[0] == CREDS}
            else:
                latest[(str(category), str(key_id))] = None if value is None else str(value)
        with self._database().write() as conn:
            mine = _a.session_name == self.name
            if clear_all:
                conn.execute(delete(baileys_auth).where(mine, _a.category != CREDS))
            for (category, key_id), value in latest.items():
                if value is None:
                    conn.execute(
                        delete(baileys_auth).where(
                            mine, _a.category == category, _a.key_id == key_id
                        )
                    )
            upsert(
                conn,
                baileys_auth,
                [
                    {"session_name": self.name, "category": c, "key_id": k, "value": v}
                    for (c, k), v in latest.items()
                    if v is not None
                ],
                keys=("session_name", "category", "key_id"),
                update=("value",),
            )

    def account(self) -> Account | None:
        """The paired account, read from the creds without Node."""
        creds, _ = self.load_creds_only()
        if creds is None:
            return None
        try:
            me = json.loads(creds).get("me") or {}
            jid = str(parse_jid(str(me.get("id"))))
        except (ValueError, InvalidJID, AttributeError):
            return None
        lid = me.get("lid")
        try:
            lid = str(parse_jid(lid)) if lid else None
        except InvalidJID:
            lid = None
        return Account(jid, lid)

    def load_creds_only(self) -> tuple[str | None, None]:
        if self.path is not None and not self.path.exists():
            return None, None
        with self._database().read() as conn:
            value = conn.execute(
                select(_a.value).where(_a.session_name == self.name, _a.category == CREDS)
            ).scalar_one_or_none()
        return value, None

    def clear(self) -> None:
        """Forget the session's keys (logged out: the phone unlinked this device)."""
        if self.path is not None and not self.path.exists():
            return
        with self._database().write() as conn:
            conn.execute(delete(baileys_auth).where(_a.session_name == self.name))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
