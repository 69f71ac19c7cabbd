"""Broker endpoint URLs: parsing, validation with one-line errors, and masking.

    nats://[user:pass@]host:4222/<subject prefix>[?stream=<name>]
    amqp://user:pass@host:5672/<vhost>?exchange=<name>          (amqps:// for TLS)
    redis://[user:pass@]host:6379/<db>?stream=<name>[&maxlen=N] (rediss:// for TLS)

No network here: a broker's URL is checked for form, and the connection is made
(and judged) by the publisher on the first event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from wasync.delivery.ssrf import InvalidURL

# Endpoint kind (and delivery job kind) by URL scheme.
SCHEMES = {
    "nats": "nats",
    "amqp": "rabbitmq",
    "amqps": "rabbitmq",
    "redis": "redis",
    "rediss": "redis",
}
KINDS = ("nats", "rabbitmq", "redis")
DEFAULT_PORTS = {"nats": 4222, "amqp": 5672, "amqps": 5671, "redis": 6379, "rediss": 6379}
# Query parameters each kind understands; anything else is refused (a typo would
# otherwise be silently ignored).
PARAMS = {"nats": ("stream",), "rabbitmq": ("exchange",), "redis": ("stream", "maxlen")}
MAX_NAME = 200

# A NATS subject token: no '.', wildcards or whitespace (and we keep to the safe set).
_SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
# JetStream stream names must not contain '.', '*', '>', path separators or spaces.
_STREAM_NAME = re.compile(rf"^[A-Za-z0-9_-]{{1,{MAX_NAME}}}$")
# RabbitMQ exchange names: letters, digits, '-', '_', '.', ':' (the AMQP 0-9-1 rule).
_EXCHANGE = re.compile(rf"^[A-Za-z0-9_.:-]{{1,{MAX_NAME}}}$")


@dataclass(frozen=True, slots=True)
class NatsTarget:
    server: str  # nats://[user:pass@]host:port, what the client connects to
    prefix: str
    stream: str  # the JetStream stream created when missing

    def subject(self, session: str, event: str) -> str:
        return f"{self.prefix}.{token(session)}.{event}"


@dataclass(frozen=True, slots=True)
class AmqpTarget:
    url: str  # amqp(s)://user:pass@host:port/vhost, what the client connects to
    exchange: str

    @staticmethod
    def routing_key(session: str, event: str) -> str:
        return f"{token(session)}.{event}"


@dataclass(frozen=True, slots=True)
class RedisTarget:
    url: str  # redis(s)://[user:pass@]host:port/db, what the client connects to
    stream: str
    maxlen: int | None  # None: the setting's default; 0: never trimmed


Target = NatsTarget | AmqpTarget | RedisTarget


def token(session: str) -> str:
    """A session name as one subject/routing-key word: '.' separates words there."""
    return session.replace(".", "_")


def is_broker_url(url: str) -> bool:
    return url.strip().split(":", 1)[0].lower() in SCHEMES


def kind_of(url: str) -> str | None:
    return SCHEMES.get(url.strip().split(":", 1)[0].lower())


def parse(url: str) -> Target:
    """The target of a broker URL, or InvalidURL saying what is wrong, in one line."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"bad port or address in the broker URL: {exc}") from None
    scheme = parts.scheme.lower()
    kind = SCHEMES.get(scheme)
    if kind is None:
        raise InvalidURL(
            f"unknown broker URL scheme {scheme + '://' if scheme else '(none)'}: use "
            "nats://, amqp://, amqps://, redis:// or rediss://"
        )
    if not parts.hostname:
        raise InvalidURL(f"the {scheme}:// URL has no host")
    if port == 0:
        raise InvalidURL(f"bad port 0 in the {scheme}:// URL")
    if parts.fragment:
        raise InvalidURL(f"the {scheme}:// URL must not have a #fragment")
    query = _query(parts.query, kind, scheme)
    base = urlunsplit((scheme, parts.netloc, "", "", ""))
    path = parts.path
    if kind == "nats":
        return _nats(base, path, query)
    if kind == "rabbitmq":
        return _amqp(base, path, query)
    return _redis(base, path, query)


