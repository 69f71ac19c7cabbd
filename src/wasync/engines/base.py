"""The engine port: what a WhatsApp engine offers, in domain types only.

Two implementations exist: `simulator` (a deterministic fake network, used by tests,
benchmarks and `wasync demo`) and `neonize` (real WhatsApp through whatsmeow). The
sync layer, API and UI read `capabilities` and say plainly what an engine cannot do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from wasync.domain.events import Event, SessionStatus
from wasync.domain.models import (
    Chat,
    Contact,
    Group,
    MediaInfo,
    Message,
    MessageAnchor,
    PictureResult,
)
from wasync.errors import WasyncError


class EngineError(WasyncError):
    """An engine call failed. `transient` says whether trying again may help."""

    transient: bool = False


class TransientEngineError(EngineError):
    transient = True


class NotConnected(TransientEngineError):
    pass


class RateLimited(TransientEngineError):
    """WhatsApp said "slow down" (429 rate-overlimit)."""

    def __init__(self, message: str = "rate limited by WhatsApp", retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class HistoryTimeout(TransientEngineError):
    """A history request got no answer in time."""


class CapabilityMissing(EngineError):
    """The engine cannot do this at all (for example on-demand history on neonize 0.5.2)."""


class MediaGone(EngineError):
    """The media expired on WhatsApp's servers (404/410): it can no longer be downloaded."""


class LoggedOutError(EngineError):
    """The session was logged out, replaced or banned: re-pairing is needed."""


class HistoryPage(list[Message]):
    """An answer of `request_history`: its messages, newest first, and the changes of
    the span it covers (edits, deletes and reactions, which are entries of the chat's
    timeline in WhatsApp's history), committed together with the messages so that a
    crash can never keep one without the other. A plain list means no changes.

    `more` is the engine's word on what lies before the page: True when older
    messages remain, False when the page reached the start of the chat, None when it
    does not say. A phone says it per conversation (`endOfHistoryTransferType`), and
    it may send fewer messages than asked while more remain, so "fewer than asked"
    is only the fallback when the engine is silent."""

    def __init__(
        self,
        messages: list[Message],
        changes: tuple[Event, ...] = (),
        *,
        more: bool | None = None,
    ) -> None:
        super().__init__(messages)
        self.changes = changes
        self.more = more


def changes_of(page: list[Message]) -> tuple[Event, ...]:
    return page.changes if isinstance(page, HistoryPage) else ()


def reached_start(page: list[Message], count: int) -> bool:
    """Whether a history answer reached the first message of its chat.

    The engine's word (`HistoryPage.more`) when it gives one, else fewer than asked.
    An empty answer ends the paging either way: asking again from the same anchor
    would only get the same answer.
    """
    if not page:
        return True
    more = page.more if isinstance(page, HistoryPage) else None
    if more is not None:
        return not more
    return len(page) < count


@dataclass(frozen=True, slots=True)
class Capabilities:
    on_demand_history: bool = False
    # Answers `request_history(chat, None, n)` with the chat's newest messages. Only
    # the simulator can: a phone answers only requests anchored on a message it has.
    newest_history: bool = False
    pair_code: bool = False
    list_chats: bool = False
    list_contacts: bool = False
    list_groups: bool = False
    profile_pictures: bool = False
    media_download: bool = False


@runtime_checkable
class Engine(Protocol):
    """One WhatsApp account's connection."""

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def status(self) -> SessionStatus: ...

    async def connect(self) -> None:
        """Connect (and, for a new session, start pairing: PairingCode events follow)."""

    async def disconnect(self) -> None: ...

    async def logout(self) -> None: ...

    def events(self) -> AsyncIterator[Event]:
        """Live push of domain events. One consumer; ends after `disconnect()`."""
        ...

    async def pair_phone(self, phone: str) -> str:
        """Ask for a phone pair code (8 characters) to type on the phone."""
        ...

    async def list_contacts(self) -> list[Contact]: ...

    async def list_groups(self) -> list[Group]: ...

    async def list_chats(self) -> list[Chat]: ...

    async def request_history(
        self, chat_jid: str, before: MessageAnchor | None, count: int
    ) -> list[Message]:
        """Up to `count` messages of `chat_jid` older than `before`.

        The anchor is required: a phone answers only requests anchored on a message it
        has (chat, id, from-me, timestamp in seconds). Only an engine whose
        capabilities say `newest_history` answers `before=None` with the newest
        messages; others raise CapabilityMissing. Newest first, as WhatsApp sends them.
        A HistoryPage also carries the edits, deletes and reactions of its span and
        whether more remain (`reached_start` reads it). Raises HistoryTimeout when the
        phone does not answer in time, CapabilityMissing or EngineError.
        """
        ...

    async def profile_picture(self, jid: str, existing_id: str | None) -> PictureResult:
        """The current picture of a contact or group.

        With `existing_id`, an unchanged picture answers PictureUnchanged and costs no
        download. Raises RateLimited or TransientEngineError.
        """
        ...

    async def download(self, media: MediaInfo) -> bytes:
        """The plaintext bytes of a message's media. Raises MediaGone when expired."""
        ...
