"""JID and phone-number parsing: every accepted spelling, every rejection, and the
invariants storage relies on (canonical strings are stable and device-free)."""

from __future__ import annotations

import dataclasses
import random

import phonenumbers
import pytest

from wasync.domain.jid import (
    JID,
    PSA_JID,
    SERVER_BROADCAST,
    SERVER_GROUP,
    SERVER_LEGACY_USER,
    SERVER_LID,
    SERVER_NEWSLETTER,
    SERVER_USER,
    STATUS_BROADCAST,
    chat_kind_of,
    jid_for_phone,
    normalize_jid,
    normalize_phone,
    parse_jid,
    to_jid,
)
from wasync.domain.models import ChatKind
from wasync.errors import DomainError, InvalidJID, InvalidPhoneNumber, WasyncError

PHONE = "5511999990000"
GROUP = "120363041234567890"
LEGACY_GROUP = "5511999990000-1612345678"
LID = "123456789012345"
NEWSLETTER = "120363999999999999"
EXAMPLE_HINT = "+55 11 99999-0000"


def test_server_constants_are_whatsapps_spellings() -> None:
    assert (SERVER_USER, SERVER_LEGACY_USER, SERVER_GROUP) == ("s.whatsapp.net", "c.us", "g.us")
    assert (SERVER_LID, SERVER_BROADCAST, SERVER_NEWSLETTER) == ("lid", "broadcast", "newsletter")
    assert STATUS_BROADCAST == "status@broadcast"
    assert PSA_JID == "0@s.whatsapp.net"


# --- accepted JIDs -------------------------------------------------------------------

# (raw, user, server, device)
ACCEPTED: list[tuple[str, str, str, int]] = [
    # phone users, modern and legacy server
    (f"{PHONE}@s.whatsapp.net", PHONE, SERVER_USER, 0),
    (f"{PHONE}@c.us", PHONE, SERVER_USER, 0),
    ("12345@s.whatsapp.net", "12345", SERVER_USER, 0),
    ("1" * 20 + "@s.whatsapp.net", "1" * 20, SERVER_USER, 0),
    ("16505361212@c.us", "16505361212", SERVER_USER, 0),  # WhatsApp's official account
    ("0@s.whatsapp.net", "0", SERVER_USER, 0),  # service announcements (PSA)
    ("0@c.us", "0", SERVER_USER, 0),
    # device and agent suffixes (whatsmeow '.', Baileys '_')
    (f"{PHONE}:12@s.whatsapp.net", PHONE, SERVER_USER, 12),
    (f"{PHONE}:0@s.whatsapp.net", PHONE, SERVER_USER, 0),
    (f"{PHONE}:012@s.whatsapp.net", PHONE, SERVER_USER, 12),
    (f"{PHONE}:65535@s.whatsapp.net", PHONE, SERVER_USER, 65535),
    (f"{PHONE}.0:12@s.whatsapp.net", PHONE, SERVER_USER, 12),
    (f"{PHONE}.1:3@s.whatsapp.net", PHONE, SERVER_USER, 3),
    (f"{PHONE}.255:3@s.whatsapp.net", PHONE, SERVER_USER, 3),
    (f"{PHONE}.0@s.whatsapp.net", PHONE, SERVER_USER, 0),
    (f"{PHONE}_1:3@s.whatsapp.net", PHONE, SERVER_USER, 3),
    (f"{PHONE}:7@c.us", PHONE, SERVER_USER, 7),
    # a '+' on a phone user is tolerated
    (f"+{PHONE}@s.whatsapp.net", PHONE, SERVER_USER, 0),
    (f"+{PHONE}@c.us", PHONE, SERVER_USER, 0),
    (f"+{PHONE}.0:4@s.whatsapp.net", PHONE, SERVER_USER, 4),
    # surrounding whitespace and server case
    (f"  {PHONE}@s.whatsapp.net\n", PHONE, SERVER_USER, 0),
    (f"\t{PHONE}@S.WhatsApp.NET ", PHONE, SERVER_USER, 0),
    (f"{PHONE}@C.US", PHONE, SERVER_USER, 0),
    (f"{GROUP}@G.US", GROUP, SERVER_GROUP, 0),
    # LIDs
    (f"{LID}@lid", LID, SERVER_LID, 0),
    (f"{LID}:3@lid", LID, SERVER_LID, 3),
    (f"{LID}.0:3@lid", LID, SERVER_LID, 3),
    (f"{LID}_1:3@lid", LID, SERVER_LID, 3),
    (f"{LID}@LID", LID, SERVER_LID, 0),
    ("1@lid", "1", SERVER_LID, 0),
    ("9" * 30 + "@lid", "9" * 30, SERVER_LID, 0),
    # groups, modern and legacy creator-timestamp
    (f"{GROUP}@g.us", GROUP, SERVER_GROUP, 0),
    (f"{LEGACY_GROUP}@g.us", LEGACY_GROUP, SERVER_GROUP, 0),
    ("9" * 40 + "@g.us", "9" * 40, SERVER_GROUP, 0),
    # broadcasts
    ("status@broadcast", "status", SERVER_BROADCAST, 0),
    ("STATUS@Broadcast", "status", SERVER_BROADCAST, 0),
    ("1612345678@broadcast", "1612345678", SERVER_BROADCAST, 0),
    # newsletters (channels)
    (f"{NEWSLETTER}@newsletter", NEWSLETTER, SERVER_NEWSLETTER, 0),
    (f"{NEWSLETTER}@Newsletter", NEWSLETTER, SERVER_NEWSLETTER, 0),
]


