"""Opening the database: URL handling, SQLite pragmas, transactions, migrations.

SQLite is the embedded default (a file in the data directory, WAL mode); PostgreSQL
is chosen by URL when several processes or machines share the work. Writes and reads
are explicit: `db.write()` opens a write transaction (on SQLite `BEGIN IMMEDIATE`, so
two writers queue on the busy timeout instead of failing half-way), `db.read()` a
read-only one.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.pool import StaticPool

from wasync.errors import ConfigError, StoreError
from wasync.files import PRIVATE_FILE, private_dir, private_file, tighten

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Page cache of the one writing connection. SQLite's default (2 MiB) stops holding the
# messages indexes' pages once a mirror passes a few hundred thousand messages, and
# every insert then reads them back from the OS: measured with bench/ingest.py, 1M
# messages took 5.5x the time of 200k with it. Reading connections keep the default.
SQLITE_WRITER_CACHE_KIB = 32 * 1024

# Where a transaction keeps what it wants announced once it commits (see
# `Database.announce`): the connection's own scratch space, cleared at commit and
# rollback alike, so a rolled-back transaction announces nothing.
_ANNOUNCED = "wasync.announced"

CommitListener = Callable[[set[tuple[object, ...]]], None]


def announce(conn: Connection, topic: str, item: tuple[object, ...]) -> bool:
    """Tell `topic`'s listeners (`Database.on_commit`) about `item` once this
    transaction commits; False when it was announced in this transaction already.

    For work that must not be seen before its rows are: a job enqueued inside a batch's
    transaction wakes the runner only after the commit made it claimable.
    """
    items = conn.info.setdefault(_ANNOUNCED, {}).setdefault(topic, set())
    if item in items:
        return False
    items.add(item)
    return True


def normalize_url(url: str) -> str:
    """Accept the URL spellings people paste and pick wasync's drivers.

    `postgres://` and `postgresql://` use psycopg 3; a bare path means SQLite.
    """
    url = url.strip()
    if not url:
        raise ConfigError("the database URL is empty")
    if re.match(r"^postgres(ql)?://", url):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return "sqlite:///" + str(Path(url).expanduser())
    return url


def sqlite_url_for(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'wasync.db'}"


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _dispose(writer: Engine, reader: Engine) -> None:
    for engine in (writer,) if reader is writer else (writer, reader):
        old = engine.pool
        engine.dispose()
        # A connection still checked out (a worker thread mid-transaction while the
        # runtime stops) comes back to the old pool, which nobody uses any more: close
        # it then, instead of leaving it to the garbage collector (which warns, and on
        # PostgreSQL keeps the server connection until it runs).
        event.listen(old, "checkin", _close_late)


def _close_late(dbapi_connection: Any, _record: Any) -> None:
    if dbapi_connection is not None:
        with contextlib.suppress(Exception):  # broken already: gone either way
            dbapi_connection.close()


class Database:
    """One database: a write path and a read path over SQLAlchemy engines.

    The engines hide statement parameters in their errors and logs: those hold
    message texts, webhook secrets and URLs with tokens, none of which belongs there.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalize_url(url)
        try:
            parsed = make_url(self.url)
        except ArgumentError as exc:
            raise ConfigError(f"not a database URL: {_redacted(self.url)}") from exc
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"unsupported database {self.dialect!r}: use sqlite:///path or postgresql://"
            )
        self.is_sqlite = self.dialect == "sqlite"
        if self.is_sqlite:
            self._writer = self._sqlite_engine(parsed.database, immediate=True, echo=echo)
            self._reader = (
                self._writer
                if self._in_memory(parsed.database)
                else self._sqlite_engine(parsed.database, immediate=False, echo=echo)
            )
        else:
            self._writer = create_engine(
                self.url,
                echo=echo,
                hide_parameters=True,
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=10,
            )
            self._reader = self._writer
        self._commit_listeners: dict[str, list[CommitListener]] = {}
        # A Database dropped without close() still gives its connections back, instead
        # of leaving them to the garbage collector (which warns, and on PostgreSQL keeps
        # server connections until it runs).
        self._disposer = weakref.finalize(self, _dispose, self._writer, self._reader)

    # After-commit announcements (see `announce`).

    def on_commit(self, topic: str, listener: CommitListener) -> None:
        """Call `listener(items)` after each commit that announced `topic` items. It
        runs in the committing thread: hand work to an event loop thread-safely."""
        self._commit_listeners.setdefault(topic, []).append(listener)

    def remove_commit_listener(self, topic: str, listener: CommitListener) -> None:
        found = self._commit_listeners.get(topic, [])
        if listener in found:
            found.remove(listener)

    def _dispatch(self, announced: dict[str, set[tuple[object, ...]]]) -> None:
        for topic, items in announced.items():
            for listener in list(self._commit_listeners.get(topic, ())):
                listener(items)

    def has_listeners(self, topic: str) -> bool:
        return bool(self._commit_listeners.get(topic))

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or None (PostgreSQL, or SQLite in memory)."""
        if not self.is_sqlite:
            return None
        database = make_url(self.url).database
        if self._in_memory(database):
            return None
        assert database is not None
        return Path(database).expanduser()

    @staticmethod
    def _in_memory(database: str | None) -> bool:
        return not database or database == ":memory:"

    def _sqlite_engine(self, database: str | None, *, immediate: bool, echo: bool) -> Engine:
        if not self._in_memory(database):
            assert database is not None
            path = Path(database).expanduser()
            try:
                # Made private before SQLite opens it: SQLite gives the WAL and its
                # index (-wal, -shm) the database file's own mode when it makes them.
                private_file(private_dir(path.parent) / path.name)
            except OSError as exc:
                raise ConfigError(
                    f"cannot use {path.parent} for the database: {exc.strerror or exc}"
                ) from None
            engine = create_engine(
                self.url,
                echo=echo,
                hide_parameters=True,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            )
        else:
            # One shared connection, or every checkout would see a new empty database.
            engine = create_engine(
                "sqlite://",
                echo=echo,
                hide_parameters=True,
                poolclass=StaticPool,
                connect_args={"check_same_thread": False},
            )

        # Computed here, not in the listener: a listener that held `self` would keep
        # this Database alive from its engine (see the finalizer in __init__).
        in_memory = self._in_memory(database)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from pysqlite so BEGIN is ours to choose.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if not in_memory:
                cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
            if immediate:
                cur.execute(f"PRAGMA cache_size = -{SQLITE_WRITER_CACHE_KIB}")
            cur.close()
            if not in_memory:
                # Left by an earlier release (or a crash) with a wider mode.
                for suffix in ("-wal", "-shm"):
                    tighten(Path(f"{database}{suffix}").expanduser(), PRIVATE_FILE)

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @property
    def engine(self) -> Engine:
        """The write engine (migrations, tools)."""
        return self._writer

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on error; what it
        announced (`announce`) reaches the listeners once the commit is done."""
        announced: dict[str, set[tuple[object, ...]]] | None = None
        try:
            with self._writer.begin() as conn:
                try:
                    yield conn
                finally:
                    announced = conn.info.pop(_ANNOUNCED, None)
        except OperationalError as exc:
            raise StoreError(f"database write failed: {exc.orig}") from exc
        if announced:
            self._dispatch(announced)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self._reader.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(f"database read failed: {exc.orig}") from exc

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent).

        Every entry point migrates first, so this is where an unreachable or refused
        database becomes one clear sentence instead of a driver's traceback.
        """
        from wasync.store.migrate import upgrade

        try:
            upgrade(self)
        except (OperationalError, InterfaceError) as exc:
            raise self._cannot_open(exc) from exc

    def is_mirror(self) -> bool:
        """Whether wasync ever migrated this database (commands that only read refuse
        one it did not, rather than making an empty mirror to report on)."""
        try:
            with self._reader.connect() as conn:
                return inspect(conn).has_table("alembic_version")
        except (OperationalError, InterfaceError) as exc:
            raise self._cannot_open(exc) from exc

    def _cannot_open(self, exc: OperationalError | InterfaceError) -> StoreError:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return StoreError(f"cannot open the database {_redacted(self.url)}: {reason}")

    def close(self) -> None:
        # Not the finalizer itself (it runs once): a closed engine can be used again,
        # and a later close() must give those connections back too.
        _dispose(self._writer, self._reader)

    def __repr__(self) -> str:
        return f"Database({_redacted(self.url)})"
