"""Connection lifecycle events: what each means for the session and for reconnecting.

whatsmeow reconnects by itself after an ordinary drop (`Disconnected`) and after a
503/500 connect failure. It stops for good on logout, a replaced stream, a temporary
ban or an outdated client, and stops without retrying on other connect failures; the
engine reconnects (with back-off) only in that last case. A session that is logged
out, replaced or banned is terminal: it is reported once and never retried.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from wasync.domain import events as ev
from wasync.domain.events import SessionStatus
from wasync.engines.neonize.jids import jid_str

# neonize.ConnectFailureReason
_FAILURE_NAMES = {
    1: "generic failure",
    2: "logged out",
    3: "temporarily banned",
    4: "main device gone",
    5: "unknown logout",
    6: "client outdated",
    7: "bad user agent",
    8: "internal server error",
    9: "experimental",
    10: "service unavailable",
}
_LOGOUT_REASONS = {2, 4, 5}
_AUTO_RECONNECTED = {8, 10}
# neonize.TemporaryBan.TempBanReason
_BAN_NAMES = {
    1: "sent to too many people",
    2: "blocked by too many users",
    3: "created too many groups",
    4: "sent too many identical messages",
    5: "broadcast list abuse",
}
_PAIR_SUCCESS = 2


@dataclass(frozen=True, slots=True)
class Outcome:
    events: tuple[ev.Event, ...] = ()
    status: SessionStatus | None = None
    connected: bool | None = None  # the link is up (True) or down (False)
    terminal: bool = False  # never connect again without the user
    reconnect: bool = False  # whatsmeow gave up; the engine must reconnect
    failure: str | None = None  # why a pending connect() fails


def connected(own_jid: str | None) -> Outcome:
    return Outcome((ev.Connected(own_jid),), SessionStatus.CONNECTED, connected=True)


def disconnected() -> Outcome:
    reason = "connection lost; reconnecting"
    return Outcome((ev.Disconnected(reason),), SessionStatus.DISCONNECTED, connected=False)


def logged_out(proto: Any) -> Outcome:
    name = _FAILURE_NAMES.get(proto.Reason, f"reason {proto.Reason}")
    when = "while connecting" if proto.OnConnect else "while connected"
    reason = f"WhatsApp logged this device out ({name}, {when}); pair it again"
    return _terminal(reason, SessionStatus.LOGGED_OUT)


def stream_replaced() -> Outcome:
    reason = (
        "another client connected with this session's keys (stream replaced); "
        "stop the other copy, or pair this one again"
    )
    return _terminal(reason, SessionStatus.REPLACED)


def temporary_ban(proto: Any) -> Outcome:
    name = _BAN_NAMES.get(proto.Code, f"code {proto.Code}")
    reason = f"WhatsApp temporarily banned this account ({name})"
    if proto.Expire > 0:
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=proto.Expire)
        reason += (
            f"; the ban lifts in about {_duration(proto.Expire)} (~{until:%Y-%m-%d %H:%M} UTC)"
        )
    return _terminal(reason, SessionStatus.BANNED)


def client_outdated() -> Outcome:
    reason = (
        "WhatsApp refuses this client version as outdated: upgrade neonize "
        "(wasync pins 0.5.2) and reconnect"
    )
    return Outcome(
        (ev.Disconnected(reason),),
        SessionStatus.DISCONNECTED,
        connected=False,
        terminal=True,
        failure=reason,
    )


def connect_failure(proto: Any) -> Outcome:
    code = int(proto.Reason)
    if code in _LOGOUT_REASONS:
        return logged_out(_LoggedOutLike(code))
    name = _FAILURE_NAMES.get(code, f"reason {code}")
    detail = f": {proto.Message}" if proto.Message else ""
    reason = f"WhatsApp refused the connection ({name}{detail}); retrying"
    return Outcome(
        (ev.Disconnected(reason),),
        SessionStatus.DISCONNECTED,
        connected=False,
        reconnect=code not in _AUTO_RECONNECTED,
        failure=reason,
    )


def pair_status(proto: Any) -> Outcome:
    if proto.Status == _PAIR_SUCCESS:
        jid = jid_str(proto.ID)
        return Outcome(() if jid is None else (ev.Paired(jid),))
    reason = f"the phone could not link this device: {proto.Error or 'unknown error'}"
    return Outcome((ev.PairingFailed(reason),), failure=reason)


def keepalive_timeout(proto: Any) -> Outcome:
    last = int(proto.LastSuccess) if proto.LastSuccess > 0 else None
    return Outcome((ev.KeepAliveLost(int(proto.ErrorCount), last),))


def keepalive_restored() -> Outcome:
    return Outcome((ev.KeepAliveRestored(),))


def offline_preview(proto: Any) -> Outcome:
    return Outcome((ev.OfflineSyncStarted(int(proto.Total)),))


def offline_completed(proto: Any) -> Outcome:
    return Outcome((ev.OfflineSyncCompleted(int(proto.Count)),))


def _terminal(reason: str, status: SessionStatus) -> Outcome:
    return Outcome(
        (ev.LoggedOut(reason, status),),
        status,
        connected=False,
        terminal=True,
        failure=reason,
    )


@dataclass(frozen=True, slots=True)
class _LoggedOutLike:
    Reason: int
    OnConnect: bool = True


def _duration(secs: int) -> str:
    if secs >= 86_400:
        return f"{secs / 86_400:.1f} days"
    if secs >= 3_600:
        return f"{secs / 3_600:.1f} hours"
    return f"{max(1, secs // 60)} minutes"
