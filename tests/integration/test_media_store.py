"""The media store contract, on the local directory and on the database (SQLite and
PostgreSQL): same keys, same answers, same refusals."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from wasync.media.database import DatabaseMediaStore
from wasync.media.keys import InvalidMediaKey
from wasync.media.local import LocalMediaStore
from wasync.media.store import MAX_OBJECT_BYTES, MediaStore, MediaTooLarge, media_store_for
from wasync.store.db import Database
from wasync.store.schema import media_blobs, media_objects


@pytest.fixture(
    params=["local", "database-sqlite", pytest.param("database-pg", marks=pytest.mark.postgres)]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MediaStore]:
    if request.param == "local":
        yield LocalMediaStore(tmp_path / "media")
        return
    if request.param == "database-sqlite":
        url = f"sqlite:///{tmp_path / 'wasync.db'}"
    else:
        url = str(request.getfixturevalue("pg_schema_url"))
    db = Database(url)
    db.migrate()
    try:
        yield DatabaseMediaStore(db)
    finally:
        db.close()


def _db(store: MediaStore) -> Database:
    assert isinstance(store, DatabaseMediaStore)
    return store.db


def _blob_count(db: Database) -> int:
    with db.read() as conn:
        return len(conn.execute(select(media_blobs.c.sha256)).all())


def test_put_get_stat_stream_keys_delete(store: MediaStore) -> None:
    data = os.urandom(3 * 1024 + 5)
    stat_ = store.put("avatars/demo/1@s.whatsapp.net.jpg", data, content_type="image/jpeg")
    assert stat_.sha256 == hashlib.sha256(data).hexdigest() and stat_.size == len(data)
    assert store.exists("avatars/demo/1@s.whatsapp.net.jpg")
    assert store.get("avatars/demo/1@s.whatsapp.net.jpg") == data
    found = store.stat("avatars/demo/1@s.whatsapp.net.jpg")
    assert found is not None and (found.size, found.sha256) == (len(data), stat_.sha256)
    chunks = store.stream("avatars/demo/1@s.whatsapp.net.jpg", 1000)
    assert chunks is not None
    parts = list(chunks)
    assert b"".join(parts) == data and [len(p) for p in parts[:3]] == [1000, 1000, 1000]
    store.put("avatars/demo/2@s.whatsapp.net.jpg", b"two")
    store.put("avatars/other/3@s.whatsapp.net.jpg", b"three")
    store.put("avatars/demo_x/4@s.whatsapp.net.jpg", b"four")  # `_` is no wildcard
    assert store.keys("avatars/demo/") == [
        "avatars/demo/1@s.whatsapp.net.jpg",
        "avatars/demo/2@s.whatsapp.net.jpg",
    ]
    # Replaced whole.
    store.put("avatars/demo/2@s.whatsapp.net.jpg", b"two again")
    assert store.get("avatars/demo/2@s.whatsapp.net.jpg") == b"two again"
    assert store.delete("avatars/demo/2@s.whatsapp.net.jpg") is True
    assert store.delete("avatars/demo/2@s.whatsapp.net.jpg") is False
    assert store.get("avatars/demo/2@s.whatsapp.net.jpg") is None
    assert store.stat("avatars/demo/2@s.whatsapp.net.jpg") is None
    assert store.stream("avatars/demo/2@s.whatsapp.net.jpg") is None
    assert store.delete_prefix("avatars/demo/") == 1
    assert store.keys("avatars/demo/") == []
    assert store.keys("avatars/") == [
        "avatars/demo_x/4@s.whatsapp.net.jpg",
        "avatars/other/3@s.whatsapp.net.jpg",
    ]
    assert store.get("avatars/other/3@s.whatsapp.net.jpg") == b"three"


UNSAFE = [
    "",
    "../x",
    "a/../b",
    "/abs",
    "a//b",
    "a/",
    ".hidden",
    "a/.x.tmp",
    "a\\b",
    "c:/x",
    "a\x00b",
    "a b",
    "x" * 513,
    "/".join("a" * 9),
]


@pytest.mark.parametrize("key", UNSAFE)
def test_unsafe_keys_are_refused_by_every_method(store: MediaStore, key: str) -> None:
    for call in (
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.stat(key),
        lambda: store.exists(key),
        lambda: store.stream(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(InvalidMediaKey):
            call()
    with pytest.raises(InvalidMediaKey):
        store.keys(key + "/" if key else "/")
    with pytest.raises(InvalidMediaKey):
        store.delete_prefix(key + "/" if key else "/")
    assert store.local_path(key) is None


def test_a_prefix_must_end_with_a_slash(store: MediaStore) -> None:
    with pytest.raises(InvalidMediaKey):
        store.keys("avatars")
    with pytest.raises(InvalidMediaKey):
        store.delete_prefix("avatars")


def test_too_large_object_is_refused(store: MediaStore) -> None:
    class Huge(bytes):
        def __len__(self) -> int:
            return MAX_OBJECT_BYTES + 1

    with pytest.raises(MediaTooLarge):
        store.put("messages/1/aa/big", Huge(b"x"))
    assert not store.exists("messages/1/aa/big")


# The database store.


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseMediaStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'wasync.db'}"
    else:
        url = str(request.getfixturevalue("pg_schema_url"))
    db = Database(url)
    db.migrate()
    try:
        yield DatabaseMediaStore(db)
    finally:
        db.close()


def test_same_bytes_share_one_blob_until_the_last_key_goes(db_store: DatabaseMediaStore) -> None:
    db_store.put("avatars/a/1@s.whatsapp.net.jpg", b"same")
    db_store.put("avatars/b/1@s.whatsapp.net.jpg", b"same")
    assert _blob_count(db_store.db) == 1
    db_store.delete("avatars/a/1@s.whatsapp.net.jpg")
    assert _blob_count(db_store.db) == 1
    assert db_store.get("avatars/b/1@s.whatsapp.net.jpg") == b"same"
    # Replacing the last key's bytes drops the old blob.
    db_store.put("avatars/b/1@s.whatsapp.net.jpg", b"other")
    assert _blob_count(db_store.db) == 1
    db_store.delete_prefix("avatars/")
    assert _blob_count(db_store.db) == 0


def test_put_and_delete_roll_back_with_the_callers_transaction(
    db_store: DatabaseMediaStore,
) -> None:
    db = db_store.db
    with pytest.raises(RuntimeError), db.write() as conn:
        db_store.put("avatars/a/1@s.whatsapp.net.jpg", b"bytes", conn=conn)
        raise RuntimeError("the caller's rows failed")
    assert not db_store.exists("avatars/a/1@s.whatsapp.net.jpg")
    assert _blob_count(db) == 0
    db_store.put("avatars/a/1@s.whatsapp.net.jpg", b"bytes")
    with pytest.raises(RuntimeError), db.write() as conn:
        assert db_store.delete("avatars/a/1@s.whatsapp.net.jpg", conn=conn)
        raise RuntimeError("the caller's rows failed")
    assert db_store.get("avatars/a/1@s.whatsapp.net.jpg") == b"bytes"


def test_media_store_setting(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'wasync.db'}")
    try:
        assert isinstance(media_store_for("auto", tmp_path, db), LocalMediaStore)
        assert isinstance(media_store_for("database", tmp_path, db), DatabaseMediaStore)
    finally:
        db.close()


@pytest.mark.postgres
def test_auto_on_postgresql_is_the_database(pg_schema_url: str, tmp_path: Path) -> None:
    db = Database(pg_schema_url)
    try:
        assert isinstance(media_store_for("auto", tmp_path, db), DatabaseMediaStore)
        assert isinstance(media_store_for("local", tmp_path, db), LocalMediaStore)
    finally:
        db.close()


@pytest.mark.postgres
def test_a_blob_is_not_deleted_while_another_node_adds_a_reference(pg_schema_url: str) -> None:
    """B deletes the last key of a blob while A, not yet committed, adds a key to it:
    B waits for A's lock, then sees A's reference and keeps the blob."""
    node_a, node_b = Database(pg_schema_url), Database(pg_schema_url)
    node_a.migrate()
    store_a, store_b = DatabaseMediaStore(node_a), DatabaseMediaStore(node_b)
    try:
        store_b.put("avatars/b/1@s.whatsapp.net.jpg", b"shared")
        with node_a.write() as conn_a:
            store_a.put("avatars/a/1@s.whatsapp.net.jpg", b"shared", conn=conn_a)
            a_pid = conn_a.execute(text("SELECT pg_backend_pid()")).scalar()
            deleter = _OnAnotherNode(lambda: store_b.delete("avatars/b/1@s.whatsapp.net.jpg"))
            assert _blocked_by(node_a, a_pid) == 1, "B did not wait for A's lock"
        deleter.finish()
        assert store_b.get("avatars/a/1@s.whatsapp.net.jpg") == b"shared"
        assert not store_b.exists("avatars/b/1@s.whatsapp.net.jpg")
        assert _blob_count(node_b) == 1
    finally:
        node_a.close()
        node_b.close()


# The local store.


def test_local_files_are_private_and_temp_leftovers_go(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        store = LocalMediaStore(tmp_path / "media")
        store.put("avatars/demo/1@s.whatsapp.net.jpg", b"one")
        path = tmp_path / "media" / "avatars" / "demo" / "1@s.whatsapp.net.jpg"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        leftover = path.parent / ".1@s.whatsapp.net.jpg.abc.tmp"
        leftover.write_bytes(b"half")
        store.put("avatars/demo/1@s.whatsapp.net.jpg", b"two")
        assert not leftover.exists()
        assert store.keys("avatars/") == ["avatars/demo/1@s.whatsapp.net.jpg"]
        assert store.local_path("avatars/demo/1@s.whatsapp.net.jpg") == path.resolve()
    finally:
        os.umask(previous)


def test_local_reads_never_leave_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    store = LocalMediaStore(tmp_path / "media")
    store.put("avatars/demo/1@s.whatsapp.net.jpg", b"one")
    folder = tmp_path / "media" / "avatars" / "demo"
    (folder / "2@s.whatsapp.net.jpg").symlink_to(outside / "secret.jpg")
    assert store.get("avatars/demo/2@s.whatsapp.net.jpg") is None
    assert store.stat("avatars/demo/2@s.whatsapp.net.jpg") is None
    assert not store.exists("avatars/demo/2@s.whatsapp.net.jpg")
    assert store.local_path("avatars/demo/2@s.whatsapp.net.jpg") is None
    # A symlinked folder: deleting it removes the link, not what it points at.
    (tmp_path / "media" / "avatars" / "linked").symlink_to(outside)
    store.delete_prefix("avatars/linked/")
    assert not (tmp_path / "media" / "avatars" / "linked").exists()
    assert (outside / "secret.jpg").read_bytes() == b"secret"


def test_local_writes_and_deletes_never_leave_the_root(tmp_path: Path) -> None:
    """A folder of the store linked elsewhere: nothing is written, listed or deleted
    through it."""
    from wasync.errors import StoreError

    outside = tmp_path / "outside"
    (outside / "demo").mkdir(parents=True)
    (outside / "demo" / "1@s.whatsapp.net.jpg").write_bytes(b"secret")
    store = LocalMediaStore(tmp_path / "media")
    store.put("messages/1/ab/x", b"ours")
    (tmp_path / "media" / "avatars").symlink_to(outside)
    with pytest.raises(StoreError, match="outside"):
        store.put("avatars/demo/2@s.whatsapp.net.jpg", b"planted")
    with pytest.raises(StoreError, match="outside"):
        store.put("avatars/new/2@s.whatsapp.net.jpg", b"planted")
    assert store.keys("avatars/") == [] and store.keys("avatars/demo/") == []
    assert store.delete("avatars/demo/1@s.whatsapp.net.jpg") is False
    assert store.delete_prefix("avatars/demo/") == 0
    assert sorted(p.name for p in outside.rglob("*")) == ["1@s.whatsapp.net.jpg", "demo"]
    assert (outside / "demo" / "1@s.whatsapp.net.jpg").read_bytes() == b"secret"
    assert store.keys("messages/") == ["messages/1/ab/x"]


def test_local_sha256_follows_the_file_version(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path / "media")
    store.put("avatars/demo/1@s.whatsapp.net.jpg", b"one")
    first = store.stat("avatars/demo/1@s.whatsapp.net.jpg")
    store.put("avatars/demo/1@s.whatsapp.net.jpg", b"two!")
    second = store.stat("avatars/demo/1@s.whatsapp.net.jpg")
    assert first is not None and second is not None
    assert first.sha256 == hashlib.sha256(b"one").hexdigest()
    assert second.sha256 == hashlib.sha256(b"two!").hexdigest()


def test_objects_are_rows_in_the_database(db_store: DatabaseMediaStore) -> None:
    db_store.put("messages/1/ab/abc", b"m", content_type="image/png")
    with db_store.db.read() as conn:
        rows = conn.execute(select(media_objects.c.key, media_objects.c.content_type)).all()
    assert [tuple(r) for r in rows] == [("messages/1/ab/abc", "image/png")]
    found = db_store.stat("messages/1/ab/abc")
    assert found is not None and found.content_type == "image/png"


async def test_the_api_answers_507_for_a_too_large_object() -> None:
    import httpx
    from fastapi import FastAPI

    from wasync.api.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/store")
    async def store_huge() -> None:
        raise MediaTooLarge("messages/1/aa/big: 600 MiB is more than 512 MiB")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/store")
    assert r.status_code == 507 and r.json()["error"] == "too_large_to_store"


@pytest.mark.postgres
def test_two_nodes_storing_one_new_key_at_once(pg_schema_url: str) -> None:
    """Both fetched the same message's media: B's insert waits for A's commit, then
    replaces A's object; no error, and A's blob goes with its last reference."""
    node_a, node_b = Database(pg_schema_url), Database(pg_schema_url)
    node_a.migrate()
    store_a, store_b = DatabaseMediaStore(node_a), DatabaseMediaStore(node_b)
    key = "messages/1/ab/" + "ab" * 32
    try:
        with node_a.write() as conn_a:
            store_a.put(key, b"from A", conn=conn_a)
            a_pid = conn_a.execute(text("SELECT pg_backend_pid()")).scalar()
            writer = _OnAnotherNode(lambda: store_b.put(key, b"from B"))
            assert _blocked_by(node_a, a_pid) == 1, "B did not wait for A"
        writer.finish()
        assert store_a.get(key) == b"from B"
        assert _blob_count(node_a) == 1
    finally:
        node_a.close()
        node_b.close()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("start", "end"), [(0, None), (0, 1), (999, 1001), (1500, None), (2999, 3000), (10, 5000)]
)
def test_a_stream_from_a_byte_to_a_byte(store: MediaStore, start: int, end: int | None) -> None:
    """What a Range request is served from, across chunk boundaries."""
    data = os.urandom(3000)
    store.put("messages/1/ab/r", data)
    chunks = store.stream("messages/1/ab/r", 1000, start=start, end=end)
    assert chunks is not None
    parts = list(chunks)
    assert b"".join(parts) == data[start:end]
    assert all(0 < len(p) <= 1000 for p in parts)


def test_a_postgresql_stream_holds_no_connection_between_chunks(pg_schema_url: str) -> None:
    """Each chunk is a short read: the object's deletion meanwhile ends the stream
    with an error rather than with other bytes, and a slow reader pins nothing."""
    from wasync.errors import StoreError

    db = Database(pg_schema_url)
    db.migrate()
    try:
        store = DatabaseMediaStore(db)
        data = os.urandom(3000)
        store.put("messages/1/ab/x", data)
        chunks = store.stream("messages/1/ab/x", 1000)
        assert chunks is not None
        first = next(chunks)
        assert first == data[:1000]
        assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert store.delete("messages/1/ab/x")
        with pytest.raises(StoreError, match="deleted while it was read"):
            next(chunks)
    finally:
        db.close()


def test_deleting_a_prefix_with_more_keys_than_a_statement_takes(
    db_store: DatabaseMediaStore,
) -> None:
    """A big session's media (more objects and blobs than one statement has parameters
    for: PostgreSQL takes 65,535) go in one delete, and every blob with them."""
    many = 66_000
    now = 1.0
    shas = [f"{i:064x}" for i in range(many)]
    with db_store.db.write() as conn:
        # Rows, not puts: 66,000 puts would take minutes; the rows are what puts make.
        conn.execute(
            media_blobs.insert(),
            [{"sha256": s, "size": 1, "data": b"x", "created_at": now} for s in shas],
        )
        conn.execute(
            media_objects.insert(),
            [
                {"key": f"messages/1/{s[-2:]}/{s}", "sha256": s, "size": 1, "updated_at": now}
                for s in shas
            ],
        )
    db_store.put("messages/2/ab/kept", b"x")  # another session's object, same bytes as none
    assert db_store.delete_prefix("messages/1/") == many
    assert db_store.keys("messages/") == ["messages/2/ab/kept"]
    assert _blob_count(db_store.db) == 1


class _OnAnotherNode:
    """`work` started in a thread (another node's call); `finish` waits (bounded) and
    fails the test with whatever it raised."""

    def __init__(self, work: Callable[[], object]) -> None:
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(work,))
        self.thread.start()

    def _run(self, work: Callable[[], object]) -> None:
        try:
            work()
        except BaseException as exc:  # pragma: no cover - reported by finish()
            self.errors.append(exc)

    def finish(self) -> None:
        self.thread.join(timeout=20)
        assert not self.thread.is_alive() and not self.errors, self.errors


def _blocked_by(db: Database, pid: object) -> int:
    """How many sessions wait for backend `pid`, once one does (or after 10 s)."""
    with db.engine.connect() as watcher:
        blocked = 0
        for _ in range(500):  # bounded: 10 s
            blocked = int(
                watcher.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE :pid = ANY(pg_blocking_pids(pid))"
                    ),
                    {"pid": pid},
                ).scalar()
                or 0
            )
            watcher.rollback()
            if blocked:
                break
            threading.Event().wait(0.02)
    return blocked


@pytest.mark.postgres
def test_a_put_waiting_for_another_nodes_new_key_holds_no_blob(pg_schema_url: str) -> None:
    """B stores a key A is inserting: B waits before it holds its blob, so A may still
    release that blob (here: deleting its only other key) without a deadlock."""
    node_a, node_b = Database(pg_schema_url), Database(pg_schema_url)
    node_a.migrate()
    store_a, store_b = DatabaseMediaStore(node_a), DatabaseMediaStore(node_b)
    key, other = "messages/1/ab/" + "ab" * 32, "messages/1/cd/" + "cd" * 32
    try:
        store_a.put(other, b"from B")  # B's bytes, already stored under another key
        with node_a.write() as conn_a:
            store_a.put(key, b"from A", conn=conn_a)
            a_pid = conn_a.execute(text("SELECT pg_backend_pid()")).scalar()
            writer = _OnAnotherNode(lambda: store_b.put(key, b"from B"))
            assert _blocked_by(node_a, a_pid) == 1, "B did not wait for A"
            # A releases the blob B is about to use: B must not hold it yet.
            assert store_a.delete(other, conn=conn_a)
        writer.finish()
        assert store_a.get(key) == b"from B"
        assert store_a.keys("messages/") == [key]
        assert _blob_count(node_a) == 1
    finally:
        node_a.close()
        node_b.close()
