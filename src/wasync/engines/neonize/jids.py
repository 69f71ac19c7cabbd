"""neonize JIDs to wasync's canonical strings, and one person's two addresses.

WhatsApp addresses a person by phone number (`…@s.whatsapp.net`) or by an opaque LID
(`…@lid`), and the same message can arrive in either form. The adapter reports every
pair it learns (contacts with both forms); the store keys each person by their LID
once the pair is known and merges what was kept under the number
(domain/identity.py, store/identities.py), whatever form an event used.
"""

from __future__ import annotations

import logging
from typing import Any

from wasync.domain.jid import SERVER_LID, SERVER_USER, parse_jid
from wasync.errors import InvalidJID

log = logging.getLogger(__name__)

# whatsmeow's servers for Cloud-API ("hosted") devices of ordinary accounts.
_HOSTED = {"hosted": SERVER_USER, "hosted.lid": SERVER_LID}


def jid_str(proto: Any) -> str | None:
    """The canonical string of a neonize `JID` message; None when empty or foreign."""
    if proto is None or not proto.User or not proto.Server or proto.IsEmpty:
        return None
    server = _HOSTED.get(proto.Server, proto.Server)
    return canonical(f"{proto.User}@{server}")


def canonical(raw: str | None) -> str | None:
    """A JID string in any spelling, canonical; None (logged) when wasync cannot store it.

    Bots, interop and call addresses have servers wasync does not mirror.
    """
    if not raw:
        return None
    try:
        return str(parse_jid(raw))
    except InvalidJID as exc:
        log.debug("skipping an address wasync does not mirror: %s", exc)
        return None


def phone_of(jid: str | None) -> str | None:
    if jid is None:
        return None
    return parse_jid(jid).phone


def is_lid(jid: str | None) -> bool:
    return jid is not None and jid.endswith("@" + SERVER_LID)


class IdentityMap:
    """What is known of LID <-> phone pairs, learned from the events themselves.

    Filled only from data the events carry (SenderAlt, history mappings, group
    rosters), never by calling into whatsmeow from a handler.
    """

    def __init__(self) -> None:
        self._pn_of_lid: dict[str, str] = {}
        self._lid_of_pn: dict[str, str] = {}

    def learn(self, a: str | None, b: str | None) -> str | None:
        """Record that `a` and `b` are the same person (in either order).

        Returns the phone JID when this pair is news, so callers can report it.
        """
        if a is None or b is None or a == b:
            return None
        if is_lid(a) and not is_lid(b):
            lid, pn = a, b
        elif is_lid(b) and not is_lid(a):
            lid, pn = b, a
        else:
            return None
        if not pn.endswith("@" + SERVER_USER) or self._pn_of_lid.get(lid) == pn:
            return None
        self._pn_of_lid[lid] = pn
        self._lid_of_pn[pn] = lid
        return pn

    def preferred(self, jid: str | None) -> str | None:
        """The phone form of a LID when known, else the JID itself."""
        if jid is None:
            return None
        return self._pn_of_lid.get(jid, jid)

    def lid_of(self, jid: str) -> str | None:
        if is_lid(jid):
            return jid
        return self._lid_of_pn.get(jid)

    def __len__(self) -> int:
        return len(self._pn_of_lid)
