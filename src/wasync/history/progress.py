"""`history.progress` events: one per committed page, and one per failed try."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HistoryProgress:
    chat_jid: str
    kind: str  # "older", "full" or "gap"
    job_id: int
    page: int  # pages this job has committed so far
    messages_synced: int  # messages those pages held
    fully_synced: bool  # the chat's history is complete back to its first message
    done: bool = False  # the job finished (target reached, start reached or gap closed)
    error: str | None = None
    will_retry: bool = False  # after an error: the job tries again (with back-off)

    def as_payload(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "chatJid": self.chat_jid,
            "kind": self.kind,
            "jobId": self.job_id,
            "page": self.page,
            "messagesSynced": self.messages_synced,
            "fullySynced": self.fully_synced,
            "done": self.done,
        }
        if self.error is not None:
            payload["error"] = self.error
            payload["willRetry"] = self.will_retry
        return payload


ProgressListener = Callable[[HistoryProgress], Awaitable[None] | None]


async def emit(listener: ProgressListener | None, progress: HistoryProgress) -> None:
    if listener is None:
        return
    out = listener(progress)
    if inspect.isawaitable(out):
        await out
