"""What a media store offers (`MediaStore`), and how a runtime picks one.

Keys are checked by media/keys.py in every method but `local_path`. `put` and the
deletes take the caller's write transaction where the store has one (the database
store): the bytes then commit, or roll back, with the caller's rows. The local store
ignores it (files are not transactional) and writes atomically on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Protocol

from sqlalchemy import Connection

from wasync.errors import ConfigError, WasyncError
from wasync.store.db import Database

# Larger objects are refused: no picture or WhatsApp media comes near (WhatsApp caps
# documents at 2 GiB, but a database row of that size is no way to keep one).
MAX_OBJECT_BYTES: Final = 512 * 2**20
CHUNK_BYTES: Final = 1 * 2**20

StoreKind = Literal["auto", "local", "database"]


class MediaTooLarge(WasyncError):
    """An object larger than the store accepts (the API answers 507)."""


@dataclass(frozen=True, slots=True)
class MediaStat:
    key: str
    size: int
    sha256: str  # hex, of the bytes
    content_type: str | None = None


class MediaStore(Protocol):
    kind: str
    # True when put/delete join the caller's transaction (their bytes commit with it).
    transactional: bool

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        conn: Connection | None = None,
    ) -> MediaStat: ...

    def get(self, key: str) -> bytes | None: ...

    def stat(self, key: str) -> MediaStat | None: ...

    def exists(self, key: str) -> bool: ...

    def stream(
        self, key: str, chunk_size: int = CHUNK_BYTES, *, start: int = 0, end: int | None = None
    ) -> Iterator[bytes] | None:
        """The object's bytes [start, end) (end None: to the last) chunk by chunk, or
        None when there is none."""
        ...

    def keys(self, prefix: str) -> list[str]: ...

    def delete(self, key: str, *, conn: Connection | None = None) -> bool: ...

    def delete_prefix(self, prefix: str, *, conn: Connection | None = None) -> int: ...

    def local_path(self, key: str) -> Path | None:
        """A file holding the object's bytes, when the store keeps one (never raises)."""
        ...


def check_size(key: str, size: int) -> None:
    if size > MAX_OBJECT_BYTES:
        raise MediaTooLarge(
            f"{key}: {size} bytes is more than the {MAX_OBJECT_BYTES // 2**20} MiB a "
            "media object may have"
        )


def resolve_kind(kind: str, db: Database) -> Literal["local", "database"]:
    """`auto` follows the database: PostgreSQL (shared by nodes) → database, else local."""
    if kind == "auto":
        return "local" if db.is_sqlite else "database"
    if kind in ("local", "database"):
        return kind  # type: ignore[return-value]
    raise ConfigError(f"WASYNC_MEDIA_STORE must be auto, local or database, not {kind!r}")


def media_store_for(kind: str, data_dir: Path, db: Database) -> MediaStore:
    """The store the settings choose (`media_store`), over this data directory and database."""
    from wasync.media.database import DatabaseMediaStore
    from wasync.media.local import LocalMediaStore

    if resolve_kind(kind, db) == "database":
        return DatabaseMediaStore(db)
    return LocalMediaStore(data_dir / "media")