@pytest.mark.parametrize(("raw", "user", "server", "device"), ACCEPTED)
def test_parse_jid_accepts(raw: str, user: str, server: str, device: int) -> None:
    jid = parse_jid(raw)
    assert (jid.user, jid.server, jid.device) == (user, server, device)
    assert str(jid) == f"{user}@{server}"
    assert normalize_jid(raw) == f"{user}@{server}"


@pytest.mark.parametrize(("raw", "user", "server", "device"), ACCEPTED)
def test_normalize_jid_is_idempotent(raw: str, user: str, server: str, device: int) -> None:
    once = normalize_jid(raw)
    assert normalize_jid(once) == once
    assert parse_jid(once) == parse_jid(raw)
    # the canonical form carries no device, so re-parsing it yields device 0
    assert parse_jid(once).device == 0


# --- rejected JIDs -------------------------------------------------------------------

# (raw, a fragment the message must contain)
REJECTED: list[tuple[str, str]] = [
    ("", "empty"),
    ("   ", "empty"),
    ("abc", "'abc' (expected forms like"),
    (PHONE, "expected forms like"),
    ("s.whatsapp.net", "expected forms like"),
    (f"{PHONE}@s.whatsapp.net@c.us", "more than one '@'"),
    (f"a@b@{SERVER_USER}", "more than one '@'"),
    ("@s.whatsapp.net", "nothing precedes the '@'"),
    ("@g.us", "nothing precedes the '@'"),
    (f"{PHONE}@", "nothing follows the '@'"),
    ("x@example.com", "unknown server 'example.com'"),
    (f"{PHONE}@whatsapp.net", "unknown server"),
    (f"{PHONE}@s.whatsapp.net.", "unknown server"),
    (f"{PHONE}@ s.whatsapp.net", "unknown server"),
    (f"{PHONE}@bot", "unknown server 'bot'"),
    (f"{PHONE}@hosted", "unknown server"),
    (f"{PHONE}@msgr", "unknown server"),
    # non-digit users
    ("abc@s.whatsapp.net", "phone number in digits"),
    ("55 11 99999@s.whatsapp.net", "phone number in digits"),
    ("55-11-99999-0000@s.whatsapp.net", "phone number in digits"),
    ("\u0665\u0665\u0661\u0661\u0669\u0669\u0669\u0669\u0669@s.whatsapp.net", "in digits"),
    ("\uff15\uff15\uff11\uff11\uff19\uff19\uff19@s.whatsapp.net", "in digits"),
    ("status@s.whatsapp.net", "phone number in digits"),
    ("abc@lid", "LID in digits"),
    (f"+{LID}@lid", "LID in digits"),
    ("abc@newsletter", "newsletter id in digits"),
    (f"{NEWSLETTER}-1@newsletter", "newsletter id in digits"),
    (f"+{NEWSLETTER}@newsletter", "newsletter id in digits"),
    ("abc@g.us", "group id is digits"),
    (f"+{GROUP}@g.us", "group id is digits"),
    ("5511-@g.us", "group id is digits"),
    ("-1612345678@g.us", "group id is digits"),
    (f"{PHONE}-1612345678-1@g.us", "group id is digits"),
    ("1234-1612345678@g.us", "group id is digits"),  # creator too short for a phone
    (f"{GROUP}.0@g.us", "group id is digits"),
    ("news@broadcast", "broadcast list id in digits"),
    ("stat us@broadcast", "broadcast list id in digits"),
    ("++5511999990000@s.whatsapp.net", "phone number in digits"),
    # lengths
    ("1234@s.whatsapp.net", "at least 5 digits"),
    ("1" * 21 + "@s.whatsapp.net", "at most 20 digits"),
    ("1" * 31 + "@lid", "at most 30 digits"),
    ("1" * 41 + "@g.us", "at most 40 characters"),
    ("1" * 41 + "@newsletter", "at most 40 digits"),
    ("1" * 41 + "@broadcast", "at most 40 digits"),
    ("00@s.whatsapp.net", "at least 5 digits"),
    # device and agent suffixes
    (f"{PHONE}:-1@s.whatsapp.net", "device number -1 is negative"),
    (f"{PHONE}:x@s.whatsapp.net", "device 'x' is not a number"),
    (f"{PHONE}:1.5@s.whatsapp.net", "device '1.5' is not a number"),
    (f"{PHONE}: 1@s.whatsapp.net", "device ' 1' is not a number"),
    (f"{PHONE}:\u0661@s.whatsapp.net", "is not a number"),
    (f"{PHONE}:@s.whatsapp.net", "device number after ':' is missing"),
    (f"{PHONE}:1:2@s.whatsapp.net", "device '1:2' is not a number"),
    (f"{PHONE}:65536@s.whatsapp.net", "out of range (0..65535)"),
    (f"{PHONE}.x:1@s.whatsapp.net", "agent 'x' is not a number"),
    (f"{PHONE}.:1@s.whatsapp.net", "agent number after '.' is missing"),
    (f"{PHONE}_@s.whatsapp.net", "agent number after '_' is missing"),
    (f"{PHONE}.-1:1@s.whatsapp.net", "agent number -1 is negative"),
    (f"{PHONE}.256:1@s.whatsapp.net", "out of range (0..255)"),
    (f"{PHONE}.0.0:1@s.whatsapp.net", "agent '0.0' is not a number"),
    (f"{LID}:-3@lid", "negative"),
    (f"{GROUP}:1@g.us", "only belongs on user JIDs"),
    ("status:1@broadcast", "only belongs on user JIDs"),
    (f"{NEWSLETTER}:1@newsletter", "only belongs on user JIDs"),
]


