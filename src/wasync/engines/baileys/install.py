"""Where the Baileys sidecar runs from, whether it can, and installing it.

The sidecar's JavaScript, `package.json` and `package-lock.json` ship inside the
wasync package (`sidecar/`); its npm packages do not (Baileys' libsignal is GPL-3.0:
the user installs it from npm). `wasync engine install baileys` runs `npm ci` against
the lockfile into the install directory:

1. `WASYNC_BAILEYS_DIR` when set;
2. else the package's own `sidecar/` directory when it is writable (a checkout, an
   editable install, a container image built with it);
3. else `$XDG_DATA_HOME/wasync/baileys` (`~/.local/share/wasync/baileys`), for a
   read-only site-packages.

Outside the package directory the JavaScript files are copied next to the packages
(Node resolves `import 'baileys'` from the importing file) and refreshed at each
start, and a stamp of the lockfile says which wasync the packages were installed for.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wasync.engines.base import EngineError

SIDECAR = Path(__file__).resolve().parent / "sidecar"
SOURCES = ("main.mjs", "protocol.mjs", "auth.mjs", "session.mjs", "hooks.mjs", "version.mjs")
MANIFESTS = ("package.json", "package-lock.json", ".npmrc")
STAMP = ".wasync-lock-sha256"
MIN_NODE = 20
BAILEYS_VERSION = "7.0.0-rc14"


class EngineUnavailable(EngineError):
    """The Baileys engine cannot run here; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Availability:
    available: bool
    reason: str | None  # why not, in one line, when not available
    directory: Path
    node: str | None = None  # Node's version, when found


def lock_digest() -> str:
    return hashlib.sha256((SIDECAR / "package-lock.json").read_bytes()).hexdigest()


def user_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "wasync" / "baileys"


def install_dir(configured: Path | None = None) -> Path:
    """Where `engine install` puts the packages (see the module docstring)."""
    if configured is not None:
        return configured.expanduser().resolve()
    if os.access(SIDECAR, os.W_OK):
        return SIDECAR
    return user_dir()


def run_dir(configured: Path | None = None) -> Path:
    """Where an installed sidecar is: the configured one, else the first installed."""
    if configured is not None:
        return configured.expanduser().resolve()
    for candidate in (SIDECAR, user_dir()):
        if (candidate / "node_modules" / "baileys").is_dir():
            return candidate
    return install_dir()


def node_binary() -> str | None:
    return shutil.which("node")


def node_version(node: str) -> tuple[int, str] | None:
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", out)
    return (int(match.group(1)), out) if match else None


def check(configured: Path | None = None) -> Availability:
    """Whether the Baileys engine can run, and if not, why (one line)."""
    directory = run_dir(configured)
    node = node_binary()
    version = node_version(node) if node else None
    if version is None or version[0] < MIN_NODE:
        found = f" (found {version[1]})" if version else ""
        return Availability(False, f"Node.js >= {MIN_NODE} not found{found}", directory)
    if not (directory / "node_modules" / "baileys").is_dir():
        return Availability(
            False, "not installed: run `wasync engine install baileys`", directory, version[1]
        )
    if directory != SIDECAR:
        stamp = directory / STAMP
        if not stamp.exists() or stamp.read_text().strip() != lock_digest():
            return Availability(
                False,
                "installed for another wasync version: run `wasync engine install baileys`",
                directory,
                version[1],
            )
    return Availability(True, None, directory, version[1])


def require(configured: Path | None = None) -> Path:
    """The directory to run the sidecar from; raises EngineUnavailable with the reason."""
    status = check(configured)
    if not status.available:
        raise EngineUnavailable(f"the Baileys engine is unavailable: {status.reason}")
    if status.directory != SIDECAR:
        copy_sources(status.directory)
    return status.directory


def copy_sources(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in (*SOURCES, *MANIFESTS):
        source = SIDECAR / name
        target = directory / name
        data = source.read_bytes()
        if not target.exists() or target.read_bytes() != data:
            tmp = target.with_name(f".{name}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)


def install(configured: Path | None = None, *, timeout: float = 600.0) -> Path:
    """`npm ci` against the committed lockfile; returns the install directory."""
    node = node_binary()
    version = node_version(node) if node else None
    if version is None or version[0] < MIN_NODE:
        raise EngineUnavailable(f"the Baileys engine needs Node.js >= {MIN_NODE} (and npm)")
    npm = shutil.which("npm")
    if npm is None:
        raise EngineUnavailable("npm not found: install npm (it comes with Node.js)")
    directory = install_dir(configured)
    if directory != SIDECAR:
        copy_sources(directory)
    try:
        done = subprocess.run(
            [npm, "ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise EngineError(f"npm ci did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise EngineError(f"npm ci failed in {directory}: {last}")
    (directory / STAMP).write_text(lock_digest() + "\n")
    return directory
