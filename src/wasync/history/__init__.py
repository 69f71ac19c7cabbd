"""History beyond the initial sync: load older, load full history, gap fill, resume.

- Backfill (`backfill.py`): page a chat backwards from its oldest stored message,
  one page ("load older") or to the start ("load full history").
- Gap fill (`gaps.py`, `gapfill.py`): after a reconnect, find chats that may have
  missed messages the offline queue no longer held, and page back to close the hole.
- Both run as durable jobs (`jobs.py`: kinds of the process's job runner), so a crash
  or restart resumes where it stopped; progress goes out as `history.progress` bus
  events.
"""

from __future__ import annotations

from wasync.history.backfill import BackfillRequest, request_backfill
from wasync.history.kinds import GAP_SCAN, KINDS
from wasync.history.options import HistoryOptions
from wasync.history.progress import HistoryProgress
from wasync.history.service import ChatNotFound, HistoryService, history_service
from wasync.runtime import Runtime

__all__ = [
    "BackfillRequest",
    "ChatNotFound",
    "HistoryOptions",
    "HistoryProgress",
    "HistoryService",
    "history_service",
    "install",
    "request_backfill",
]


def install(
    runtime: Runtime, options: HistoryOptions | None = None, *, kinds: tuple[str, ...] = KINDS
) -> HistoryService:
    """Register the connect hook, the job kinds and the history service on a runtime."""
    service = HistoryService(options or HistoryOptions.from_settings(runtime.settings), kinds=kinds)
    if GAP_SCAN in kinds:  # watermarks and scans are for whoever runs gap fill
        runtime.add_hook(service.hook)
    runtime.add_service(service)
    return service