@pytest.mark.parametrize(("raw", "fragment"), REJECTED)
def test_parse_jid_rejects(raw: str, fragment: str) -> None:
    with pytest.raises(InvalidJID) as caught:
        parse_jid(raw)
    message = str(caught.value)
    assert message.startswith("not a WhatsApp JID"), message
    assert fragment in message, message
    with pytest.raises(InvalidJID):
        normalize_jid(raw)


def test_jid_error_message_reads_like_a_sentence() -> None:
    with pytest.raises(InvalidJID) as caught:
        parse_jid("abc")
    assert str(caught.value) == (
        "not a WhatsApp JID: 'abc' (expected forms like 5511999990000@s.whatsapp.net "
        "or 120363041234567890@g.us)"
    )


def test_jid_error_quotes_long_input_truncated() -> None:
    raw = "x" * 500 + "@example.com"
    with pytest.raises(InvalidJID) as caught:
        parse_jid(raw)
    message = str(caught.value)
    assert "xxxx..." in message
    assert len(message) < 250
    assert "\n" not in message


def test_jid_error_shows_invisible_characters_escaped() -> None:
    with pytest.raises(InvalidJID) as caught:
        parse_jid("5511\x00999990000@s.whatsapp.net")
    assert "\\x00" in str(caught.value)


