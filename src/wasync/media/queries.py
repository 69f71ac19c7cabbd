"""Every statement on `media_blobs` and `media_objects` (store/schema.py).

Blobs are content-addressed (by SHA-256) and shared by every key whose bytes are the
same; a blob goes once no object refers to it. Two nodes can race on one blob: A adds
a reference while B removes the last one. Both take the blob's row lock before they
look at the references, A a shared lock (`FOR SHARE`) before adding its object, B an
exclusive one (`FOR UPDATE`) before its delete of unreferenced blobs, a new statement:
under READ COMMITTED it sees A's reference once A committed, and keeps the blob. When
B deleted first, A's lock finds no row and A inserts the blob again. A transaction
locks an object's key first (a put through `lock_key`, which holds a key not stored
yet too), then its blobs in SHA-256 order, so two never wait for each other in a
circle. SQLite has one writer at a time: the locks are no-ops there.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    exists,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from wasync.store.schema import media_blobs, media_objects

blobs, objects = media_blobs.c, media_objects.c
# Keys or blobs per statement: a session's media can outnumber the parameters one
# statement takes (65,535 on PostgreSQL; a delete of 66,000 failed a session delete).
_BATCH: Final = 1000


def lock_key(conn: Connection, key: str) -> None:
    """Hold `key` until this transaction ends, stored yet or not (PostgreSQL).

    A row lock cannot hold a key no one has inserted yet: a put of a key another node
    was inserting waited at its insert while holding its blob's lock, and a third
    transaction releasing that blob closed a circle (deadlock, tested). With this lock
    first, the put waits before it holds anything. The first number keeps these locks
    apart from any other advisory lock; two keys with one hash merely wait in turn.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(1835361385, hashtext(:key))"), {"key": key})


def object_row(
    conn: Connection, key: str, *, lock: bool = False
) -> tuple[str, int, str | None] | None:
    """(sha256, size, content type) of `key`, locking its row when asked."""
    query = select(objects.sha256, objects.size, objects.content_type).where(objects.key == key)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else (row.sha256, row.size, row.content_type)


def _insert_blob_if_absent(conn: Connection, sha256: str, data: bytes) -> None:
    values = {"sha256": sha256, "size": len(data), "data": data, "created_at": time.time()}
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(
        make(media_blobs).values(**values).on_conflict_do_nothing(index_elements=["sha256"])
    )


def lock_blob(conn: Connection, sha256: str, *, exclusive: bool) -> bool:
    """Lock blob `sha256`'s row until this transaction ends; False when there is none."""
    query = select(blobs.sha256).where(blobs.sha256 == sha256)
    return conn.execute(query.with_for_update(read=not exclusive)).first() is not None


def hold_blob(conn: Connection, sha256: str, data: bytes) -> None:
    """Make sure blob `sha256` exists and stays until this transaction ends."""
    for _ in range(10):
        _insert_blob_if_absent(conn, sha256, data)
        if lock_blob(conn, sha256, exclusive=False):
            return
        # Deleted by another transaction between our insert and our lock: again.
    raise RuntimeError(f"blob {sha256} kept disappearing")  # pragma: no cover


def release_blobs(conn: Connection, shas: Iterable[str]) -> int:
    """Delete each of `shas` that no object refers to any more; how many went."""
    ordered = sorted(set(shas))
    gone = 0
    for start in range(0, len(ordered), _BATCH):
        part = ordered[start : start + _BATCH]
        # Exclusive locks, taken in SHA-256 order (the rows come out sorted), then a
        # new statement that sees every reference committed meanwhile.
        conn.execute(
            select(blobs.sha256)
            .where(blobs.sha256.in_(part))
            .order_by(blobs.sha256)
            .with_for_update()
        ).all()
        unused = ~exists().where(objects.sha256 == blobs.sha256)
        deleted = conn.execute(
            delete(media_blobs).where(blobs.sha256.in_(part), unused).returning(blobs.sha256)
        )
        gone += len(deleted.all())
    return gone


