"""How a neonize engine is set up: which keys, how much history, how patient."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wasync.engines.neonize import loader
from wasync.sessions.location import SessionStore
from wasync.sessions.supervision import Backoff


@dataclass(frozen=True, slots=True)
class HistoryDepth:
    """How much history the phone sends once, right after pairing.

    The phone decides in the end; by default it sends about three months. `full`
    asks for everything it allows (about a year), `days` for that many days.
    """

    full: bool = False
    days: int | None = None

    def __post_init__(self) -> None:
        if self.days is not None and self.days < 1:
            raise ValueError("history days must be 1 or more")

    def describe(self) -> str:
        if self.days is not None:
            return f"the last {self.days} days"
        if self.full:
            return "everything the phone allows (full sync, about a year)"
        return "the phone's default (about three months)"


@dataclass(frozen=True, slots=True)
class NeonizeOptions:
    session: str
    store: SessionStore
    # whatsmeow's device JID (user:device@server); needed only when one PostgreSQL
    # database holds several sessions' keys.
    device_jid: str | None = None
    own_jid: str | None = None
    allow_pairing: bool = False
    history: HistoryDepth = field(default_factory=HistoryDepth)
    connect_timeout: float = 30.0
    # How long an engine call waits for a lost connection to come back.
    offline_wait: float = 120.0
    proxy: str | None = None
    backoff: Backoff = field(default_factory=Backoff)
    device_name: str = "wasync"


def device_props(options: NeonizeOptions) -> Any:
    """DeviceProps for pairing: RequireFullSync and FullSyncDaysLimit set the depth.

    DESKTOP is the platform the phone grants a full history to; the props matter only
    when a device is linked, and whatsmeow keeps them process-wide.
    """
    props_type = loader.module("companion").DeviceProps
    props = props_type(os=options.device_name, platformType=props_type.DESKTOP)
    if options.history.full or options.history.days is not None:
        props.requireFullSync = True
    if options.history.days is not None:
        props.historySyncConfig.fullSyncDaysLimit = options.history.days
    return props