def test_invalid_jid_belongs_to_the_error_hierarchy() -> None:
    with pytest.raises(InvalidJID) as caught:
        parse_jid("nope")
    assert isinstance(caught.value, DomainError)
    assert isinstance(caught.value, WasyncError)
    assert isinstance(caught.value, ValueError)


def test_parse_jid_rejects_non_strings_as_programming_errors() -> None:
    with pytest.raises(TypeError):
        parse_jid(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        normalize_phone(5511999990000)  # type: ignore[arg-type]


# --- the JID value -------------------------------------------------------------------

# (canonical, is_user, is_group, is_lid, is_broadcast, is_status, is_newsletter, phone)
KINDS: list[tuple[str, bool, bool, bool, bool, bool, bool, str | None]] = [
    (f"{PHONE}@s.whatsapp.net", True, False, False, False, False, False, PHONE),
    (PSA_JID, True, False, False, False, False, False, None),
    (f"{LID}@lid", False, False, True, False, False, False, None),
    (f"{GROUP}@g.us", False, True, False, False, False, False, None),
    (f"{LEGACY_GROUP}@g.us", False, True, False, False, False, False, None),
    (STATUS_BROADCAST, False, False, False, True, True, False, None),
    ("1612345678@broadcast", False, False, False, True, False, False, None),
    (f"{NEWSLETTER}@newsletter", False, False, False, False, False, True, None),
]


@pytest.mark.parametrize(
    ("raw", "is_user", "is_group", "is_lid", "is_broadcast", "is_status", "is_newsletter", "phone"),
    KINDS,
)
def test_jid_properties(
    raw: str,
    is_user: bool,
    is_group: bool,
    is_lid: bool,
    is_broadcast: bool,
    is_status: bool,
    is_newsletter: bool,
    phone: str | None,
) -> None:
    jid = parse_jid(raw)
    assert jid.is_user is is_user
    assert jid.is_group is is_group
    assert jid.is_lid is is_lid
    assert jid.is_broadcast is is_broadcast
    assert jid.is_status is is_status
    assert jid.is_newsletter is is_newsletter
    assert jid.phone == phone


def test_phone_of_a_legacy_device_jid_is_the_bare_number() -> None:
    assert parse_jid(f"+{PHONE}.0:9@c.us").phone == PHONE


def test_equality_and_hash_ignore_the_device() -> None:
    spellings = [
        f"{PHONE}@s.whatsapp.net",
        f"{PHONE}:12@s.whatsapp.net",
        f"{PHONE}.0:3@s.whatsapp.net",
        f"{PHONE}@c.us",
        f"+{PHONE}:1@C.US",
    ]
    jids = [parse_jid(s) for s in spellings]
    assert len({j.device for j in jids}) > 1
    assert all(j == jids[0] for j in jids)
    assert len(set(jids)) == 1
    assert {j: j.device for j in jids} == {jids[0]: jids[-1].device}
    assert JID(PHONE, SERVER_USER, 5) == JID(PHONE, SERVER_USER)
    assert hash(JID(LID, SERVER_LID, 5)) == hash(JID(LID, SERVER_LID))


def test_same_user_on_different_servers_differs() -> None:
    assert parse_jid("12345678@s.whatsapp.net") != parse_jid("12345678@lid")
    assert parse_jid("12345678@g.us") != parse_jid("12345678@broadcast")
    assert parse_jid("12345678@g.us") != parse_jid("12345678@newsletter")


def test_jid_is_immutable() -> None:
    jid = parse_jid(f"{PHONE}:2@s.whatsapp.net")
    with pytest.raises(dataclasses.FrozenInstanceError):
        jid.user = "1"  # type: ignore[misc]
    assert not hasattr(jid, "__dict__")  # slots


def test_str_never_shows_device_or_agent() -> None:
    jid = parse_jid(f"{PHONE}.1:12@s.whatsapp.net")
    assert str(jid) == f"{PHONE}@s.whatsapp.net"
    assert jid.device == 12
    assert "12" in repr(jid)


def test_jid_constructor_accepts_canonical_parts() -> None:
    assert str(JID(PHONE, SERVER_USER, 3)) == f"{PHONE}@s.whatsapp.net"
    assert str(JID(GROUP, SERVER_GROUP)) == f"{GROUP}@g.us"
    assert str(dataclasses.replace(JID(LID, SERVER_LID), device=2)) == f"{LID}@lid"


@pytest.mark.parametrize(
    ("user", "server", "device", "fragment"),
    [
        (PHONE, SERVER_LEGACY_USER, 0, "not a canonical server"),
        (PHONE, "S.WHATSAPP.NET", 0, "not a canonical server"),
        (PHONE, "example.com", 0, "not a canonical server"),
        ("", SERVER_USER, 0, "nothing precedes"),
        (f"+{PHONE}", SERVER_USER, 0, "in digits"),
        (f"{PHONE}:1", SERVER_USER, 0, "in digits"),
        ("abc", SERVER_GROUP, 0, "group id"),
        (PHONE, SERVER_USER, -1, "device must be"),
        (PHONE, SERVER_USER, 65536, "device must be"),
        (PHONE, SERVER_USER, True, "device must be"),
        (GROUP, SERVER_GROUP, 1, "only belongs on user JIDs"),
        ("status", SERVER_BROADCAST, 1, "only belongs on user JIDs"),
    ],
)
def test_jid_constructor_rejects_what_parse_would_not_produce(
    user: str, server: str, device: int, fragment: str
) -> None:
    with pytest.raises(InvalidJID) as caught:
        JID(user, server, device)
    assert fragment in str(caught.value)


# --- chat kinds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (f"{PHONE}@s.whatsapp.net", ChatKind.INDIVIDUAL),
        (f"{PHONE}:3@c.us", ChatKind.INDIVIDUAL),
        (f"{LID}:3@lid", ChatKind.INDIVIDUAL),
        (PSA_JID, ChatKind.INDIVIDUAL),
        (f"{GROUP}@g.us", ChatKind.GROUP),
        (f"{LEGACY_GROUP}@g.us", ChatKind.GROUP),
        (STATUS_BROADCAST, ChatKind.BROADCAST),
        ("1612345678@broadcast", ChatKind.BROADCAST),
        (f"{NEWSLETTER}@newsletter", ChatKind.NEWSLETTER),
    ],
)
def test_chat_kind_of(raw: str, kind: ChatKind) -> None:
    assert chat_kind_of(raw) is kind