def set_object(
    conn: Connection, key: str, sha256: str, size: int, content_type: str | None
) -> str | None:
    """Point `key` at blob `sha256`; the SHA-256 it pointed at before, if any.

    Two nodes can store one new key at once (both fetched the same message's media):
    a put's `lock_key` makes the second wait for the first; without it, the second
    insert would wait for the first to commit, then find the row and update it.
    """
    values = {
        "sha256": sha256,
        "size": size,
        "content_type": content_type,
        "updated_at": time.time(),
    }
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    for _ in range(10):
        old = object_row(conn, key, lock=True)
        if old is not None:
            conn.execute(update(media_objects).where(objects.key == key).values(**values))
            return old[0]
        # RETURNING, not rowcount: psycopg reports -1 for this statement.
        inserted = conn.execute(
            make(media_objects)
            .values(key=key, **values)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(objects.key)
        ).first()
        if inserted is not None:
            return None
    raise RuntimeError(f"media object {key} kept changing")  # pragma: no cover


def delete_objects(conn: Connection, keys: list[str]) -> list[str]:
    """Delete these objects; the SHA-256 of each one deleted."""
    shas: list[str] = []
    for start in range(0, len(keys), _BATCH):
        part = keys[start : start + _BATCH]
        deleted = conn.execute(
            delete(media_objects).where(objects.key.in_(part)).returning(objects.sha256)
        )
        shas.extend(deleted.scalars())
    return shas


def delete_objects_under(conn: Connection, prefix: str) -> list[str]:
    """Delete every object under `prefix` (one statement, however many); their SHA-256s."""
    deleted = conn.execute(
        delete(media_objects).where(_under(conn, prefix)).returning(objects.sha256)
    )
    return list(deleted.scalars())


def keys_under(conn: Connection, prefix: str) -> list[str]:
    """Keys starting with `prefix` (which ends with '/'), in order."""
    key = objects.key.collate("C") if conn.dialect.name == "postgresql" else objects.key
    return list(
        conn.execute(select(objects.key).where(_under(conn, prefix)).order_by(key)).scalars()
    )


def _under(conn: Connection, prefix: str) -> ColumnElement[bool]:
    """Keys starting with `prefix` (which ends with '/').

    A range, not LIKE: keys hold `_`, LIKE's wildcard. '0' follows '/' in every
    collation that orders ASCII by code; "C" collation makes that sure on PostgreSQL.
    """
    upper = prefix[:-1] + "0"
    key = objects.key.collate("C") if conn.dialect.name == "postgresql" else objects.key
    return and_(key >= prefix, key < upper)


def blob_rowid(conn: Connection, sha256: str) -> int | None:
    """SQLite: the blob's rowid, for incremental reads (sqlite3 `blobopen`)."""
    rowid = conn.execute(
        select(literal_column("rowid")).select_from(media_blobs).where(blobs.sha256 == sha256)
    ).scalar()
    return None if rowid is None else int(rowid)


def blob_chunk(conn: Connection, sha256: str, offset: int, size: int) -> bytes | None:
    """Bytes [offset, offset+size) of a blob (PostgreSQL `substring`), None when gone."""
    chunk = conn.execute(
        select(func.substring(blobs.data, offset + 1, size)).where(blobs.sha256 == sha256)
    ).scalar()
    return None if chunk is None else bytes(chunk)


def object_data(conn: Connection, key: str) -> bytes | None:
    """The bytes of object `key` (one statement: a round trip less than two)."""
    data = conn.execute(
        select(blobs.data)
        .select_from(media_objects.join(media_blobs, objects.sha256 == blobs.sha256))
        .where(objects.key == key)
    ).scalar()
    return None if data is None else bytes(data)


def count_blobs(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(media_blobs)).scalar() or 0)
