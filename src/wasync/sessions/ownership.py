"""Who runs a session: exactly one process at a time, and fencing for the others.

WhatsApp allows one connection per linked device: two processes running one session
knock each other off ("stream replaced"), and both would write the mirror. So a
process *holds* a session before it runs it, and gives it back when it stops.

- The `session_leases` row of a session names its holder and an *epoch* that grows at
  every change of hands. Every write the session makes (batch commits, history
  pages, picture results, job outcomes, status) runs in a *fenced* transaction that
  first checks the row still names this holder with this epoch, and is refused
  otherwise (`Fenced`). On PostgreSQL the check takes a share lock on the row, so a
  takeover (which updates it) waits for writes in flight and every later write of
  the old holder is refused: a paused or partitioned node can never write after
  another took its sessions.
- On PostgreSQL the lease expires unless renewed (`ttl`): a node that dies is
  replaced once its leases run out. On SQLite, every process is on one machine, and
  an operating-system file lock next to the database holds the session instead: the
  kernel releases it when the process dies, however it dies.

A process that cannot take a session learns who has it (`SessionHeld`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Connection, and_, or_, select, update

from wasync.errors import WasyncError
from wasync.jobs.queries import owner_is_dead
from wasync.store.db import Database
from wasync.store.schema import cluster_nodes, session_leases
from wasync.store.upsert import insert_for

DEFAULT_TTL = 15.0
_l = session_leases.c


class SessionHeld(WasyncError):
    """Another process runs this session."""

    def __init__(self, session: str, holder: str) -> None:
        super().__init__(f"session {session!r} is running in {holder}")
        self.session = session
        self.holder = holder


class Fenced(WasyncError):
    """This process no longer holds the session: the write was refused."""


@dataclass(frozen=True, slots=True)
class Lease:
    session_id: int
    session: str
    holder: str
    epoch: int


def describe_process(what: str) -> str:
    """How a holder is named to people: "wasync serve (node a, pid 42 on host)"."""
    return f"{what} (pid {os.getpid()} on {socket.gethostname()})"


def check_leases(conn: Connection, leases: Iterable[Lease]) -> set[int]:
    """The session ids among `leases` that are no longer held as they say (fenced).

    On PostgreSQL the rows stay share-locked until the transaction ends: a takeover
    then waits for it, and cannot slip in between this check and the commit.
    """
    wanted = {lease.session_id: lease for lease in leases}
    if not wanted:
        return set()
    stmt = select(_l.session_id, _l.holder, _l.epoch).where(_l.session_id.in_(list(wanted)))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(read=True)
    held = {
        sid
        for sid, holder, epoch in conn.execute(stmt)
        if holder == wanted[sid].holder and epoch == wanted[sid].epoch
    }
    return set(wanted) - held


class Ownership:
    """Taking, keeping and giving back sessions, for one process (`holder`)."""

    expires = True  # leases expire unless renewed (False: a file lock holds them)

    def __init__(self, db: Database, holder: str, detail: str, *, ttl: float = DEFAULT_TTL):
        self.db = db
        self.holder = holder
        self.detail = detail
        self.ttl = ttl

    @staticmethod
    def for_database(
        db: Database, holder: str, detail: str, *, ttl: float = DEFAULT_TTL
    ) -> Ownership:
        if db.is_sqlite:
            return FileLockOwnership(db, holder, detail, ttl=ttl)
        return Ownership(db, holder, detail, ttl=ttl)

    # Taking and giving back.

    def acquire(self, session_id: int, session: str) -> Lease:
        """Hold `session` (a new epoch); raises SessionHeld when another holds it."""
        now = time.time()
        with self.db.write() as conn:
            epoch = self._take(conn, session_id, now)
            if epoch is None:
                dead = self._dead_holder(conn, session_id)
                if dead is not None:
                    # A process of this host that died: no need to wait out its lease.
                    epoch = self._upsert_holder(
                        conn, session_id, now, now + self.ttl, _l.holder == dead
                    )
            if epoch is None:
                raise SessionHeld(session, self._holder_of(conn, session_id))
        return Lease(session_id, session, self.holder, epoch)

    def _dead_holder(self, conn: Connection, session_id: int) -> str | None:
        """The holder of a session when it is a process of this host that no longer runs."""
        holder = conn.execute(
            select(_l.holder).where(_l.session_id == session_id)
        ).scalar_one_or_none()
        if holder is None:
            return None
        if owner_is_dead(holder):
            return str(holder)
        node = conn.execute(
            select(cluster_nodes.c.host, cluster_nodes.c.pid, cluster_nodes.c.incarnation).where(
                cluster_nodes.c.name == holder
            )
        ).one_or_none()
        if node is None or node.host != socket.gethostname() or node.pid is None:
            return None
        if owner_is_dead(f"node:{node.host}:{node.pid}:{node.incarnation}"):
            return str(holder)
        return None

    def _take(self, conn: Connection, session_id: int, now: float) -> int | None:
        free = or_(
            _l.holder.is_(None),
            _l.holder == self.holder,
            and_(_l.expires_at.is_not(None), _l.expires_at < now),
        )
        return self._upsert_holder(conn, session_id, now, now + self.ttl, free)

    def _upsert_holder(
        self, conn: Connection, session_id: int, now: float, expires: float | None, free: Any
    ) -> int | None:
        ins = insert_for(conn, session_leases).values(
            session_id=session_id,
            holder=self.holder,
            holder_detail=self.detail,
            epoch=1,
            expires_at=expires,
            acquired_at=now,
        )
        stmt = ins.on_conflict_do_update(
            index_elements=["session_id"],
            set_={
                "holder": ins.excluded.holder,
                "holder_detail": ins.excluded.holder_detail,
                "epoch": _l.epoch + 1,
                "expires_at": ins.excluded.expires_at,
                "acquired_at": ins.excluded.acquired_at,
            },
            where=free,
        ).returning(_l.epoch)
        found = conn.execute(stmt).scalar_one_or_none()
        return int(found) if found is not None else None

    def _holder_of(self, conn: Connection, session_id: int) -> str:
        row = conn.execute(
            select(_l.holder, _l.holder_detail).where(_l.session_id == session_id)
        ).one_or_none()
        if row is None:
            return "another process"
        return str(row.holder_detail or row.holder or "another process")

    def release(self, lease: Lease) -> None:
        """Give the session back at once (a clean stop): another may take it now."""
        with self.db.write() as conn:
            conn.execute(
                update(session_leases)
                .where(
                    _l.session_id == lease.session_id,
                    _l.holder == lease.holder,
                    _l.epoch == lease.epoch,
                )
                .values(holder=None, holder_detail=None, expires_at=None)
            )

    def renew(self, leases: Iterable[Lease]) -> set[int]:
        """Extend these leases; returns the session ids that were lost (taken over)."""
        wanted = {lease.session_id: lease for lease in leases}
        if not wanted:
            return set()
        now = time.time()
        with self.db.write() as conn:
            kept = conn.execute(
                update(session_leases)
                .where(_l.session_id.in_(list(wanted)), _l.holder == self.holder)
                .values(expires_at=now + self.ttl)
                .returning(_l.session_id, _l.epoch)
            ).all()
        held = {sid for sid, epoch in kept if wanted[sid].epoch == epoch}
        return set(wanted) - held

    def holder_of(self, session_id: int) -> str | None:
        """Who holds a session now (None: nobody, or an expired lease)."""
        now = time.time()
        with self.db.read() as conn:
            row = conn.execute(
                select(_l.holder, _l.holder_detail, _l.expires_at).where(
                    _l.session_id == session_id
                )
            ).one_or_none()
        if row is None or row.holder is None:
            return None
        if row.expires_at is not None and row.expires_at < now:
            return None
        return str(row.holder_detail or row.holder)

    # Fenced writes.

    @contextmanager
    def fenced(self, lease: Lease) -> Iterator[Connection]:
        """A write transaction that is refused unless `lease` still holds its session."""
        with self.db.write() as conn:
            if check_leases(conn, (lease,)):
                raise Fenced(
                    f"session {lease.session!r} is no longer held by this process "
                    f"(epoch {lease.epoch}): the write was refused"
                )
            yield conn

    def close(self) -> None:
        pass


class FileLockOwnership(Ownership):
    """SQLite: an exclusive OS lock on `<database>.locks/<session>.lock` holds a session.

    The lease row still carries the epoch (writes are fenced the same way), but it
    never expires: the kernel drops the lock when the process ends, even on SIGKILL,
    and whoever takes it next overwrites the row with a new epoch.
    """

    expires = False
    # SQLite in memory has no file to lock: sessions are held within the process.
    _in_memory_locks: ClassVar[dict[tuple[str, int], str]] = {}
    _in_memory_guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, db: Database, holder: str, detail: str, *, ttl: float = DEFAULT_TTL):
        super().__init__(db, holder, detail, ttl=ttl)
        path = db.sqlite_path
        self.folder = path.with_name(path.name + ".locks") if path is not None else None
        self._files: dict[int, int] = {}  # session id -> file descriptor holding its lock
        self._guard = threading.Lock()

    def _lock_path(self, session: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{session}.lock"

    def acquire(self, session_id: int, session: str) -> Lease:
        with self._guard:
            if session_id in self._files:
                raise SessionHeld(session, self.detail)
            if self.folder is None:
                self._lock_in_memory(session_id, session)
            else:
                self._lock_file(session_id, session)
        try:
            now = time.time()
            with self.db.write() as conn:
                # The OS lock is ours: whatever the row says is stale.
                epoch = self._upsert_holder(conn, session_id, now, None, _l.session_id.is_not(None))
            assert epoch is not None
        except BaseException:
            self._unlock(session_id)
            raise
        return Lease(session_id, session, self.holder, epoch)

    def _lock_in_memory(self, session_id: int, session: str) -> None:
        key = (self.db.url, session_id)
        with self._in_memory_guard:
            holder = self._in_memory_locks.get(key)
            if holder is not None:
                raise SessionHeld(session, holder)
            self._in_memory_locks[key] = self.detail
        self._files[session_id] = -1

    def _lock_file(self, session_id: int, session: str) -> None:
        path = self._lock_path(session)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise SessionHeld(session, holder) from None
        except BaseException:
            os.close(fd)
            raise
        note = json.dumps({"holder": self.detail, "since": time.time()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, note, 0)
        self._files[session_id] = fd

    def _unlock(self, session_id: int) -> None:
        with self._guard:
            fd = self._files.pop(session_id, None)
        if fd is None:
            return
        if fd == -1:
            with self._in_memory_guard:
                self._in_memory_locks.pop((self.db.url, session_id), None)
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the lock

    def release(self, lease: Lease) -> None:
        try:
            super().release(lease)
        finally:
            self._unlock(lease.session_id)

    def renew(self, leases: Iterable[Lease]) -> set[int]:
        # Nothing expires; a lease is lost only if the row was taken anyway (it cannot
        # be while we hold the lock, unless someone edited the database by hand).
        wanted = {lease.session_id: lease for lease in leases}
        if not wanted:
            return set()
        with self.db.read() as conn:
            return check_leases(conn, wanted.values())

    def holder_of(self, session_id: int) -> str | None:
        found = super().holder_of(session_id)
        if found is None or self.folder is None:
            return found
        # The row may name a process that died: only a held lock counts.
        with self.db.read() as conn:
            from wasync.store.schema import sessions

            name = conn.execute(
                select(sessions.c.name).where(sessions.c.id == session_id)
            ).scalar_one_or_none()
        if name is None:
            return None
        return _probe(self._lock_path(name))

    def close(self) -> None:
        for session_id in list(self._files):
            self._unlock(session_id)


def _read_holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0)
        return str(json.loads(raw.decode())["holder"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _probe(path: Path) -> str | None:
    """Who holds this lock file now, or None when nobody does."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