@pytest.mark.parametrize("raw", ["", "abc", "x@example.com", f"{GROUP}:1@g.us"])
def test_chat_kind_of_rejects_invalid_jids(raw: str) -> None:
    with pytest.raises(InvalidJID):
        chat_kind_of(raw)


# --- phone numbers -------------------------------------------------------------------

# (raw, default_region, E.164 digits)
PHONES: list[tuple[str, str | None, str]] = [
    ("+55 11 99999-0000", None, PHONE),
    ("+55 (11) 9 9999-0000", None, PHONE),
    ("+5511999990000", None, PHONE),
    ("5511999990000", None, PHONE),  # bare digits, as in a JID: international
    ("  5511999990000\n", None, PHONE),
    ("(011) 5555 1234", "BR", "551155551234"),
    ("(011) 5555 1234", "br", "551155551234"),
    ("(011) 5555 1234", " BR ", "551155551234"),
    ("11 99999-0000", "BR", PHONE),
    ("5511999990000", "BR", PHONE),  # phonenumbers spots the region's own country code
    ("+55 11 99999-0000", "US", PHONE),  # an explicit '+' wins over the region
    ("0044 20 7946 0958", None, "442079460958"),
    ("(0044) 20 7946 0958", None, "442079460958"),
    ("0044 20 7946 0958", "GB", "442079460958"),
    ("020 7946 0958", "GB", "442079460958"),
    ("+44 (0) 20 7946 0958", None, "442079460958"),
    ("011 44 20 7946 0958", "US", "442079460958"),  # the US international prefix
    ("tel:+1-202-555-0143", None, "12025550143"),
    ("TEL:+1-202-555-0143", None, "12025550143"),
    ("tel:5511999990000", None, PHONE),
    ("+1 (202) 555-0143", None, "12025550143"),
    ("+1 202.555.0143", None, "12025550143"),
    ("+1 202/555/0143", None, "12025550143"),
    ("+1 202\u2013555\u20130143", None, "12025550143"),  # en dash from a word processor
    ("+1 202\u2212555\u20120143", None, "12025550143"),
    ("2025550143", "US", "12025550143"),
    ("+39 06 1234 5678", None, "390612345678"),  # Italy keeps its leading zero
    ("+49 30 123456", None, "4930123456"),
    ("+800 1234 5678", None, "80012345678"),  # international freephone, no region
    ("+\uff11\uff12\uff10\uff12\uff15\uff15\uff15\uff10\uff11\uff14\uff13", None, "12025550143"),
    ("\uff0b1 202 555 0143", None, "12025550143"),  # full-width plus
    (
        "+\u0665\u0665\u0661\u0661\u0669\u0669\u0669\u0669\u0669\u0660\u0660\u0660\u0660",
        None,
        PHONE,
    ),
    ("\u202a+55 11 99999-0000\u202c", None, PHONE),  # bidi marks from WhatsApp's UI
    ("\u200e+55 11 99999-0000", None, PHONE),
    ("+55\u00a011\u00a099999-0000", None, PHONE),  # no-break spaces
    ("+55\u200911\u202f99999-0000", None, PHONE),  # thin spaces, which phonenumbers refuses
    ("+55 11 99999\u00ad0000", None, PHONE),  # soft hyphen
    ("+1 202 555 0143", "", "12025550143"),  # an unset region setting
]


