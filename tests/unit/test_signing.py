"""Signatures, envelopes and event ids of deliveries; redaction; response judgement."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest

from wasync.delivery import discord, topics
from wasync.delivery.envelope import Event, body_of, fact_id
from wasync.delivery.http import Answer, redact_url, retry_after
from wasync.delivery.signing import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    new_secret,
    signed_headers,
    verify,
)
from wasync.delivery.webhook_sink import judge
from wasync.jobs.outcome import Done, Retry

SECRET = "whsec_test-secret-0123456789"


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = body_of(Event("evt_1", "message", "default", {"text": "olá"}, 1.5).envelope())
    headers = signed_headers(
        SECRET, event_id="evt_1", event="message", body=body, attempt=2, timestamp=1_800_000_000
    )
    expected = hmac.new(SECRET.encode(), b"1800000000." + body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"
    assert headers[EVENT_ID_HEADER] == headers["Idempotency-Key"] == "evt_1"
    assert headers[TIMESTAMP_HEADER] == "1800000000"
    assert verify(SECRET, headers, body, now=1_800_000_010)


def test_verification_rejects_tampering_old_timestamps_and_other_secrets() -> None:
    body = b'{"id":"evt_1"}'
    headers = signed_headers(
        SECRET, event_id="evt_1", event="message", body=body, attempt=1, timestamp=1_800_000_000
    )
    assert not verify(SECRET, headers, body + b" ", now=1_800_000_000)
    assert not verify("whsec_another-secret-000000", headers, body, now=1_800_000_000)
    assert not verify(SECRET, headers, body, now=1_800_000_000 + 301)  # a replay, later
    forged = {**headers, TIMESTAMP_HEADER: "1800000300"}  # fresh timestamp, old signature
    assert not verify(SECRET, forged, body, now=1_800_000_300)
    assert not verify(SECRET, {}, body)


def test_envelope_shape_and_ids() -> None:
    event = Event.of_fact("default", "message", {"x": 1}, "chat", "sender", "ABC")
    envelope = event.envelope()
    assert set(envelope) == {"id", "event", "session", "timestamp", "data"}
    # A fact has one id whenever it is seen; occurrences never repeat one.
    assert event.id == fact_id("default", "message", "chat", "sender", "ABC")
    assert event.id != fact_id("other", "message", "chat", "sender", "ABC")
    assert Event.occurrence("s", "chat", {}).id != Event.occurrence("s", "chat", {}).id
    assert new_secret() != new_secret() and new_secret().startswith("whsec_")


def test_event_filters() -> None:
    assert topics.parse_filter("reaction, message,message") == ("message", "reaction")
    assert topics.parse_filter(["*", "message"]) == ("*",)
    with pytest.raises(topics.InvalidEventFilter, match="unknown event type 'messages'"):
        topics.parse_filter("messages")
    with pytest.raises(topics.InvalidEventFilter, match="empty"):
        topics.parse_filter(" , ")
    with pytest.raises(topics.InvalidEventFilter, match="Discord"):
        topics.check_discord_filter(("message",))
    assert topics.wants(("*",), "sync.progress")
    assert not topics.wants(("*",), "message", kind="discord")


def test_urls_in_logs_keep_no_token_password_or_query_value() -> None:
    url = "https://user:pw@discord.com/api/webhooks/123/SeCrEt-token?thread_id=9"
    shown = redact_url(url)
    assert "SeCrEt" not in shown and "pw" not in shown and "9" not in shown.split("?")[1]
    assert shown.startswith("https://****@discord.com/api/webhooks/123/****")


def _answer(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Answer:
    return Answer(status, httpx.Headers(headers or {}), body)


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(500, False), (503, False), (408, False), (429, False), (410, True), (400, True), (404, True)],
)
def test_which_answers_are_retried(status: int, permanent: bool) -> None:
    outcome = judge(_answer(status))
    assert isinstance(outcome, Retry) and outcome.permanent is permanent
    assert str(status) in outcome.error
    assert isinstance(judge(_answer(204)), Done)


def test_retry_after_is_honoured_in_seconds_or_as_a_date() -> None:
    outcome = judge(_answer(429, {"Retry-After": "7"}))
    assert isinstance(outcome, Retry) and outcome.retry_after == 7
    dated = _answer(503, {"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"})
    assert retry_after(dated, now=1445412480.0) == 30.0
    assert retry_after(_answer(503, {"Retry-After": "soon"})) is None
    redirect = judge(_answer(301, {"Location": "https://new.example/hook?key=abc"}))
    assert isinstance(redirect, Retry) and redirect.permanent and "abc" not in redirect.error


def test_discord_rate_limit_uses_the_json_retry_after() -> None:
    body = b'{"message": "You are being rate limited.", "retry_after": 1.25, "global": false}'
    assert discord.rate_limit_wait(_answer(429, {"Retry-After": "2"}, body)) == 1.25
    assert discord.rate_limit_wait(_answer(429, {"Retry-After": "2"}, b"")) == 2.0


def test_pictures_are_shrunk_below_the_upload_limit() -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.effect_noise((600, 600), 80).convert("RGB").save(buf, "PNG")
    data = buf.getvalue()
    small, why = discord.prepare_image(data, "avatar", limit=40_000)
    assert why is None and small is not None
    assert len(small.data) <= 40_000 and small.filename == "avatar.jpg"
    same, _ = discord.prepare_image(data, "avatar")
    assert same is not None and same.data == data and same.filename == "avatar.png"
    none, why_not = discord.prepare_image(b"not an image", "avatar")
    assert none is None and why_not is not None
