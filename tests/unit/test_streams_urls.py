"""Broker endpoint URLs: what they mean, the one-line errors, and masking."""

from __future__ import annotations

import pytest

from wasync.delivery import endpoints as E
from wasync.delivery.http import redact_url
from wasync.delivery.ssrf import InvalidURL
from wasync.delivery.streams import targets
from wasync.errors import DomainError


def test_a_nats_url_names_the_server_the_prefix_and_the_stream() -> None:
    found = targets.parse("nats://u:p@broker.internal:4222/acme.whatsapp")
    assert found == targets.NatsTarget(
        "nats://u:p@broker.internal:4222", "acme.whatsapp", "acme_whatsapp"
    )
    assert found.subject("sales.team", "message.edit") == "acme.whatsapp.sales_team.message.edit"
    assert targets.parse("nats://127.0.0.1/w?stream=EVENTS").stream == "EVENTS"  # type: ignore[union-attr]


def test_an_amqp_url_names_the_vhost_and_the_exchange() -> None:
    found = targets.parse("amqp://guest:guest@127.0.0.1:5672/prod?exchange=wa.events")
    assert found == targets.AmqpTarget("amqp://guest:guest@127.0.0.1:5672/prod", "wa.events")
    assert targets.parse("amqps://h/?exchange=x") == targets.AmqpTarget("amqps://h", "x")
    assert targets.AmqpTarget.routing_key("default", "sync.progress") == "default.sync.progress"


def test_a_redis_url_names_the_db_the_stream_and_the_cap() -> None:
    assert targets.parse("redis://127.0.0.1:6379/2?stream=wa:events&maxlen=5000") == (
        targets.RedisTarget("redis://127.0.0.1:6379/2", "wa:events", 5000)
    )
    assert targets.parse("rediss://:pw@h?stream=s") == targets.RedisTarget(
        "rediss://:pw@h/0", "s", None
    )


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("kafka://h:9092/x", "unknown broker URL scheme kafka://"),
        ("nats://h:4222", "needs a subject prefix"),
        ("nats://h:4222/a.*", "bad subject prefix"),
        ("nats://h:4222/a..b", "bad subject prefix"),
        ("nats://h:4222/a?stream=a.b", "bad JetStream stream name"),
        ("nats://h:4222/a?strem=x", "unknown parameter 'strem'"),
        ("amqp://guest:guest@h:5672/", "needs an exchange"),
        ("amqp://h/?exchange=amq.topic", "bad exchange name"),
        ("amqp://h/a/b?exchange=x", "write '/' inside it as %2F"),
        ("amqp://h/?exchange=x&exchange=y", "appears twice"),
        ("redis://h:6379/0", "needs a stream"),
        ("redis://h:6379/x?stream=s", "bad Redis database 'x'"),
        ("redis://h/0?stream=s&maxlen=-1", "bad maxlen '-1'"),
        ("redis://h:99999/0?stream=s", "bad port"),
        ("redis://h:port/0?stream=s", "bad port"),
        ("nats://h:0/x", "bad port 0"),
        ("redis:///0?stream=s", "has no host"),
    ],
)
def test_bad_urls_are_refused_in_one_line(url: str, words: str) -> None:
    with pytest.raises(InvalidURL) as caught:
        targets.parse(url)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "amqp://wasync:s3cret@mq:5672/prod?exchange=wa",
            "amqp://wasync:****@mq:5672/prod?exchange=wa",
        ),
        ("nats://tok3n@127.0.0.1:4222/wa", "nats://****@127.0.0.1:4222/wa"),
        ("redis://:pa%40ss@[::1]:6379/0?stream=s", "redis://:****@[::1]:6379/0?stream=s"),
        ("redis://127.0.0.1:6379/0?stream=s", "redis://127.0.0.1:6379/0?stream=s"),
    ],
)
def test_credentials_are_masked(url: str, shown: str) -> None:
    assert targets.mask(url) == shown
    assert redact_url(url) == shown  # what lists, errors and logs use


def test_scrub_removes_credentials_from_library_errors() -> None:
    url = "amqp://wasync:s3cret-pw@mq/?exchange=x"
    assert targets.scrub("login wasync:s3cret-pw refused", url) == "login wasync:**** refused"


def test_broker_endpoints_are_kinds_of_their_own_and_unsigned() -> None:
    spec = E.check_shape("default", "nats://127.0.0.1:4222/wa", "message,chat")
    assert (spec.kind, spec.secret, spec.events) == ("nats", None, ("message", "chat"))
    amqp = "amqp://guest:guest@127.0.0.1/?exchange=x"
    assert E.check_shape("default", amqp, "*").kind == "rabbitmq"
    assert E.check_shape("default", "redis://h/0?stream=s", "*", kind="redis").kind == "redis"
    with pytest.raises(DomainError, match="broker endpoints are not signed"):
        E.check_shape("default", "redis://h/0?stream=s", "*", secret="x" * 20)
    with pytest.raises(DomainError, match="makes a nats endpoint, not webhook"):
        E.check_shape("default", "nats://h/wa", "*", kind="webhook")
    with pytest.raises(DomainError, match="a redis endpoint needs a redis:// URL"):
        E.check_shape("default", "https://example.com/x", "*", kind="redis")
    with pytest.raises(InvalidURL, match="needs a stream"):
        E.check_shape("default", "redis://h/0", "*")


async def test_broker_urls_skip_the_ssrf_guard() -> None:
    from wasync.delivery.ssrf import Guard, UnsafeTarget

    guard = Guard()  # no network allowed: loopback webhooks are refused
    spec = await E.validate(guard, "default", "nats://127.0.0.1:4222/wa", "*")
    assert spec.kind == "nats"
    with pytest.raises(UnsafeTarget):
        await E.validate(guard, "default", "http://127.0.0.1:9/hook", "*", secret="s" * 16)