@pytest.mark.parametrize(("raw", "region", "expected"), PHONES)
def test_normalize_phone_accepts(raw: str, region: str | None, expected: str) -> None:
    digits = normalize_phone(raw, region)
    assert digits == expected
    assert digits.isascii() and digits.isdigit()
    assert normalize_phone(digits) == digits
    assert normalize_phone("+" + digits) == digits


# (raw, default_region, a fragment the message must contain)
BAD_PHONES: list[tuple[str, str | None, str]] = [
    ("", None, "empty"),
    ("   ", None, "empty"),
    ("tel:", None, "empty"),
    ("call me", None, "contains letters"),
    ("+55 11 CALL-ME", None, "contains letters"),
    ("+1 800 FLOWERS", None, "contains letters"),  # phonenumbers would dial it
    ("+1 202 555 0143 ext 12", None, "contains letters"),
    ("+12025550143x5", None, "contains letters"),
    ("tel:+1-202-555-0143;ext=2", None, "contains letters"),
    ("+55 11 99999-0000#", None, "contains '#'"),  # phonenumbers: extension 0000
    ("+55*11*99999-0000", None, "contains '*'"),
    ("+55 11 99999-0000!", None, "contains '!'"),
    ("+55 11 99999-0000, +55 11 8888-0000", None, "contains ','"),
    ("+55 11 99999\x000000", None, "contains '\\x00'"),
    ("+\u00b2\u00b2\u00b2", None, "contains '\u00b2'"),  # superscripts are not digits
    ("55+11999990000", None, "single '+'"),
    ("++5511999990000", None, "single '+'"),
    ("+5511999990000+", None, "single '+'"),
    ("+", None, "not a phone number"),
    ("---", None, "not a phone number"),
    ("()", None, "not a phone number"),
    ("1", None, "too short"),
    ("123", None, "too short"),
    ("+55 11", None, "too short"),
    ("+1 23", None, "too short"),
    ("+1 2025550143999999", None, "too long"),
    ("+55 11 99999-0000 / 8888-0000", None, "too long"),
    ("1" * 40, None, "too long"),
    ("1" * 65, None, "characters long"),
    ("+1 555 0143", None, "lacks its area code"),
    ("+44 7946 0958", None, "lacks its area code"),
    ("555 0143", "US", "lacks its area code"),
    ("(011) 5555 1234", None, "starts with 0 like a national number"),
    ("011 44 20 7946 0958", None, "starts with 0"),
    ("+0 11 5555 1234", None, "cannot tell the country"),
    ("+999 1234567", None, "does not start with a known country code"),
    ("5511999990000", "US", "too long"),  # with a region, bare digits are national
    ("+49 00627368", None, "national (trunk) prefix"),
    ("+1 202 555 0143", "XX", "unknown default region 'XX'"),
    ("+1 202 555 0143", "USA", "unknown default region"),
    ("+1 202 555 0143", "001", "unknown default region"),
]


