"""Export a paired session to a sealed file and import it elsewhere, atomically.

Export reads a consistent snapshot of the session's SQLite file (under a shared lock,
so a running wasync cannot change it mid-read) and writes the sealed file through a
temporary file, fsync and rename. Import decrypts and checks everything in memory,
writes the database to a temporary file next to its destination, verifies it is a
whatsmeow store with a paired device, and only then renames it into place: a wrong
key, a damaged file or a crash leaves no session file behind, half-written or not.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from wasync.sessions.crypto import Manifest, Secret, SessionFileError, open_sealed, seal
from wasync.sessions.location import (
    Device,
    SessionStore,
    paired_device,
    session_file,
    sessions_dir,
)
from wasync.store.sessions import validate_session_name

_SIDE_FILES = ("-journal", "-wal", "-shm")


def snapshot(path: Path) -> bytes:
    """The bytes of a SQLite database as of one consistent moment."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() == "wal":
            # In WAL mode the file alone is not the database: copy through SQLite.
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / "copy.db"
                target = sqlite3.connect(copy)
                try:
                    conn.backup(target)
                finally:
                    target.close()
                return copy.read_bytes()
        # A read transaction holds a SHARED lock: no writer can commit while we read.
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        data = path.read_bytes()
        conn.execute("ROLLBACK")
        return data
    finally:
        conn.close()


def atomic_write(
    path: Path, data: bytes, *, mode: int = 0o600, check: Callable[[Path], None] | None = None
) -> None:
    """Write `data` to `path` all at once: temp file, fsync, optional check, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def export_session(store: SessionStore, secret: Secret, out: Path) -> Manifest:
    if store.path is None:
        raise SessionFileError(
            f"session {store.name!r} keeps its keys in PostgreSQL; export works on session "
            "files (pair it with the SQLite mirror, or on another machine, then import)"
        )
    device = paired_device(store)
    if device is None:
        raise SessionFileError(
            f"session {store.name!r} is not paired (no device in {store.path}): "
            f"run `wasync pair --session {store.name}` first"
        )
    payload = snapshot(store.path)
    manifest = Manifest(
        session=store.name,
        jid=device.user_jid,
        exported_at=int(time.time()),
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
    )
    atomic_write(out, seal(payload, manifest, secret))
    return manifest


def read_sealed(blob_path: Path, secret: Secret) -> tuple[Manifest, bytes]:
    try:
        blob = blob_path.read_bytes()
    except OSError as exc:
        raise SessionFileError(f"cannot read {blob_path}: {exc.strerror or exc}") from None
    return open_sealed(blob, secret)


def install_session(
    data_dir: Path, manifest: Manifest, payload: bytes, *, name: str | None, force: bool
) -> tuple[Path, Device]:
    """Put a decrypted session in place as `<data-dir>/sessions/<name>.db`."""
    target_name = validate_session_name(name or manifest.session)
    path = session_file(data_dir, target_name)
    if path.exists() and not force:
        raise SessionFileError(
            f"session {target_name!r} already exists ({path}); pass --force to replace it "
            "(its current keys are lost) or --name to import under another name"
        )
    found: list[Device] = []

    def check(tmp: Path) -> None:
        found.append(_verify_store(tmp))
        for suffix in _SIDE_FILES:
            # A stale journal of the replaced file would be replayed into the new one.
            with contextlib.suppress(FileNotFoundError):
                path.with_name(path.name + suffix).unlink()

    sessions_dir(data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, payload, check=check)
    return path, found[0]


def _verify_store(path: Path) -> Device:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            ok = conn.execute("PRAGMA quick_check").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise SessionFileError(f"the session database is damaged: {exc}") from None
    if ok is None or ok[0] != "ok":
        raise SessionFileError(f"the session database is damaged: {ok}")
    device = paired_device(SessionStore("check", path=path))
    if device is None:
        raise SessionFileError("the session file holds no paired device")
    return device
