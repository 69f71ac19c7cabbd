"""neonize `GroupInfo` to `Group`, and `GroupInfoEv` changes applied to a known group.

A `GroupUpserted` replaces a group's whole membership, so a change event (someone
joined, the subject changed) can only become one when the full group is known: the
engine keeps the last full `Group` it saw per JID and applies the change to it, and
fetches the group from WhatsApp when it has none.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from wasync.domain.models import Group, Participant
from wasync.engines.neonize.jids import IdentityMap, jid_str, phone_of


def group_from_info(info: Any, ids: IdentityMap) -> Group | None:
    jid = jid_str(info.JID)
    if jid is None:
        return None
    participants = []
    for p in info.Participants:
        participant = _participant(p, ids)
        if participant is not None:
            participants.append(participant)
    owner = jid_str(info.OwnerPN) or ids.preferred(jid_str(info.OwnerJID))
    created = int(info.GroupCreated) if info.GroupCreated else None
    return Group(
        jid=jid,
        name=info.GroupName.Name or None,
        topic=info.GroupTopic.Topic or None,
        owner_jid=owner,
        created_at=created,
        participants=tuple(participants),
    )


def _participant(p: Any, ids: IdentityMap) -> Participant | None:
    raw = jid_str(p.JID) if p.HasField("JID") else None
    pn = jid_str(p.PhoneNumber)
    lid = jid_str(p.LID)
    ids.learn(pn, lid)
    ids.learn(raw, pn or lid)
    jid = pn or ids.preferred(raw) or lid
    if jid is None:
        return None
    return Participant(
        jid=jid,
        is_admin=bool(p.IsAdmin or p.IsSuperAdmin),
        is_super_admin=bool(p.IsSuperAdmin),
        phone=phone_of(jid),
        lid=lid or ids.lid_of(jid),
        display_name=p.DisplayName or None,
    )


def changed_group(group_jid: str, change: Any, known: Group, ids: IdentityMap) -> Group:
    """`known` with the changes of one `GroupInfoEv` applied."""
    name, topic = known.name, known.topic
    if change.HasField("Name"):
        name = change.Name.Name or None
    if change.HasField("Topic"):
        topic = None if change.Topic.TopicDeleted else (change.Topic.Topic or None)
    members = {p.jid: p for p in known.participants}

    def people(jids: Any) -> list[str]:
        return [j for j in (ids.preferred(jid_str(x)) for x in jids) if j is not None]

    for jid in people(change.Leave):
        members.pop(jid, None)
    for jid in people(change.Join):
        members.setdefault(jid, Participant(jid, phone=phone_of(jid), lid=ids.lid_of(jid)))
    for jid, admin in [(j, True) for j in people(change.Promote)] + [
        (j, False) for j in people(change.Demote)
    ]:
        if jid in members:
            members[jid] = dataclasses.replace(
                members[jid], is_admin=admin, is_super_admin=members[jid].is_super_admin and admin
            )
    return dataclasses.replace(
        known, jid=group_jid, name=name, topic=topic, participants=tuple(members.values())
    )


def is_deleted(change: Any) -> bool:
    return bool(change.HasField("Delete") and change.Delete.Deleted)
