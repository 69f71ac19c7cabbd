"""One session, one process: holding, fencing, giving back, taking over (SQLite and
PostgreSQL), and the same across real processes on SQLite's file locks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from wasync.domain.events import SessionStatus
from wasync.sessions.ownership import Fenced, Ownership, SessionHeld
from wasync.store.db import Database
from wasync.store.schema import session_leases, sessions
from wasync.store.sessions import ensure_session, set_status


def _session(db: Database, name: str = "s") -> int:
    with db.write() as conn:
        return ensure_session(conn, name, "simulator")


def test_a_held_session_cannot_be_taken_and_says_by_whom(db: Database) -> None:
    sid = _session(db)
    a = Ownership.for_database(db, "node-a", "wasync serve (node a)", ttl=60)
    b = Ownership.for_database(db, "node-b", "wasync sync (pid 2)", ttl=60)
    lease = a.acquire(sid, "s")
    with pytest.raises(SessionHeld, match=r"session 's' is running in wasync serve \(node a\)"):
        b.acquire(sid, "s")
    assert b.holder_of(sid) == "wasync serve (node a)"
    a.release(lease)
    taken = b.acquire(sid, "s")
    assert taken.epoch == lease.epoch + 1  # every change of hands is a new epoch
    b.release(taken)
    a.close()
    b.close()


def test_writes_of_a_former_holder_are_refused(db: Database) -> None:
    sid = _session(db)
    a = Ownership.for_database(db, "node-a", "node a", ttl=60)
    old = a.acquire(sid, "s")
    with a.fenced(old) as conn:
        set_status(conn, sid, SessionStatus.CONNECTED)
    # Another holder took over (an expired lease, say): the epoch moved on.
    with db.write() as conn:
        conn.execute(
            session_leases.update()
            .where(session_leases.c.session_id == sid)
            .values(holder="node-b", epoch=session_leases.c.epoch + 1)
        )
    with pytest.raises(Fenced, match="no longer held"), a.fenced(old) as conn:
        set_status(conn, sid, SessionStatus.LOGGED_OUT)
    with db.read() as conn:
        assert conn.execute(select(sessions.c.status)).scalar_one() == "connected"
    assert a.renew([old]) == {sid}  # renewing says it was lost
    a.close()


@pytest.mark.postgres
def test_an_expired_lease_is_taken_over_and_renewal_keeps_it(pg_schema_url: str) -> None:
    db = Database(pg_schema_url)
    db.migrate()
    try:
        sid = _session(db)
        a = Ownership.for_database(db, "node-a", "node a", ttl=0.5)
        b = Ownership.for_database(db, "node-b", "node b", ttl=0.5)
        first = a.acquire(sid, "s")
        assert a.renew([first]) == set()
        with pytest.raises(SessionHeld):
            b.acquire(sid, "s")
        time.sleep(0.7)  # a stops renewing (dead, paused or cut off)
        assert a.holder_of(sid) is None  # nobody, as far as anyone can tell
        second = b.acquire(sid, "s")
        assert second.epoch == first.epoch + 1
        assert a.renew([first]) == {sid}  # a learns it lost the session
        with pytest.raises(Fenced), a.fenced(first):
            pass
    finally:
        db.close()


_HOLD = textwrap.dedent(
    """
    import sys, time
    from wasync.sessions.ownership import Ownership
    from wasync.store.db import Database
    db = Database(sys.argv[1])
    own = Ownership.for_database(db, "other", "wasync sync --session s (pid 99)")
    own.acquire(int(sys.argv[2]), "s")
    print("held", flush=True)
    time.sleep(60)
    """
)


def test_sqlite_file_locks_hold_across_processes_and_die_with_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wasync.db'}"
    db = Database(url)
    db.migrate()
    sid = _session(db)
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, url, str(sid)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        me = Ownership.for_database(db, "me", "wasync serve", ttl=60)
        with pytest.raises(SessionHeld, match=r"wasync sync --session s \(pid 99\)"):
            me.acquire(sid, "s")
        assert me.holder_of(sid) == "wasync sync --session s (pid 99)"
        child.kill()  # SIGKILL: no goodbye, the kernel drops the lock
        child.wait(10)
        assert me.holder_of(sid) is None
        lease = me.acquire(sid, "s")
        assert lease.epoch == 2
        me.release(lease)
        me.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
        db.close()


@pytest.mark.postgres
def test_a_dead_process_of_this_host_is_taken_over_without_waiting(pg_schema_url: str) -> None:
    """PostgreSQL: a holder that was a process of this host and is gone (a restart after a
    crash) does not make the next process wait out the lease."""
    db = Database(pg_schema_url)
    db.migrate()
    try:
        sid = _session(db)
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        import socket

        dead = Ownership.for_database(
            db, f"jobs:{socket.gethostname()}:{gone.pid}:dead0001", "dead", ttl=3600
        )
        dead.acquire(sid, "s")
        me = Ownership.for_database(db, "me", "me", ttl=3600)
        lease = me.acquire(sid, "s")
        assert lease.holder == "me"
    finally:
        db.close()
