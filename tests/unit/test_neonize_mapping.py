"""Pure mappings of the neonize engine, on real protobuf objects."""

from __future__ import annotations

import pytest

from wasync.domain.events import SessionStatus
from wasync.domain.models import MessageKind
from wasync.engines.base import RateLimited, TransientEngineError
from wasync.engines.neonize import lifecycle, loader
from wasync.engines.neonize.content import Content, EditOf, ReactionTo, RevokeOf, parse
from wasync.engines.neonize.history import FOREVER, muted_until
from wasync.engines.neonize.jids import IdentityMap, canonical, jid_str
from wasync.engines.neonize.messages import seconds
from wasync.engines.neonize.options import HistoryDepth, NeonizeOptions, device_props
from wasync.engines.neonize.pictures import download_error, picture_error
from wasync.sessions.location import SessionStore, whatsmeow_url

E = loader.module("e2e")
N = loader.module("proto")


def test_content_kinds_and_text() -> None:
    cases = [
        (E.Message(conversation="hi"), MessageKind.TEXT, "hi"),
        (
            E.Message(stickerMessage=E.StickerMessage(mimetype="image/webp")),
            MessageKind.STICKER,
            None,
        ),
        (
            E.Message(audioMessage=E.AudioMessage(seconds=7, mimetype="audio/ogg")),
            MessageKind.AUDIO,
            None,
        ),
        (
            E.Message(videoMessage=E.VideoMessage(caption="clip", seconds=3)),
            MessageKind.VIDEO,
            "clip",
        ),
        (
            E.Message(
                locationMessage=E.LocationMessage(degreesLatitude=1.5, degreesLongitude=-2.0)
            ),
            MessageKind.LOCATION,
            "1.500000,-2.000000",
        ),
        (
            E.Message(locationMessage=E.LocationMessage(name="Cafe", address="Main St")),
            MessageKind.LOCATION,
            "Cafe, Main St",
        ),
        (E.Message(contactMessage=E.ContactMessage(displayName="Zed")), MessageKind.CONTACT, "Zed"),
        (
            E.Message(pollCreationMessageV3=E.PollCreationMessage(name="Lunch?")),
            MessageKind.POLL,
            "Lunch?",
        ),
        (
            E.Message(
                viewOnceMessageV2=E.FutureProofMessage(
                    message=E.Message(imageMessage=E.ImageMessage(caption="once"))
                )
            ),
            MessageKind.IMAGE,
            "once",
        ),
        (
            E.Message(buttonsResponseMessage=E.ButtonsResponseMessage(selectedDisplayText="Yes")),
            MessageKind.SYSTEM,
            "Yes",
        ),
    ]
    for message, kind, text in cases:
        parsed = parse(message)
        assert isinstance(parsed, Content), message
        assert (parsed.kind, parsed.text) == (kind, text)
    video = parse(E.Message(videoMessage=E.VideoMessage(seconds=3, width=640, height=360)))
    assert isinstance(video, Content) and video.media is not None
    assert (video.media.seconds, video.media.width, video.media.height) == (3, 640, 360)


def test_plumbing_is_not_a_message() -> None:
    skd = E.Message(senderKeyDistributionMessage=E.SenderKeyDistributionMessage(groupID="g"))
    assert parse(skd) is None
    assert parse(E.Message()) is None
    assert parse(None) is None
    assert parse(E.Message(protocolMessage=E.ProtocolMessage(type=5))) is None  # history notice
    assert parse(E.Message(pollUpdateMessage=E.PollUpdateMessage())) is None


def test_protocol_messages_and_reactions() -> None:
    key = loader.module("common").MessageKey(remoteJID="x@g.us", ID="T", fromMe=True)
    revoke = parse(E.Message(protocolMessage=E.ProtocolMessage(key=key, type=0)))
    assert isinstance(revoke, RevokeOf) and revoke.target.ID == "T"
    edit_body = E.Message(
        extendedTextMessage=E.ExtendedTextMessage(text="new"),
    )
    wrapped = E.Message(
        editedMessage=E.FutureProofMessage(
            message=E.Message(
                protocolMessage=E.ProtocolMessage(
                    key=key, type=14, editedMessage=edit_body, timestampMS=1_700_000_000_500
                )
            )
        )
    )
    edit = parse(wrapped)
    assert isinstance(edit, EditOf) and (edit.text, edit.at_ms) == ("new", 1_700_000_000_500)
    react = parse(E.Message(reactionMessage=E.ReactionMessage(key=key, text="")))
    assert isinstance(react, ReactionTo) and react.emoji is None


