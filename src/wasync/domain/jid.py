"""WhatsApp JIDs and phone numbers: parsing, validation and the canonical string form.

A JID ("Jabber ID") names everything on WhatsApp: `5511999990000@s.whatsapp.net` is a
person, `120363041234567890@g.us` a group, `status@broadcast` the status feed. The
libraries wasync's engines wrap (whatsmeow, Baileys, whatsapp-web.js) spell the same
account several ways: legacy `@c.us`, device-qualified `user:device@server`,
agent-qualified `user.agent:device@server` (whatsmeow) or `user_agent:device@server`
(Baileys). Storage needs one spelling per account, so everything passes through
`parse_jid` and is stored as `str(JID)`.

Pure functions only: no I/O, no clock, no global state.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Final

import phonenumbers

from wasync.domain.models import ChatKind
from wasync.errors import InvalidJID, InvalidPhoneNumber

__all__ = [
    "JID",
    "PSA_JID",
    "SERVER_BROADCAST",
    "SERVER_GROUP",
    "SERVER_LEGACY_USER",
    "SERVER_LID",
    "SERVER_NEWSLETTER",
    "SERVER_USER",
    "STATUS_BROADCAST",
    "chat_kind_of",
    "jid_for_phone",
    "normalize_jid",
    "normalize_phone",
    "parse_jid",
    "to_jid",
]

SERVER_USER: Final = "s.whatsapp.net"
SERVER_LEGACY_USER: Final = "c.us"
SERVER_GROUP: Final = "g.us"
SERVER_LID: Final = "lid"
SERVER_BROADCAST: Final = "broadcast"
SERVER_NEWSLETTER: Final = "newsletter"
STATUS_BROADCAST: Final = "status@broadcast"

# WhatsApp's own service-announcement account. whatsmeow (PSAJID) and Baileys (PSA_WID)
# both know it, and it shows up in real chat lists, so it must parse even though "0" is
# no phone number.
PSA_JID: Final = "0@s.whatsapp.net"
_PSA_USER: Final = "0"
_STATUS_USER: Final = "status"

_CANONICAL_SERVERS: Final = frozenset(
    {SERVER_USER, SERVER_GROUP, SERVER_LID, SERVER_BROADCAST, SERVER_NEWSLETTER}
)
_SERVER_ALIASES: Final = {SERVER_LEGACY_USER: SERVER_USER}
_KNOWN_SERVERS: Final = ", ".join(
    (SERVER_USER, SERVER_LEGACY_USER, SERVER_LID, SERVER_GROUP, SERVER_BROADCAST, SERVER_NEWSLETTER)
)
# Only these address one device of an account; elsewhere a ':' is a typo, not a device.
_DEVICE_SERVERS: Final = frozenset({SERVER_USER, SERVER_LID})

# WhatsApp numbers are E.164 (at most 15 digits), but some old test and internal
# accounts are shorter, and a stored JID we cannot parse would break a whole sync, so
# the bound is deliberately wider than E.164.
_PHONE_USER_DIGITS: Final = (5, 20)
# LIDs seen in the wild are 14-15 digits; 30 leaves room without admitting garbage.
_LID_DIGITS: Final = (1, 30)
# Group, newsletter and broadcast-list ids are server-assigned numbers (18 digits
# today); 40 covers the legacy "creator-timestamp" group form too.
_ID_MAX_CHARS: Final = 40
# whatsmeow stores the device as uint16 and the agent as uint8.
_MAX_DEVICE: Final = 0xFFFF
_MAX_AGENT: Final = 0xFF

# [0-9], not \d: \d (and str.isdigit) also match Arabic-Indic, Devanagari and other
# digits, which would leak non-ASCII users into the database.
_DIGITS = re.compile(r"[0-9]+")
_LEGACY_GROUP = re.compile(r"[0-9]{5,20}-[0-9]{1,20}")

_JID_EXAMPLES: Final = (
    "(expected forms like 5511999990000@s.whatsapp.net or 120363041234567890@g.us)"
)
_PHONE_EXAMPLE: Final = "e.g. +55 11 99999-0000"
_QUOTE_LIMIT: Final = 60


@dataclass(frozen=True, slots=True)
class JID:
    """One WhatsApp address, canonical: `str()` gives the form wasync stores.

    `device` says which of the account's devices a message came from; two JIDs that
    differ only in device are the same account, so it takes no part in `==` or hash.
    Construction validates, so a `JID` value is always well formed; use `parse_jid`
    to read the many spellings found in the wild.
    """

    user: str
    server: str
    device: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        shown = f"{self.user}@{self.server}"
        if self.server not in _CANONICAL_SERVERS:
            raise _jid_error(
                shown,
                f"{self.server!r} is not a canonical server (use parse_jid() to read "
                f"legacy or mixed-case forms such as @{SERVER_LEGACY_USER})",
            )
        problem = _user_problem(self.user, self.server)
        if problem is not None:
            raise _jid_error(shown, problem)
        # bool is an int subclass; JID(..., device=True) is certainly a bug.
        if type(self.device) is not int or not 0 <= self.device <= _MAX_DEVICE:
            raise _jid_error(shown, f"device must be an int in 0..{_MAX_DEVICE}")
        if self.device and self.server not in _DEVICE_SERVERS:
            raise _jid_error(shown, _device_on_wrong_server())

    def __str__(self) -> str:
        return f"{self.user}@{self.server}"

    @property
    def is_user(self) -> bool:
        return self.server == SERVER_USER

    @property
    def is_group(self) -> bool:
        return self.server == SERVER_GROUP

    @property
    def is_lid(self) -> bool:
        return self.server == SERVER_LID

    @property
    def is_broadcast(self) -> bool:
        """Any @broadcast address: a broadcast list or the status feed."""
        return self.server == SERVER_BROADCAST

    @property
    def is_status(self) -> bool:
        return self.server == SERVER_BROADCAST and self.user == _STATUS_USER

    @property
    def is_newsletter(self) -> bool:
        return self.server == SERVER_NEWSLETTER

    @property
    def phone(self) -> str | None:
        """E.164 digits (no '+') of a phone-number account; None for everything else.

        A LID hides the phone number by design, so it has none even though it is a user.
        """
        if self.server == SERVER_USER and self.user != _PSA_USER:
            return self.user
        return None


def parse_jid(raw: str) -> JID:
    """Read any JID spelling used by whatsmeow, Baileys or whatsapp-web.js.

    Raises InvalidJID with a sentence that quotes the input and says what is wrong.
    """
    if not isinstance(raw, str):
        raise TypeError(f"parse_jid expects a str, got {type(raw).__name__}")
    text = raw.strip()
    if not text:
        raise InvalidJID(f"not a WhatsApp JID: the string is empty {_JID_EXAMPLES}")
    at_signs = text.count("@")
    if at_signs == 0:
        raise InvalidJID(f"not a WhatsApp JID: {_quote(text)} {_JID_EXAMPLES}")
    if at_signs > 1:
        raise _jid_error(text, "it has more than one '@'")

    user_part, _, server_part = text.partition("@")
    # Server names are DNS-like, so case carries no meaning there.
    server = server_part.lower()
    server = _SERVER_ALIASES.get(server, server)
    if not server:
        raise _jid_error(text, "nothing follows the '@'")
    if server not in _CANONICAL_SERVERS:
        raise _jid_error(text, f"unknown server {_quote(server)} (known: {_KNOWN_SERVERS})")
    if not user_part:
        raise _jid_error(text, "nothing precedes the '@'")

    user, device = _split_device(text, user_part, server)
    if server == SERVER_USER and user.startswith("+"):
        # People paste "+5511...@c.us" from contact cards; the '+' adds nothing.
        user = user[1:]
    if server == SERVER_BROADCAST and user.lower() == _STATUS_USER:
        user = _STATUS_USER

    problem = _user_problem(user, server)
    if problem is not None:
        raise _jid_error(text, problem)
    return JID(user, server, device)


def normalize_jid(raw: str) -> str:
    """The canonical string of any JID spelling; idempotent."""
    return str(parse_jid(raw))


def normalize_phone(raw: str, default_region: str | None = None) -> str:
    """A phone number in any human format, as E.164 digits without the '+'.

    `default_region` (ISO 3166 code such as "BR") lets national numbers like
    "(011) 5555 1234" through; without it, a number with no '+' is read as international
    ("5511999990000", "0044 20 7946 0958"). Raises InvalidPhoneNumber.
    """
    if not isinstance(raw, str):
        raise TypeError(f"normalize_phone expects a str, got {type(raw).__name__}")
    region = _check_region(default_region)
    # Numbers copied from WhatsApp or a web page bring invisible bidi marks (U+202A,
    # U+200E, ...) and no-break or thin spaces, which phonenumbers handles only in part.
    text = "".join(
        " " if ch.isspace() else ch for ch in raw if unicodedata.category(ch) != "Cf"
    ).strip()
    if text[:4].lower() == "tel:":
        text = text[4:].strip()
    if not text:
        raise InvalidPhoneNumber(
            f"the phone number is empty: give one with its country code, {_PHONE_EXAMPLE}"
        )
    _check_phone_characters(raw, text)

    if region is None and not any(ch in "+\uff0b" for ch in text):
        # phonenumbers refuses a number without '+' unless it has a region. "00" is the
        # international prefix in most of the world, and WhatsApp itself writes numbers
        # as bare international digits (the user part of a JID), so read both that way.
        text = "+" + re.sub(r"^([\s(]*)00", r"\1", text, count=1)

    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(_parse_failure(raw, text, region, exc.error_type)) from None

    # Only IS_POSSIBLE passes: is_possible_number() also accepts IS_POSSIBLE_LOCAL_ONLY
    # ("+1 555 0143", a number missing its area code), which no WhatsApp account has.
    # Possible, not valid: WhatsApp has numbers in ranges newer than the metadata.
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise InvalidPhoneNumber(_impossible_reason(raw, number.country_code, reason))
    digits = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    if not _reads_back_as_itself(digits):
        raise InvalidPhoneNumber(
            f"phone number {_quote(raw)} is not a possible number for country code "
            f"+{number.country_code}: what follows the country code starts like a "
            f"national (trunk) prefix; {_PHONE_EXAMPLE}"
        )
    return digits


def jid_for_phone(raw: str, default_region: str | None = None) -> str:
    """The user JID of a phone number in any human format."""
    return str(JID(normalize_phone(raw, default_region), SERVER_USER))


def to_jid(value: str, default_region: str | None = None) -> str:
    """A JID in any spelling, or a phone number in any human format, as a canonical JID.

    Anything with an '@' is a JID; no phone number contains one, so there is no guessing.
    """
    if "@" in value:
        return normalize_jid(value)
    try:
        return jid_for_phone(value, default_region)
    except InvalidPhoneNumber as exc:
        raise InvalidPhoneNumber(
            f"{exc} (a JID such as 5511999990000@s.whatsapp.net is accepted too)"
        ) from None


def chat_kind_of(jid: str) -> ChatKind:
    """What kind of chat a JID names; LID chats are one-to-one chats like phone ones."""
    server = parse_jid(jid).server
    if server == SERVER_GROUP:
        return ChatKind.GROUP
    if server == SERVER_BROADCAST:
        return ChatKind.BROADCAST
    if server == SERVER_NEWSLETTER:
        return ChatKind.NEWSLETTER
    return ChatKind.INDIVIDUAL


# --- JID helpers ---------------------------------------------------------------------


def _quote(text: str) -> str:
    # Inputs can be whole message bodies pasted by mistake; keep errors one line long.
    if len(text) > _QUOTE_LIMIT:
        text = text[: _QUOTE_LIMIT - 3] + "..."
    return repr(text)


def _jid_error(shown: str, reason: str) -> InvalidJID:
    return InvalidJID(f"not a WhatsApp JID: {_quote(shown)}: {reason}")


def _device_on_wrong_server() -> str:
    return "a ':device' suffix only belongs on user JIDs (@s.whatsapp.net, @c.us, @lid)"


def _split_device(text: str, user_part: str, server: str) -> tuple[str, int]:
    """Strip `:device` and `.agent` / `_agent` suffixes; return (user, device)."""
    if server not in _DEVICE_SERVERS:
        if ":" in user_part:
            raise _jid_error(text, _device_on_wrong_server())
        return user_part, 0
    user, colon, device_text = user_part.partition(":")
    device = 0
    if colon:
        device = _small_int(text, "device", ":", device_text, _MAX_DEVICE)
    # whatsmeow writes the agent as "user.agent:device", Baileys as "user_agent:device".
    # It identifies the client software, not the account, so it is checked and dropped.
    for separator in "._":
        if separator in user:
            user, _, agent_text = user.partition(separator)
            _small_int(text, "agent", separator, agent_text, _MAX_AGENT)
            break
    return user, device


def _small_int(text: str, what: str, separator: str, value: str, maximum: int) -> int:
    if _DIGITS.fullmatch(value):
        number = int(value)
        if number <= maximum:
            return number
        raise _jid_error(text, f"{what} number {number} is out of range (0..{maximum})")
    if value.startswith("-") and _DIGITS.fullmatch(value[1:]):
        raise _jid_error(text, f"{what} number {value} is negative")
    if not value:
        raise _jid_error(text, f"the {what} number after {separator!r} is missing")
    raise _jid_error(text, f"{what} {_quote(value)} is not a number")


def _user_problem(user: str, server: str) -> str | None:
    """Why `user` cannot be the user part of a JID on `server`, or None if it can."""
    if not user:
        return "nothing precedes the '@'"
    if server == SERVER_USER:
        if user == _PSA_USER:
            return None
        return _digits_problem(user, "a phone number", *_PHONE_USER_DIGITS)
    if server == SERVER_LID:
        return _digits_problem(user, "a LID", *_LID_DIGITS)
    if server == SERVER_GROUP:
        if len(user) > _ID_MAX_CHARS:
            return f"a group id is at most {_ID_MAX_CHARS} characters, this one has {len(user)}"
        if _DIGITS.fullmatch(user) or _LEGACY_GROUP.fullmatch(user):
            return None
        return (
            f"a group id is digits (120363041234567890) or creator-timestamp "
            f"(5511999990000-1612345678), not {_quote(user)}"
        )
    if server == SERVER_BROADCAST:
        if user == _STATUS_USER:
            return None
        return _digits_problem(user, "a broadcast list id", 1, _ID_MAX_CHARS)
    if server == SERVER_NEWSLETTER:
        return _digits_problem(user, "a newsletter id", 1, _ID_MAX_CHARS)
    return f"unknown server {_quote(server)}"


def _digits_problem(user: str, what: str, shortest: int, longest: int) -> str | None:
    if not _DIGITS.fullmatch(user):
        return f"the user part must be {what} in digits, not {_quote(user)}"
    if len(user) > longest:
        return f"{what} has at most {longest} digits, this one has {len(user)}"
    if len(user) < shortest:
        return f"{what} has at least {shortest} digits, this one has {len(user)}"
    return None


# --- phone helpers -------------------------------------------------------------------

# Separators people type between digit groups, including the Unicode dashes that word
# processors substitute for '-'.
_PHONE_SEPARATORS: Final = frozenset(" -.()/\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
_PLUS_SIGNS: Final = frozenset("+\uff0b")
# phonenumbers' own limit is 250; nothing this long is a phone number anyway.
_MAX_PHONE_CHARS: Final = 64


def _check_region(default_region: str | None) -> str | None:
    if default_region is None:
        return None
    region = default_region.strip().upper()
    if not region:
        # An unset setting often arrives as "" from the environment.
        return None
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidPhoneNumber(
            f"unknown default region {default_region!r}: use a two-letter ISO 3166 "
            "country code such as 'BR', 'GB' or 'US'"
        )
    return region


def _check_phone_characters(raw: str, text: str) -> None:
    """Reject what phonenumbers would silently reinterpret.

    phonenumbers turns letters into keypad digits ("1-800-FLOWERS"), reads "#", "x" or
    "ext" as an extension and drops it, and ignores trailing junk, so such inputs would
    come back as a *different* number instead of an error.
    """
    if len(text) > _MAX_PHONE_CHARS:
        raise InvalidPhoneNumber(
            f"not a phone number: {_quote(raw)} is {len(text)} characters long; "
            f"give a single number, {_PHONE_EXAMPLE}"
        )
    if any(ch.isalpha() for ch in text):
        why = ""
        if any(ch.isdecimal() for ch in text):
            why = " (extensions and keypad letters are no part of a WhatsApp number)"
        raise InvalidPhoneNumber(
            f"not a phone number: {_quote(raw)} contains letters; write it in digits "
            f"with its country code, {_PHONE_EXAMPLE}{why}"
        )
    for ch in text:
        if not (ch.isdecimal() or ch in _PHONE_SEPARATORS or ch in _PLUS_SIGNS):
            raise InvalidPhoneNumber(
                f"not a phone number: {_quote(raw)} contains {ch!r}, which has no place "
                f"in a phone number; {_PHONE_EXAMPLE}"
            )
    pluses = [i for i, ch in enumerate(text) if ch in _PLUS_SIGNS]
    first_digit = next((i for i, ch in enumerate(text) if ch.isdecimal()), len(text))
    if len(pluses) > 1 or (pluses and pluses[0] > first_digit):
        raise InvalidPhoneNumber(
            f"not a phone number: {_quote(raw)}: a single '+' may only precede the "
            f"country code, {_PHONE_EXAMPLE}"
        )


def _reads_back_as_itself(digits: str) -> bool:
    """Whether `digits` normalize to themselves, as stored phone numbers must.

    phonenumbers drops a national prefix written after the country code ("+44 (0) 20
    ..." is "+44 20 ..."). When what remains starts with that prefix again ("+49 00 62
    ..."), the E.164 form loses one more digit each time it is re-read, so a stored
    number would stop matching its own JID. No real number is shaped like that.
    """
    try:
        again = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.format_number(again, phonenumbers.PhoneNumberFormat.E164) == "+" + digits


def _parse_failure(raw: str, text: str, region: str | None, error_type: int) -> str:
    q = _quote(raw)
    exc = phonenumbers.NumberParseException
    if error_type == exc.INVALID_COUNTRY_CODE:
        if region is None and text.lstrip("+( ").startswith("0"):
            return (
                f"cannot tell the country of {q}: it starts with 0 like a national "
                f"number; write it with its country code ({_PHONE_EXAMPLE}) or pass "
                "default_region"
            )
        return (
            f"cannot tell the country of {q}: it does not start with a known country "
            f"code; {_PHONE_EXAMPLE}"
        )
    # phonenumbers calls one or two digits "not a number"; to a person it is too short.
    short = error_type == exc.NOT_A_NUMBER and any(ch.isdecimal() for ch in text)
    if short or error_type in (exc.TOO_SHORT_AFTER_IDD, exc.TOO_SHORT_NSN):
        return f"phone number {q} is too short; {_PHONE_EXAMPLE}"
    if error_type == exc.TOO_LONG:
        return f"phone number {q} is too long; {_PHONE_EXAMPLE}"
    return f"not a phone number: {q}; {_PHONE_EXAMPLE}"


def _impossible_reason(raw: str, country_code: int | None, reason: int) -> str:
    q = _quote(raw)
    result = phonenumbers.ValidationResult
    if reason == result.TOO_SHORT:
        return (
            f"phone number {q} is too short (read with country code +{country_code}); "
            f"{_PHONE_EXAMPLE}"
        )
    if reason == result.TOO_LONG:
        return (
            f"phone number {q} is too long (read with country code +{country_code}); "
            f"{_PHONE_EXAMPLE}"
        )
    if reason == result.IS_POSSIBLE_LOCAL_ONLY:
        return (
            f"phone number {q} lacks its area code; give the full number with country "
            f"code, {_PHONE_EXAMPLE}"
        )
    if reason == result.INVALID_COUNTRY_CODE:
        return f"phone number {q} has an unknown country code; {_PHONE_EXAMPLE}"
    return (
        f"phone number {q} has the wrong number of digits for country code "
        f"+{country_code}; {_PHONE_EXAMPLE}"
    )
