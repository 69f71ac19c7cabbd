"""History requests waiting for the phone's answer, matched by chat.

whatsmeow's HistorySyncEv does not carry the request's id, so an ON_DEMAND answer
is matched to the oldest request waiting for its conversation. An answer nobody
waits for (it came after the timeout) is stored as ordinary history.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque

from wasync.engines.base import HistoryPage, HistoryTimeout


class HistoryWaiters:
    def __init__(self) -> None:
        self._by_chat: defaultdict[str, deque[asyncio.Future[HistoryPage]]] = defaultdict(deque)

    def expect(self, chat_jid: str) -> asyncio.Future[HistoryPage]:
        waiter: asyncio.Future[HistoryPage] = asyncio.get_running_loop().create_future()
        self._by_chat[chat_jid].append(waiter)
        return waiter

    def answer(self, chat_jid: str, page: HistoryPage) -> bool:
        """Hand `page` to the oldest request of `chat_jid`; False when none waits."""
        queue = self._by_chat.get(chat_jid)
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(page)
                return True
        return False

    def waiting(self, chat_jid: str) -> bool:
        return any(not w.done() for w in self._by_chat.get(chat_jid, ()))

    async def wait(
        self, waiter: asyncio.Future[HistoryPage], chat_jid: str, patience: float
    ) -> HistoryPage:
        try:
            return await asyncio.wait_for(waiter, patience)
        except TimeoutError:
            raise HistoryTimeout(
                f"the phone did not answer the history request for {chat_jid} within "
                f"{patience:g} s (is it online?); an answer that comes later is still stored"
            ) from None

    def forget(self, chat_jid: str, waiter: asyncio.Future[HistoryPage]) -> None:
        queue = self._by_chat.get(chat_jid)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
        if queue is not None and not queue:
            del self._by_chat[chat_jid]
