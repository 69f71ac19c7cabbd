"""The engine's calls into whatsmeow: lists, pictures, media, pairing by phone, logout.

Every call goes through `call()` (the connection gate), and every neonize error is
turned into the port's errors here, with whatsmeow's own sentence kept.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from wasync.domain import events as ev
from wasync.domain.jid import normalize_phone
from wasync.domain.models import (
    Chat,
    Contact,
    Group,
    MediaInfo,
    Message,
    MessageAnchor,
    PictureResult,
)
from wasync.engines.base import CapabilityMissing, EngineError
from wasync.engines.neonize import loader
from wasync.engines.neonize.groups import group_from_info
from wasync.engines.neonize.jids import IdentityMap, is_lid, jid_str, phone_of
from wasync.engines.neonize.pictures import (
    download_error,
    error_text,
    picture_error,
    picture_result,
)
from wasync.engines.neonize.waiters import HistoryWaiters

if TYPE_CHECKING:
    from wasync.engines.neonize.options import NeonizeOptions

T = TypeVar("T")
USER_INFO_BATCH = 50

NO_HISTORY_REQUESTS = (
    "older history is not available from the neonize engine: neonize 0.5.2 cannot send "
    "WhatsApp's on-demand history request, so wasync has the history the phone sent "
    "when it was paired (choose its depth with `wasync pair --full-history` or "
    "`--history-days N`) plus everything received live since"
)


@dataclass(frozen=True, slots=True)
class UserInfo:
    jid: str
    status: str | None = None
    picture_id: str | None = None
    verified_name: str | None = None


def history_request_call(client: Any) -> Any:
    """neonize's call that sends the on-demand history request as a peer message, when
    the installed neonize has it (its pull request #215 adds `request_history_sync`;
    check the argument order when a release ships it). None on neonize 0.5.2."""
    send = getattr(client, "request_history_sync", None)
    return send if callable(send) else None


class QueriesMixin:
    options: NeonizeOptions
    ids: IdentityMap
    history_waiters: HistoryWaiters
    history_timeout: float
    _groups: dict[str, Group]
    _qr_seen: asyncio.Event

    if TYPE_CHECKING:

        @property
        def client(self) -> Any: ...

        async def call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T: ...

        def _emit(self, events: list[ev.Event] | tuple[ev.Event, ...]) -> None: ...

        def proto_jid(self, jid: str, *, keep_device: bool = False) -> Any: ...

    async def list_contacts(self) -> list[Contact]:
        """Everyone in whatsmeow's local contact store (no network)."""
        exc = loader.module("exc")
        try:
            rows = await self.call("list contacts", self.client.contact.get_all_contacts)
        except exc.ContactStoreError as e:
            raise EngineError(f"reading the contact store failed: {error_text(e)}") from e
        for row in rows:
            raw = jid_str(row.JID)
            if is_lid(raw) and self.ids.preferred(raw) == raw:
                await self._learn_phone_of(row.JID, raw)
        contacts = []
        for row in rows:
            jid = self.ids.preferred(jid_str(row.JID))
            if jid is None:
                continue
            info = row.Info
            contacts.append(
                Contact(
                    jid=jid,
                    name=info.FullName or info.FirstName or None,
                    push_name=info.PushName or None,
                    business_name=info.BusinessName or None,
                    phone=phone_of(jid),
                    lid=self.ids.lid_of(jid),
                )
            )
        return contacts

    async def _learn_phone_of(self, proto: Any, lid: str | None) -> None:
        try:
            pn = await self.call(
                "look up a phone number", lambda: self.client.get_pn_from_lid(proto)
            )
        except Exception:
            return  # unknown mapping: the LID stays the key
        self.ids.learn(lid, jid_str(pn))

    async def list_groups(self) -> list[Group]:
        exc = loader.module("exc")
        try:
            infos = await self.call("list groups", self.client.get_joined_groups)
        except exc.GetJoinedGroupsError as e:
            raise EngineError(f"listing groups failed: {error_text(e)}") from e
        groups = []
        for info in infos:
            group = group_from_info(info, self.ids)
            if group is not None:
                self._groups[group.jid] = group
                groups.append(group)
        return groups

    async def list_chats(self) -> list[Chat]:
        raise CapabilityMissing(
            "the neonize engine cannot list chats: whatsmeow keeps no chat list; chats "
            "arrive with the history the phone sends after pairing and with live messages"
        )

    async def request_history(
        self, chat_jid: str, before: MessageAnchor | None, count: int
    ) -> list[Message]:
        """The port's semantics (as the Baileys engine): anchored on a stored message,
        the answer an ON_DEMAND history sync, completion from the phone's word.

        neonize 0.5.2 cannot send the request (no peer message): CapabilityMissing,
        until a neonize release has the call (`history_request_call`).
        """
        send = history_request_call(self.client)
        if send is None:
            raise CapabilityMissing(NO_HISTORY_REQUESTS)
        if before is None:
            raise CapabilityMissing(
                "the phone answers only history requests anchored on a stored message"
            )
        waiter = self.history_waiters.expect(chat_jid)
        try:
            target = self.proto_jid(chat_jid)
            # WhatsApp reads the anchor's timestamp as seconds (neonize's own builder
            # puts milliseconds there, which the phone ignores).
            await self.call(
                "request history",
                lambda: send(
                    target, before.key.message_id, before.from_me, before.timestamp, count
                ),
            )
            return await self.history_waiters.wait(waiter, chat_jid, self.history_timeout)
        finally:
            self.history_waiters.forget(chat_jid, waiter)

    async def profile_picture(self, jid: str, existing_id: str | None) -> PictureResult:
        proto = loader.module("proto")
        exc = loader.module("exc")
        params = proto.GetProfilePictureParams(
            Preview=False, ExistingID=existing_id or "", IsCommunity=False
        )
        target = self.proto_jid(jid)
        try:
            info = await self.call(
                "fetch a profile picture",
                lambda: self.client.get_profile_picture(target, params),
            )
        except exc.GetProfilePictureError as e:
            return picture_error(e, jid)
        return picture_result(info, existing_id)

    async def download(self, media: MediaInfo) -> bytes:
        exc = loader.module("exc")
        message = _media_message(media)
        try:
            data: bytes = await self.call(
                "download media", lambda: self.client.download_any(message)
            )
        except exc.DownloadError as e:
            raise download_error(e) from e
        return data

    async def user_info(self, jids: Sequence[str]) -> list[UserInfo]:
        """Status, picture id and verified business name, asked in batches."""
        exc = loader.module("exc")
        out: list[UserInfo] = []
        for start in range(0, len(jids), USER_INFO_BATCH):
            batch = [self.proto_jid(j) for j in jids[start : start + USER_INFO_BATCH]]

            def fetch(batch: list[Any] = batch) -> Awaitable[Any]:
                return self.client.get_user_info(*batch)  # type: ignore[no-any-return]

            try:
                rows = await self.call("fetch user info", fetch)
            except exc.GetUserInfoError as e:
                raise EngineError(f"fetching user info failed: {error_text(e)}") from e
            for row in rows:
                jid = self.ids.preferred(jid_str(row.JID))
                if jid is None:
                    continue
                info = row.UserInfo
                verified = None
                if info.HasField("VerifiedName") and info.VerifiedName.HasField("Details"):
                    verified = info.VerifiedName.Details.verifiedName or None
                out.append(UserInfo(jid, info.Status or None, info.PictureID or None, verified))
        return out

    async def pair_phone(self, phone: str) -> str:
        """A phone pair code: on the phone, Linked devices > Link with phone number."""
        if not self.options.allow_pairing:
            raise EngineError("this engine was not started for pairing")
        enum = loader.module("enum")
        exc = loader.module("exc")
        digits = normalize_phone(phone)
        try:
            await asyncio.wait_for(self._qr_seen.wait(), self.options.connect_timeout)
        except TimeoutError:
            raise EngineError("WhatsApp did not start the pairing in time") from None
        try:
            code: str = await self.client.PairPhone(
                digits,
                True,
                client_name=enum.ClientName.LINUX,
                # neonize would derive it from DeviceProps' platform, whose numbers
                # mean other things in the pair-code enum.
                client_type=enum.ClientType.CHROME,
            )
        except exc.PairPhoneError as e:
            raise EngineError(f"WhatsApp refused a pair code for +{digits}: {error_text(e)}") from e
        self._emit([ev.PairingCode(code, "phone")])
        return code

    async def logout(self) -> None:
        exc = loader.module("exc")
        try:
            await self.call("log out", self.client.logout)
        except exc.LogoutError as e:
            raise EngineError(f"logging out failed: {error_text(e)}") from e

    async def _refresh_group(self, jid: str) -> None:
        exc = loader.module("exc")
        target = self.proto_jid(jid)
        try:
            info = await self.call("refresh a group", lambda: self.client.get_group_info(target))
        except exc.GetGroupInfoError as e:
            raise EngineError(f"refreshing group {jid} failed: {error_text(e)}") from e
        group = group_from_info(info, self.ids)
        if group is not None:
            self._groups[group.jid] = group
            self._emit([ev.GroupUpserted(group)])


def _media_message(media: MediaInfo) -> Any:
    """A waE2E.Message that whatsmeow's DownloadAny can fetch and decrypt.

    The media type picks the decryption keys; stickers use the image keys.
    """
    e2e = loader.module("e2e")
    mime = media.mimetype or ""
    field, cls = "documentMessage", e2e.DocumentMessage
    if mime.startswith("image/"):
        field, cls = "imageMessage", e2e.ImageMessage
    elif mime.startswith("video/"):
        field, cls = "videoMessage", e2e.VideoMessage
    elif mime.startswith("audio/"):
        field, cls = "audioMessage", e2e.AudioMessage
    body = cls(
        URL=media.url or "",
        mimetype=mime,
        directPath=media.direct_path or "",
        mediaKey=base64.b64decode(media.media_key) if media.media_key else b"",
        fileSHA256=bytes.fromhex(media.sha256) if media.sha256 else b"",
        fileEncSHA256=bytes.fromhex(media.enc_sha256) if media.enc_sha256 else b"",
        fileLength=media.size or 0,
    )
    message = e2e.Message()
    getattr(message, field).CopyFrom(body)
    return message
