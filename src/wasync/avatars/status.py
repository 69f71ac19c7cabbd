"""Where the avatars of a session stand, from the database alone.

Readable by any process (`wasync avatars status` next to a running server): jobs by
state, pictures stored / 'none' / never checked, the configured pace, how many
checks finished over the last minute, and the most recent errors. The live request
rate and any 429 pause are known only to the process running the worker; the API
adds them (`AvatarService.queue_stats`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from wasync.avatars import records
from wasync.avatars.config import Pace
from wasync.avatars.enqueue import KIND
from wasync.jobs import queries as queue

WINDOW = 60.0  # seconds of finished jobs behind `checksPerSecond`
ERRORS = 10


def session_status(conn: Connection, session_id: int, pace: Pace, now: float) -> dict[str, Any]:
    counts = queue.counts(conn, kind=KIND, session_id=session_id)[KIND]
    pictures = records.picture_counts(conn, session_id)
    finished = queue.finished_counts(conn, now - WINDOW, kind=KIND, session_id=session_id)
    done = finished.get(KIND, {}).get(queue.JobState.DONE.value, 0)
    errors = queue.recent_errors(conn, kind=KIND, session_id=session_id, limit=ERRORS)
    return {
        "states": {
            "queued": counts["queued"],
            "running": counts["running"],
            "done": counts["done"],
            "none": pictures["none"],
            "failed": counts["failed"],
        },
        "pictures": pictures,
        "configuredRate": pace.rate,
        "interval": pace.interval,
        "minGap": pace.min_gap,
        "maxGap": pace.max_gap,
        "checksPerSecond": round(done / WINDOW, 4),
        "recentErrors": [
            {
                "id": e["id"],
                "jid": e["unique_key"],
                "state": e["state"],
                "attempts": e["attempts"],
                "error": e["last_error"],
                "at": e["updated_at"],
            }
            for e in errors
        ],
    }