def _query(query: str, kind: str, scheme: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise InvalidURL(f"the {scheme}:// URL's query is malformed") from None
    out: dict[str, str] = {}
    for key, value in pairs:
        if key not in PARAMS[kind]:
            known = ", ".join(PARAMS[kind])
            raise InvalidURL(f"unknown parameter {key!r} in the {scheme}:// URL (known: {known})")
        if key in out:
            raise InvalidURL(f"parameter {key!r} appears twice in the {scheme}:// URL")
        out[key] = value
    return out


def _nats(base: str, path: str, query: dict[str, str]) -> NatsTarget:
    prefix = unquote(path.strip("/"))
    if not prefix:
        raise InvalidURL("the nats:// URL needs a subject prefix: nats://host:4222/<prefix>")
    words = prefix.split(".")
    bad = next((w for w in words if not _SUBJECT_TOKEN.match(w)), None)
    if bad is not None:
        raise InvalidURL(
            f"bad subject prefix {prefix!r}: use words of letters, digits, '_' or '-', "
            "separated by '.'"
        )
    stream = query.get("stream") or "_".join(words)
    if not _STREAM_NAME.match(stream):
        raise InvalidURL(f"bad JetStream stream name {stream!r}: letters, digits, '_' or '-'")
    return NatsTarget(base, prefix, stream)


def _amqp(base: str, path: str, query: dict[str, str]) -> AmqpTarget:
    exchange = query.get("exchange")
    if not exchange:
        raise InvalidURL(
            "the amqp:// URL needs an exchange: amqp://user:pass@host:5672/<vhost>?exchange=<name>"
        )
    if not _EXCHANGE.match(exchange) or exchange.startswith("amq."):
        raise InvalidURL(
            f"bad exchange name {exchange!r}: letters, digits, '-', '_', '.', ':' "
            "(and not starting with 'amq.')"
        )
    vhost = path[1:] if path.startswith("/") else path
    if "/" in vhost:
        raise InvalidURL("the amqp:// URL's path is the vhost: write '/' inside it as %2F")
    return AmqpTarget(base + ("/" + vhost if vhost else ""), exchange)


def _redis(base: str, path: str, query: dict[str, str]) -> RedisTarget:
    stream = query.get("stream")
    if not stream:
        raise InvalidURL("the redis:// URL needs a stream: redis://host:6379/<db>?stream=<name>")
    if len(stream) > MAX_NAME:
        raise InvalidURL(f"the stream name is longer than {MAX_NAME} characters")
    db = path.strip("/") or "0"
    if not db.isdigit():
        raise InvalidURL(f"bad Redis database {db!r} in the redis:// URL: a number, e.g. /0")
    maxlen: int | None = None
    if "maxlen" in query:
        raw = query["maxlen"]
        if not raw.isdigit():
            raise InvalidURL(f"bad maxlen {raw!r} in the redis:// URL: a whole number (0: no cap)")
        maxlen = int(raw)
    return RedisTarget(f"{base}/{int(db)}", stream, maxlen)


def mask(url: str) -> str:
    """A broker URL safe to show and log: the password (or a NATS token) masked.

    The user name stays (it helps tell endpoints apart); a user name alone is masked,
    since NATS takes a token there. Query parameters are names of streams and
    exchanges, not secrets, and stay.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    netloc = f"[{host}]" if ":" in host else host
    if port:
        netloc += f":{port}"
    if parts.password is not None:
        netloc = f"{quote(unquote(parts.username or ''), safe='')}:****@{netloc}"
    elif parts.username:
        netloc = f"****@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def secrets_of(url: str) -> list[str]:
    """The credentials in a URL, to scrub from error text a client library wrote."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return []
    found: list[str] = []
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    elif parts.username:
        found += [parts.username, unquote(parts.username)]
    return [s for s in found if len(s) >= 3]


def scrub(text: str, url: str) -> str:
    for secret in secrets_of(url):
        text = text.replace(secret, "****")
    return text
