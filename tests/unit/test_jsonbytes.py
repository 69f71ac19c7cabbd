"""Compact JSON for envelopes and job payloads: the same bytes the standard encoder
wrote, and a fallback for what orjson refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wasync import jsonbytes


def standard(value: Any, *, sort_keys: bool = False) -> bytes:
    return json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys
    ).encode()


ENVELOPE = {
    "id": "evt_0123456789abcdef",
    "event": "message",
    "session": "default",
    "timestamp": 1700000000.123,
    "data": {
        "chatJid": "5511999990001@s.whatsapp.net",
        "text": 'olá 👋 — "quoted"\n\ttab \\ backslash \u2028',
        "fromMe": False,
        "media": None,
        "reactions": [{"emoji": "❤️", "count": 2}],
        "size": 2**63 - 1,
        "ratio": 0.1,
    },
}


@pytest.mark.parametrize("sort_keys", [False, True])
def test_the_same_bytes_as_the_standard_encoder(sort_keys: bool) -> None:
    assert jsonbytes.dumps(ENVELOPE, sort_keys=sort_keys) == standard(ENVELOPE, sort_keys=sort_keys)


@pytest.mark.parametrize(
    "value",
    [
        {"big": 2**64},  # beyond 64 bits
        {1: "key that is not a string"},
    ],
)
def test_what_orjson_refuses_goes_through_the_standard_encoder(value: Any) -> None:
    out = jsonbytes.dumps(value, sort_keys=True)
    assert json.loads(out) == json.loads(json.dumps(value))


def test_a_lone_surrogate_is_escaped_not_written_as_invalid_utf8() -> None:
    out = jsonbytes.dumps({"text": "broken \ud800 pair", "ok": "olá"})
    assert out == b'{"text":"broken \\ud800 pair","ok":"ol\\u00e1"}'
    assert json.loads(out.decode("utf-8"))["text"] == "broken \ud800 pair"