def test_timestamps_and_mutes() -> None:
    assert seconds(1_700_000_000_123) == 1_700_000_000
    assert seconds(1_700_000_000) == 1_700_000_000
    assert muted_until(0) is None
    assert muted_until(2**64 - 1) == FOREVER
    assert muted_until(1_700_000_000) == 1_700_000_000


def test_jids_and_identities() -> None:
    agent_device = N.JID(User="5511999990000", Server="s.whatsapp.net", Device=7, RawAgent=1)
    assert jid_str(agent_device) == "5511999990000@s.whatsapp.net"
    assert jid_str(N.JID(User="1", Server="hosted.lid", Device=99)) == "1@lid"
    assert jid_str(N.JID(User="", Server="s.whatsapp.net")) is None
    assert canonical("123@bot") is None  # not something wasync mirrors
    ids = IdentityMap()
    assert ids.learn("5@lid", "5511999990000@s.whatsapp.net") == "5511999990000@s.whatsapp.net"
    assert ids.learn("5511999990000@s.whatsapp.net", "5@lid") is None  # nothing new
    assert ids.preferred("5@lid") == "5511999990000@s.whatsapp.net"
    assert ids.lid_of("5511999990000@s.whatsapp.net") == "5@lid"
    assert ids.learn("120363000000000001@g.us", "5@lid") is None


def test_lifecycle_decisions() -> None:
    generic = lifecycle.connect_failure(N.ConnectFailure(Reason=1, Message="odd"))
    assert generic.reconnect and not generic.terminal and generic.connected is False
    busy = lifecycle.connect_failure(N.ConnectFailure(Reason=10, Message=""))
    assert not busy.reconnect  # whatsmeow retries 503 itself
    outdated = lifecycle.client_outdated()
    assert outdated.terminal and outdated.status == SessionStatus.DISCONNECTED
    ban = lifecycle.temporary_ban(N.TemporaryBan(Code=1, Expire=7200))
    assert ban.status == SessionStatus.BANNED and "2.0 hours" in (ban.failure or "")


def test_picture_and_download_errors() -> None:
    exc = loader.module("exc")
    proto = loader.module("proto")

    def err(text: str) -> Exception:
        return exc.GetProfilePictureError(proto.GetProfilePictureReturnFunction(Error=text))

    with pytest.raises(RateLimited):
        picture_error(err("info query returned status 429: rate-overlimit"), "x")
    with pytest.raises(TransientEngineError, match="websocket not connected"):
        picture_error(err("websocket not connected"), "x")
    assert "expired" in str(download_error(exc.DownloadError("status code 404")))
    assert download_error(exc.DownloadError("stream reset")).transient


def test_history_depth_becomes_device_props(tmp_path: object) -> None:
    store = SessionStore("s", path=None, database_url="postgresql://u@h/db")
    default = device_props(NeonizeOptions("s", store))
    assert not default.requireFullSync and default.platformType == default.DESKTOP
    full = device_props(NeonizeOptions("s", store, history=HistoryDepth(full=True)))
    assert full.requireFullSync and not full.historySyncConfig.fullSyncDaysLimit
    days = device_props(NeonizeOptions("s", store, history=HistoryDepth(days=30)))
    assert days.requireFullSync and days.historySyncConfig.fullSyncDaysLimit == 30
    with pytest.raises(ValueError):
        HistoryDepth(days=0)


def test_whatsmeow_postgres_url() -> None:
    url = "postgresql+psycopg://u:p@db:5432/w?options=-csearch_path%3Dt_1"
    assert whatsmeow_url(url) == "postgres://u:p@db:5432/w?search_path=t_1&sslmode=prefer"
    assert whatsmeow_url("postgres://h/db?sslmode=disable") == "postgres://h/db?sslmode=disable"
