"""Media as files under `<data-dir>/media`: the key is the path below it.

Writes are atomic: a temporary file (mode 0600, a name starting with a dot, which no
key has) in the same folder, fsync, rename, fsync of the folder; a reader sees the old
object or the new one, never half of one. A writer killed mid-write leaves its
temporary file behind; the next write of that key removes it.

Keys are checked (media/keys.py), and every read, write and delete resolves the path
and checks it stays inside the root anyway, so a symlink planted in the folder (a
file or a folder of it) cannot lead outside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final

from sqlalchemy import Connection

from wasync.errors import StoreError
from wasync.files import private_dir
from wasync.media.keys import InvalidMediaKey, check_key, check_prefix
from wasync.media.store import CHUNK_BYTES, MediaStat, check_size

_TEMP_SUFFIX: Final = ".tmp"
_SHA_CACHE_MAX: Final = 10_000


class LocalMediaStore:
    kind = "local"
    transactional = False

    def __init__(self, root: Path) -> None:
        self.root = root
        # SHA-256 per file version (inode, mtime, size): hashed once, not per request.
        self._sha: dict[Path, tuple[tuple[int, int, int], str]] = {}
        self._sha_lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def local_path(self, key: str) -> Path | None:
        try:
            return self._resolved(self._path(key))
        except InvalidMediaKey:
            return None

    def _resolved(self, path: Path) -> Path | None:
        """`path` with symlinks resolved, if it is a file inside the root."""
        try:
            resolved = path.resolve(strict=True)
            root = self.root.resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a symlink loop
            return None
        if not resolved.is_relative_to(root) or not resolved.is_file():
            return None
        return resolved

    def _creatable(self, folder: Path) -> bool:
        """Whether making `folder` creates nothing outside the root: its deepest
        existing part (or link) below the root leads inside it."""
        current = folder
        while current != self.root and not current.exists() and not current.is_symlink():
            current = current.parent
        if current == self.root and not current.exists():
            return True  # the first write of all: the root is made with the rest
        return self._inside(current)

    def _inside(self, folder: Path) -> bool:
        """Whether `folder`, symlinks resolved, is the root or inside it."""
        try:
            return folder.resolve(strict=True).is_relative_to(self.root.resolve(strict=True))
        except (OSError, RuntimeError):  # missing, or a symlink loop
            return False

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        conn: Connection | None = None,
    ) -> MediaStat:
        path = self._path(key)
        check_size(key, len(data))
        if not self._creatable(path.parent):
            raise StoreError(f"{key}: its folder leads outside {self.root}; not written")
        folder = private_dir(path.parent)
        self._remove_leftovers(path)
        # mkstemp makes the file 0600: other people's pictures, for the owner alone.
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TEMP_SUFFIX, dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_dir(folder)
        return MediaStat(key, len(data), hashlib.sha256(data).hexdigest(), content_type)

    @staticmethod
    def _remove_leftovers(path: Path) -> None:
        # Only one writer writes a key at a time (the holder of the session or of the
        # job's lease), so any temporary file of it is abandoned.
        for leftover in path.parent.glob(f".{path.name}.*{_TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def _open(self, key: str) -> BinaryIO | None:
        path = self._resolved(self._path(key))
        if path is None:
            return None
        try:
            return path.open("rb")
        except OSError:  # removed or replaced in between
            return None

    def get(self, key: str) -> bytes | None:
        f = self._open(key)
        if f is None:
            return None
        with f:
            return f.read()

    def stat(self, key: str) -> MediaStat | None:
        f = self._open(key)
        if f is None:
            return None
        with f:
            # fstat of the open file: a rename in between cannot pair new bytes with
            # the old version.
            st = os.fstat(f.fileno())
            version = (st.st_ino, st.st_mtime_ns, st.st_size)
            path = Path(f.name)
            with self._sha_lock:
                cached = self._sha.get(path)
            if cached is not None and cached[0] == version:
                return MediaStat(key, st.st_size, cached[1])
            digest = hashlib.sha256()
            while chunk := f.read(CHUNK_BYTES):
                digest.update(chunk)
        sha = digest.hexdigest()
        with self._sha_lock:
            if len(self._sha) >= _SHA_CACHE_MAX:  # bounded: a cache, not an index
                self._sha.clear()
            self._sha[path] = (version, sha)
        return MediaStat(key, st.st_size, sha)

    def exists(self, key: str) -> bool:
        return self._resolved(self._path(key)) is not None

    def stream(
        self, key: str, chunk_size: int = CHUNK_BYTES, *, start: int = 0, end: int | None = None
    ) -> Iterator[bytes] | None:
        f = self._open(key)
        if f is None:
            return None

        def chunks() -> Iterator[bytes]:
            with f:
                f.seek(start)
                left = math.inf if end is None else max(0, end - start)
                while left > 0 and (chunk := f.read(int(min(chunk_size, left)))):
                    left -= len(chunk)
                    yield chunk

        return chunks()

    def keys(self, prefix: str) -> list[str]:
        folder = self.root / check_prefix(prefix)
        if not self._inside(folder):
            return []
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            base = Path(dirpath).relative_to(self.root).as_posix()
            found.extend(f"{base}/{name}" for name in filenames if not name.startswith("."))
        return sorted(found)

    def delete(self, key: str, *, conn: Connection | None = None) -> bool:
        path = self._path(key)
        if not self._inside(path.parent):
            return False
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return False
        _fsync_dir(path.parent)
        return True

    def delete_prefix(self, prefix: str, *, conn: Connection | None = None) -> int:
        folder = self.root / check_prefix(prefix)
        if not self._inside(folder.parent):
            return 0  # a linked folder above it: nothing of ours is there
        if folder.is_symlink():
            # A linked folder: remove the link, never what it points at.
            folder.unlink()
            return 0
        if not folder.is_dir():
            return 0
        count = len(self.keys(prefix))
        shutil.rmtree(folder, ignore_errors=True)
        return count


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is; not possible on Windows.
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