@pytest.mark.parametrize(("raw", "region", "fragment"), BAD_PHONES)
def test_normalize_phone_rejects(raw: str, region: str | None, fragment: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_phone(raw, region)
    message = str(caught.value)
    assert fragment in message, message
    if "region" not in fragment:
        assert EXAMPLE_HINT in message, message
    assert isinstance(caught.value, DomainError)


def test_phone_error_quotes_the_input_as_given() -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_phone("  call me  ")
    assert "'  call me  '" in str(caught.value)


def test_phone_errors_never_leak_phonenumbers_exceptions() -> None:
    rng = random.Random(20240601)
    alphabet = "0123456789+-. ()/#*xX:;@_telEXT\u0665\uff11\u00b2\u2013\uff0b\x00\t\n\u202a"
    regions = [None, "", "BR", "US", "GB", "DE", "IT", "zz"]
    for _ in range(3000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        region = rng.choice(regions)
        try:
            digits = normalize_phone(raw, region)
        except InvalidPhoneNumber:
            continue
        assert digits.isascii() and digits.isdigit()
        assert normalize_phone(digits) == digits


# --- phone -> JID --------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "region", "expected"), PHONES)
def test_jid_for_phone(raw: str, region: str | None, expected: str) -> None:
    jid = jid_for_phone(raw, region)
    assert jid == f"{expected}@s.whatsapp.net"
    assert parse_jid(jid).phone == expected


def test_jid_for_phone_rejects_bad_numbers() -> None:
    with pytest.raises(InvalidPhoneNumber):
        jid_for_phone("call me")


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("+55 11 99999-0000", None, f"{PHONE}@s.whatsapp.net"),
        (PHONE, None, f"{PHONE}@s.whatsapp.net"),
        ("(011) 5555 1234", "BR", "551155551234@s.whatsapp.net"),
        (f"{PHONE}@c.us", None, f"{PHONE}@s.whatsapp.net"),
        (f"{PHONE}.0:12@s.whatsapp.net", None, f"{PHONE}@s.whatsapp.net"),
        (f" {LID}:3@lid ", None, f"{LID}@lid"),
        (f"{GROUP}@g.us", "BR", f"{GROUP}@g.us"),
        (f"{LEGACY_GROUP}@g.us", None, f"{LEGACY_GROUP}@g.us"),
        ("status@broadcast", None, STATUS_BROADCAST),
        (f"{NEWSLETTER}@newsletter", None, f"{NEWSLETTER}@newsletter"),
    ],
)
def test_to_jid(value: str, region: str | None, expected: str) -> None:
    assert to_jid(value, region) == expected
    assert to_jid(to_jid(value, region)) == expected


@pytest.mark.parametrize(
    ("value", "error", "fragment"),
    [
        ("x@example.com", InvalidJID, "unknown server"),
        ("abc@s.whatsapp.net", InvalidJID, "in digits"),
        ("status", InvalidPhoneNumber, "a JID such as"),
        ("", InvalidPhoneNumber, "a JID such as"),
        ("(011) 5555 1234", InvalidPhoneNumber, "default_region"),
    ],
)
def test_to_jid_rejects(value: str, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as caught:
        to_jid(value)
    assert fragment in str(caught.value)


# --- generated inputs ----------------------------------------------------------------


def _digits(rng: random.Random, length: int) -> str:
    # No leading zero, like every phone number, group and LID WhatsApp hands out.
    return str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(length - 1))


