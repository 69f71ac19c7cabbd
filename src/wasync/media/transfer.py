"""Copying the local media directory into another store (`wasync media import`).

A deployment that switches to the database store (a PostgreSQL cluster from before
the setting existed, say) keeps its pictures: without the copy, each node would find
none, download every picture again and announce each as new. Names already in the
target are left alone (another node, or an earlier run, stored them), so running it
again, or on every node, is harmless. Files whose names no store accepts (anything
but what wasync writes) are reported and skipped, and so are the media of sessions
the database does not have (left by a delete that could not remove its files): in
the database nothing would ever delete them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from wasync.media.keys import InvalidMediaKey, check_prefix
from wasync.media.layout import AVATARS, session_prefixes
from wasync.media.local import LocalMediaStore
from wasync.media.store import MediaStore, MediaTooLarge

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ImportReport:
    copied: int = 0
    bytes_copied: int = 0
    already_there: int = 0
    skipped: list[str] = field(default_factory=list)  # what could not be copied, and why

    def as_json(self) -> dict[str, object]:
        return {
            "copied": self.copied,
            "bytesCopied": self.bytes_copied,
            "alreadyThere": self.already_there,
            "skipped": self.skipped,
        }


def local_keys(local: LocalMediaStore) -> list[str]:
    """Every key the local store holds, folder by folder."""
    if not local.root.is_dir():
        return []
    found: list[str] = []
    for folder in sorted(local.root.iterdir()):
        if not folder.is_dir():
            continue
        try:
            found.extend(local.keys(check_prefix(folder.name + "/")))
        except InvalidMediaKey:
            continue  # not a folder wasync writes
    return found


def import_local(
    local: LocalMediaStore,
    target: MediaStore,
    *,
    sessions: Iterable[tuple[str, int]],
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Copy every object of `local` that `target` lacks and one of `sessions` (name,
    id) owns; `progress(done, total)`."""
    report = ImportReport()
    owned = tuple(p for name, sid in sessions for p in session_prefixes(name, sid))
    keys = local_keys(local)
    for done, key in enumerate(keys, 1):
        try:
            if not key.startswith(owned):
                report.skipped.append(f"{key}: belongs to no session in the database")
            elif target.exists(key):
                report.already_there += 1
            else:
                data = local.get(key)
                if data is None:  # gone meanwhile, or a link leading outside
                    report.skipped.append(f"{key}: not readable")
                else:
                    is_picture = key.startswith(AVATARS + "/")
                    target.put(key, data, content_type="image/jpeg" if is_picture else None)
                    report.copied += 1
                    report.bytes_copied += len(data)
        except (InvalidMediaKey, MediaTooLarge) as exc:
            report.skipped.append(f"{key}: {exc}")
        if progress is not None:
            progress(done, len(keys))
    return report
