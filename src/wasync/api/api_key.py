"""Where the API key comes from: settings, a file in the data directory, or made anew.

The key is a bearer secret for everything the mirror holds, so it is generated with
`secrets`, written with mode 0600 (never readable by other users), compared in
constant time (deps.py) and never logged; the CLI prints it once, when it is made.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wasync.config import Settings
from wasync.errors import ConfigError
from wasync.files import private_dir

KEY_FILE = "api-key"
MIN_KEY_LENGTH = 16

KeySource = Literal["settings", "file", "generated", "disabled"]


@dataclass(frozen=True, slots=True)
class ApiKey:
    value: str | None  # None: authentication is off (loopback only)
    source: KeySource
    path: Path | None = None

    def __repr__(self) -> str:  # never show the secret in logs or tracebacks
        return f"ApiKey(source={self.source!r}, path={self.path!r})"


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def key_file(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def resolve_api_key(settings: Settings, host: str) -> ApiKey:
    """The key `wasync serve` will require on `host`; refuses unsafe combinations."""
    if not settings.auth:
        if not is_loopback(host):
            raise ConfigError(
                f"refusing to serve on {host} without an API key: authentication may be "
                "switched off only on a loopback address (127.0.0.1, ::1, localhost); "
                "drop --no-auth / WASYNC_AUTH=false, or bind 127.0.0.1"
            )
        return ApiKey(None, "disabled")
    configured = settings.api_key.get_secret_value().strip() if settings.api_key else ""
    if configured:
        if len(configured) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"WASYNC_API_KEY is too short ({len(configured)} characters): use at least "
                f"{MIN_KEY_LENGTH}, or unset it and let wasync generate one"
            )
        return ApiKey(configured, "settings")
    path = key_file(settings.data_dir)
    stored = _read_key_file(path)
    if stored is not None:
        return ApiKey(stored, "file", path)
    return ApiKey(_create_key_file(path), "generated", path)


def _read_key_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the API key file {path}: {exc.strerror}") from None
    if len(text) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"the API key file {path} holds no usable key (fewer than {MIN_KEY_LENGTH} "
            "characters): delete it to have a new key generated"
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # Someone widened it (or a copy did): a secret readable by others is no secret.
        os.chmod(path, 0o600)
    return text


def _create_key_file(path: Path) -> str:
    key = secrets.token_urlsafe(32)
    try:
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process made it first: use theirs, so both agree.
        stored = _read_key_file(path)
        assert stored is not None
        return stored
    except OSError as exc:
        raise ConfigError(f"cannot create the API key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key + "\n")
    return key
