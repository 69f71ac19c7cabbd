"""The neonize engine: whatsmeow's events in, domain events out.

neonize schedules one task per whatsmeow event on our loop, and events are acked to
WhatsApp before we see them (at most once). So every handler only maps (pure
functions) and hands the result to the `events()` queue at once, in arrival order
(handlers never await before enqueueing); anything slow (a group fetch) runs in a
supervised background task. A handler that fails is logged with the event it failed
on and counted, never dropped silently.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from wasync.domain import events as ev
from wasync.domain.events import SessionStatus
from wasync.domain.jid import parse_jid
from wasync.domain.models import Group
from wasync.engines.base import Capabilities, EngineError, LoggedOutError, TransientEngineError
from wasync.engines.neonize import lifecycle, loader
from wasync.engines.neonize.connection import Connection
from wasync.engines.neonize.groups import changed_group, group_from_info, is_deleted
from wasync.engines.neonize.history import history_sync_events, on_demand_page
from wasync.engines.neonize.jids import IdentityMap, canonical, jid_str
from wasync.engines.neonize.messages import live_events
from wasync.engines.neonize.options import NeonizeOptions, device_props
from wasync.engines.neonize.queries import QueriesMixin, history_request_call
from wasync.engines.neonize.waiters import HistoryWaiters

log = logging.getLogger(__name__)
ON_DEMAND = 6  # waHistorySync.HistorySync.HistorySyncType.ON_DEMAND

CAPABILITIES = Capabilities(
    on_demand_history=False,  # neonize 0.5.2 cannot send the peer request (ENGINE.md)
    pair_code=True,
    list_chats=False,  # whatsmeow keeps no chat list; chats come with history
    list_contacts=True,
    list_groups=True,
    profile_pictures=True,
    media_download=True,
)


class NotPaired(LoggedOutError):
    """The session store holds no paired device."""


class NeonizeEngine(Connection, QueriesMixin):
    """One WhatsApp account through neonize (whatsmeow)."""

    def __init__(self, options: NeonizeOptions) -> None:
        super().__init__(options)
        self.ids = IdentityMap()
        self.handler_errors = 0
        self._own_jid = options.own_jid
        self._groups: dict[str, Group] = {}
        self._client: Any = None
        self._qr_seen = asyncio.Event()
        self.history_waiters = HistoryWaiters()
        self.history_timeout = 60.0

    # --- the port ----------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        if self._client is not None and history_request_call(self._client) is not None:
            # A neonize that can send the request: older history on demand works.
            return dataclasses.replace(CAPABILITIES, on_demand_history=True)
        return CAPABILITIES

    @property
    def own_jid(self) -> str | None:
        self._learn_me()
        return self._own_jid

    # --- the neonize client --------------------------------------------------------

    @property
    def client(self) -> Any:
        """The NewAClient, built on first use with every handler registered.

        Building it starts nothing: no thread, no network, no file.
        """
        if self._client is None:
            self._client = self._build_client()
        return self._client

    def _build_client(self) -> Any:
        nz = loader.module("client")
        evs = loader.module("events")
        opts = self.options
        jid = self.proto_jid(opts.device_jid, keep_device=True) if opts.device_jid else None
        client = nz.NewAClient(
            opts.store.neonize_name,
            jid=jid,
            props=device_props(opts),
            uuid=opts.session,
            # In a shared PostgreSQL store, "no device given" must mean a new one, not
            # the first stored (another session's).
            new_device=jid is None and not opts.store.is_file,
        )
        handlers: dict[Any, Callable[[Any], None]] = {
            evs.MessageEv: self._on_message,
            evs.HistorySyncEv: self._on_history,
            evs.PictureEv: self._on_picture,
            evs.JoinedGroupEv: self._on_joined_group,
            evs.GroupInfoEv: self._on_group_info,
            evs.ConnectedEv: lambda _: self._apply(lifecycle.connected(self.own_jid)),
            evs.DisconnectedEv: lambda _: self._apply(lifecycle.disconnected()),
            evs.LoggedOutEv: lambda p: self._apply(lifecycle.logged_out(p)),
            evs.StreamReplacedEv: lambda _: self._apply(lifecycle.stream_replaced()),
            evs.TemporaryBanEv: lambda p: self._apply(lifecycle.temporary_ban(p)),
            evs.KeepAliveTimeoutEv: lambda p: self._apply(lifecycle.keepalive_timeout(p)),
            evs.KeepAliveRestoredEv: lambda _: self._apply(lifecycle.keepalive_restored()),
            evs.ConnectFailureEv: lambda p: self._apply(lifecycle.connect_failure(p)),
            evs.ClientOutdatedEv: lambda _: self._apply(lifecycle.client_outdated()),
            evs.PairStatusEv: self._on_pair_status,
            evs.OfflineSyncPreviewEv: lambda p: self._apply(lifecycle.offline_preview(p)),
            evs.OfflineSyncCompletedEv: lambda p: self._apply(lifecycle.offline_completed(p)),
        }
        # neonize would call the Go Stop at exit, which can block on a dial; we stop it.
        client._stop_finalizer.detach()
        for event_type, fn in handlers.items():
            client.event(event_type)(self._guarded(event_type.__name__, fn))
        qr = self._guarded("QR", self._on_qr)
        client.event.qr(qr)
        return client

    def _guarded(
        self, name: str, fn: Callable[[Any], None]
    ) -> Callable[[Any, Any], Awaitable[None]]:
        async def handler(_client: Any, payload: Any) -> None:
            try:
                fn(payload)
            except Exception:
                self.handler_errors += 1
                log.exception(
                    "session %s: the %s handler failed on: %s",
                    self.options.session,
                    name,
                    _summary(payload),
                )

        return handler

    # --- handlers (synchronous: map, then enqueue) ------------------------------------

    def _on_message(self, proto: Any) -> None:
        self._emit(live_events(proto, self.ids, self.own_jid))

    def _on_history(self, proto: Any) -> None:
        data = proto.Data
        if data.syncType == ON_DEMAND:
            # An answer to a request of ours (matched by chat: the event has no id).
            for conv in data.conversations:
                chat = self.ids.preferred(canonical(conv.ID))
                if chat is not None and self.history_waiters.waiting(chat):
                    page, rest = on_demand_page(data, chat, self.ids, self.own_jid)
                    self.history_waiters.answer(chat, page)
                    self._emit([rest])
                    return
        self._emit(history_sync_events(data, self.ids, self.own_jid))

    def _on_picture(self, proto: Any) -> None:
        jid = self.ids.preferred(jid_str(proto.JID))
        if jid is not None:
            stamp = int(proto.Timestamp) if proto.Timestamp > 0 else None
            self._emit([ev.PictureChanged(jid, bool(proto.Remove), stamp)])

    def _on_joined_group(self, proto: Any) -> None:
        group = group_from_info(proto.GroupInfo, self.ids)
        if group is not None:
            self._groups[group.jid] = group
            self._emit([ev.GroupUpserted(group)])

    def _on_group_info(self, proto: Any) -> None:
        jid = jid_str(proto.JID)
        if jid is None:
            return
        if is_deleted(proto):
            self._groups.pop(jid, None)
            log.info("group %s was deleted (%s)", jid, proto.Delete.DeletedReason or "no reason")
            return
        known = self._groups.get(jid)
        if known is None:
            # Only a change was announced; the whole group has to be fetched.
            self.spawn(self._refresh_group(jid), f"refresh-group-{jid}")
            return
        group = changed_group(jid, proto, known, self.ids)
        self._groups[jid] = group
        self._emit([ev.GroupUpserted(group)])

    def _on_pair_status(self, proto: Any) -> None:
        outcome = lifecycle.pair_status(proto)
        for event in outcome.events:
            if isinstance(event, ev.Paired):
                self._own_jid = event.jid
        self._emit(outcome.events)

    def _on_qr(self, data: bytes) -> None:
        code = data.decode() if isinstance(data, bytes | bytearray) else str(data)
        if not self.options.allow_pairing:
            self._fail_pending(
                NotPaired(
                    f"session {self.options.session!r} is not paired with a phone (or WhatsApp "
                    f"logged it out): run `wasync pair --session {self.options.session}`"
                )
            )
            return
        self._set_status(SessionStatus.PAIRING)
        self._qr_seen.set()
        self._resolve_pending()
        self._emit([ev.PairingCode(code, "qr")])

    def _apply(self, outcome: lifecycle.Outcome) -> None:
        if self._terminal is not None:
            # After a logout/ban/replacement whatsmeow still reports the socket closing;
            # that must not overwrite the verdict, nor anything reconnect.
            log.debug("session %s: ignoring %s after the end", self.options.session, outcome)
            return
        if outcome.terminal:
            reason = outcome.failure or "stopped"
            self._terminal = reason
            self._gate.close_for_good(reason)
            self.spawn(self._stop_go(), "stop-for-good")
        if outcome.status is not None:
            self._set_status(outcome.status)
        if outcome.connected is True:
            self._gate.open()
            self.options.backoff.reset()
            self._resolve_pending()
        elif outcome.connected is False:
            self._gate.shut()
        if outcome.failure is not None:
            error: EngineError = (
                LoggedOutError(outcome.failure)
                if outcome.terminal
                else TransientEngineError(outcome.failure)
            )
            if not self._fail_pending(error) and outcome.reconnect:
                self._schedule_reconnect(outcome.failure)
        self._emit(outcome.events)

    # --- plumbing --------------------------------------------------------------------

    def _learn_me(self) -> None:
        me = getattr(self._client, "me", None)
        if me is None:
            return
        pn = jid_str(me.JID) if me.HasField("JID") else None
        lid = jid_str(me.LID) if me.HasField("LID") else None
        self.ids.learn(pn, lid)
        if pn is not None:
            self._own_jid = pn

    def proto_jid(self, jid: str, *, keep_device: bool = False) -> Any:
        parsed = parse_jid(jid)
        return loader.module("proto").JID(
            User=parsed.user,
            Server=parsed.server,
            Device=parsed.device if keep_device else 0,
            RawAgent=0,
            Integrator=0,
            IsEmpty=False,
        )


def _summary(payload: Any) -> str:
    name = type(payload).__name__
    try:
        if name == "Message":
            info = payload.Info
            return f"Message id={info.ID} chat={info.MessageSource.Chat.User}"
        if name == "HistorySync":
            data = payload.Data
            return f"HistorySync type={data.syncType} conversations={len(data.conversations)}"
    except Exception:
        pass
    return name
