"""Private files: the data directory holds every message, the webhook secrets and the
API key, so what wasync creates there is its owner's alone.

Directories are 0700 and files 0600 whatever the process umask (which only ever
removes bits: the usual 022 would leave 0755 and 0644). An existing data directory
that others can read is tightened when a command starts, and says so once.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` and its missing parents with mode 0700; existing ones are kept."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current.parent != current:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # made meanwhile by another process: its mode is its business
        os.chmod(folder, PRIVATE_DIR)  # exact, whatever the umask took away
    return path


def tighten(path: Path, mode: int) -> int | None:
    """Remove every permission beyond `mode` from an existing file or directory.

    Returns the old mode when it changed, None otherwise (absent, or already tight).
    """
    try:
        old = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if not old & ~mode:
        return None
    os.chmod(path, old & mode)
    return old


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if absent; tighten it to 0600 if not."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        tighten(path, PRIVATE_FILE)
    else:
        os.close(fd)


def secure_data_dir(data_dir: Path) -> None:
    """Create the data directory 0700, or tighten an existing one, saying so."""
    if not data_dir.exists():
        private_dir(data_dir)
        return
    if not data_dir.is_dir():
        return  # the database's own check says what is wrong with it
    try:
        old = tighten(data_dir, PRIVATE_DIR)
    except OSError as exc:  # not ours (a shared mount, say): say so, and go on
        log.warning(
            "the data directory %s is readable by other users and its mode cannot be changed: %s",
            data_dir,
            exc.strerror or exc,
        )
        return
    if old is not None:
        log.warning(
            "the data directory %s was open to other users (mode %04o); it is now %04o",
            data_dir,
            old,
            old & PRIVATE_DIR,
        )