def test_generated_user_jids_round_trip() -> None:
    rng = random.Random(7)
    for _ in range(400):
        user = _digits(rng, rng.randint(5, 20))
        device = rng.randint(0, 65535)
        agent = rng.randint(0, 255)
        canonical = f"{user}@s.whatsapp.net"
        spellings = [
            canonical,
            f"{user}@c.us",
            f"+{user}@s.whatsapp.net",
            f"{user}:{device}@s.whatsapp.net",
            f"{user}.{agent}:{device}@s.whatsapp.net",
            f"{user}_{agent}:{device}@C.US",
            f"  {user}@S.WHATSAPP.NET  ",
        ]
        for raw in spellings:
            jid = parse_jid(raw)
            assert str(jid) == canonical, raw
            assert jid.phone == user
            assert normalize_jid(normalize_jid(raw)) == normalize_jid(raw)
            assert jid == JID(user, SERVER_USER)
        assert parse_jid(f"{user}:{device}@s.whatsapp.net").device == device


def test_generated_ids_on_every_server_round_trip() -> None:
    rng = random.Random(11)
    for _ in range(300):
        lid = _digits(rng, rng.randint(1, 30))
        group = _digits(rng, rng.randint(1, 40))
        legacy = f"{_digits(rng, rng.randint(5, 20))}-{_digits(rng, rng.randint(1, 12))}"
        news = _digits(rng, rng.randint(1, 40))
        broadcast = _digits(rng, rng.randint(1, 40))
        device = rng.randint(0, 99)
        cases = [
            (f"{lid}:{device}@lid", f"{lid}@lid", ChatKind.INDIVIDUAL),
            (f"{group}@g.us", f"{group}@g.us", ChatKind.GROUP),
            (f"{legacy}@g.us", f"{legacy}@g.us", ChatKind.GROUP),
            (f"{news}@newsletter", f"{news}@newsletter", ChatKind.NEWSLETTER),
            (f"{broadcast}@broadcast", f"{broadcast}@broadcast", ChatKind.BROADCAST),
        ]
        for raw, canonical, kind in cases:
            assert normalize_jid(raw) == canonical
            assert normalize_jid(canonical) == canonical
            assert chat_kind_of(raw) is kind


def test_generated_out_of_bounds_users_are_rejected() -> None:
    rng = random.Random(13)
    for _ in range(200):
        too_short = _digits(rng, rng.randint(1, 4))
        too_long = _digits(rng, rng.randint(21, 60))
        for raw in (
            f"{too_short}@s.whatsapp.net",
            f"{too_long}@s.whatsapp.net",
            f"{_digits(rng, rng.randint(31, 60))}@lid",
            f"{_digits(rng, rng.randint(41, 80))}@g.us",
            f"{_digits(rng, rng.randint(41, 80))}@newsletter",
        ):
            with pytest.raises(InvalidJID):
                parse_jid(raw)


def test_generated_phone_spellings_agree() -> None:
    rng = random.Random(17)
    accepted = 0
    for _ in range(400):
        raw = "+" + _digits(rng, rng.randint(8, 15))
        try:
            digits = normalize_phone(raw)
        except InvalidPhoneNumber:
            continue
        accepted += 1
        spaced = " ".join(raw[i : i + 3] for i in range(0, len(raw), 3))
        assert normalize_phone(digits) == digits
        assert normalize_phone("00" + digits) == digits
        assert normalize_phone(spaced) == digits
        assert normalize_phone(f"tel:{raw}") == digits
        assert to_jid(raw) == to_jid(f"{digits}@c.us") == f"{digits}@s.whatsapp.net"
    assert accepted > 100  # the generator must exercise the accepting path


@pytest.mark.parametrize("region", sorted(phonenumbers.SUPPORTED_REGIONS))
def test_every_regions_example_numbers_normalize_consistently(region: str) -> None:
    # phonenumbers ships a real-shaped example for each region: every human spelling
    # of it, national or international, must land on the same digits.
    for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            continue
        e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        international = phonenumbers.format_number(
            example, phonenumbers.PhoneNumberFormat.INTERNATIONAL
        )
        national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
        digits = e164[1:]
        assert normalize_phone(e164) == digits
        assert normalize_phone(digits) == digits
        assert normalize_phone(international) == digits
        assert normalize_phone(international, "US") == digits
        assert normalize_phone(national, region) == digits
        assert parse_jid(jid_for_phone(international)).phone == digits
