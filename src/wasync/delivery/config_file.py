"""Endpoints declared in a TOML file (`WASYNC_WEBHOOKS_FILE`), loaded at start-up.

    [[endpoint]]
    session = "default"
    url = "https://crm.example.com/hooks/whatsapp"
    events = ["message", "avatar"]
    secret_env = "CRM_WEBHOOK_SECRET"   # or: secret = "…" (at least 16 characters)
    description = "CRM"

    [[endpoint]]
    session = "default"
    url = "https://discord.com/api/webhooks/123/abc"
    events = ["avatar"]

    [[endpoint]]
    session = "default"
    url_env = "EVENTS_NATS_URL"          # or: url = "nats://127.0.0.1:4222/wasync"
    events = ["*"]

The file is the truth for the endpoints it manages: on every load, file endpoints
that are no longer listed are removed. Endpoints added through the API or CLI are
left alone. Any mistake stops start-up with a message naming the entry.
"""

from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path
from typing import Any

from wasync.delivery import endpoints as E
from wasync.delivery.http import redact_url
from wasync.delivery.ssrf import Guard, UnresolvableTarget
from wasync.errors import ConfigError, WasyncError

log = logging.getLogger(__name__)

_KEYS = {"session", "url", "url_env", "events", "secret", "secret_env", "kind", "description"}


def read_specs(path: Path) -> list[E.EndpointSpec]:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"webhooks file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read webhooks file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"webhooks file {path} is not valid TOML: {exc}") from None
    unknown_top = sorted(set(doc) - {"endpoint"})
    if unknown_top:
        raise ConfigError(f"webhooks file {path}: unknown section {unknown_top[0]!r}")
    entries = doc.get("endpoint", [])
    if not isinstance(entries, list):
        raise ConfigError(f"webhooks file {path}: write endpoints as [[endpoint]] tables")
    specs = [_spec(path, i, entry) for i, entry in enumerate(entries, start=1)]
    first: dict[tuple[str, str], int] = {}
    for n, spec in enumerate(specs, start=1):
        earlier = first.setdefault((spec.session, spec.url), n)
        if earlier != n:
            raise ConfigError(
                f"webhooks file {path}, endpoint #{n}: the same URL as endpoint #{earlier} "
                f"for session {spec.session!r} (one entry per URL: merge their events)"
            )
    return specs


def _spec(path: Path, n: int, entry: Any) -> E.EndpointSpec:
    where = f"webhooks file {path}, endpoint #{n}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: not a table")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})"
        )
    if "session" not in entry:
        raise ConfigError(f"{where}: 'session' is missing")
    if "url" not in entry and "url_env" not in entry:
        raise ConfigError(f"{where}: 'url' is missing")
    if "events" not in entry:
        raise ConfigError(f"{where}: 'events' is missing")
    if "url" in entry and "url_env" in entry:
        raise ConfigError(f"{where}: give 'url' or 'url_env', not both")
    if "url_env" in entry:
        # A broker URL carries credentials: they can stay in the environment.
        url = os.environ.get(str(entry["url_env"]))
        if not url:
            raise ConfigError(f"{where}: environment variable {entry['url_env']} is not set")
        entry = {**entry, "url": url}
    secret = entry.get("secret")
    env_name = entry.get("secret_env")
    if env_name is not None:
        secret = os.environ.get(str(env_name))
        if not secret:
            raise ConfigError(f"{where}: environment variable {env_name} is not set")
    try:
        kind = E.kind_for(str(entry["url"]).strip(), entry.get("kind"))
        if kind == "webhook" and not secret:
            # A generated secret would change on every start: receivers could not verify.
            raise ConfigError(f"{where}: a signed webhook needs `secret` or `secret_env`")
        return E.check_shape(
            str(entry["session"]),
            str(entry["url"]),
            entry["events"],
            kind=kind,
            secret=secret,
            description=entry.get("description"),
        )
    except ConfigError:
        raise
    except WasyncError as exc:
        raise ConfigError(f"{where}: {exc}") from None


async def check_targets(guard: Guard, specs: list[E.EndpointSpec]) -> None:
    """Refuse unsafe targets; a name that does not resolve now is only a warning.

    Broker endpoints are the operator's own infrastructure: no guard (README: Event
    streams)."""
    for spec in specs:
        if E.is_broker(spec.kind):
            continue
        try:
            await guard.check_url(spec.url)
        except UnresolvableTarget as exc:
            log.warning(
                "webhook %s: %s (kept; checked again on delivery)", redact_url(spec.url), exc
            )
        except WasyncError as exc:
            raise ConfigError(f"webhooks file: {exc}") from None
