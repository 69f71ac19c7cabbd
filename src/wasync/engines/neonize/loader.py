"""Import neonize on first use, undoing its import-time side effects.

Importing neonize loads an 18 MB Go library, calls `logging.basicConfig(level=INFO)`
(which would hijack the host's logging when the root logger has no handler yet) and
leaks a pipe and a process from `os.popen("uname -a")`. Everything in
wasync that needs neonize goes through `module()`, so `import wasync` never pays for it
and the host's logging stays as it was configured.
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import platform
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from wasync.errors import WasyncError

_lock = threading.Lock()
_modules: dict[str, ModuleType] = {}

# The modules wasync uses, by short name.
_NAMES = {
    "client": "neonize.aioze.client",
    "events": "neonize.aioze.events",
    "proto": "neonize.proto.Neonize_pb2",
    "e2e": "neonize.proto.waE2E.WAWebProtobufsE2E_pb2",
    "history": "neonize.proto.waHistorySync.WAWebProtobufsHistorySync_pb2",
    "web": "neonize.proto.waWeb.WAWebProtobufsWeb_pb2",
    "common": "neonize.proto.waCommon.WACommon_pb2",
    "companion": "neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2",
    "enum": "neonize.utils.enum",
    "exc": "neonize.exc",
    "binder": "neonize._binder",
    "log": "neonize.utils.log",
}

# whatsmeow's own logs reach Python through this logger's level: WARNING keeps the
# Go side from shipping every debug line across the FFI boundary.
_GO_LOG_LEVEL = logging.WARNING


class NeonizeUnavailable(WasyncError):
    pass


def _uname_popen(real: Callable[..., Any]) -> Callable[..., Any]:
    """os.popen that answers neonize's `uname -a` without a subprocess.

    neonize reads `os.popen("uname -a")` at import and never closes the pipe, which
    leaves a zombie and ResourceWarnings that surface at some later garbage
    collection (errors under `-W error` and pytest's filterwarnings=error).
    """

    def popen(cmd: str, *args: Any, **kwargs: Any) -> Any:
        if cmd == "uname -a":
            return io.StringIO(" ".join(platform.uname()))
        return real(cmd, *args, **kwargs)

    return popen


def _import_all() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    real_popen = os.popen
    os.popen = _uname_popen(real_popen)
    try:
        for short, name in _NAMES.items():
            _modules[short] = importlib.import_module(name)
    except (ImportError, OSError) as exc:
        raise NeonizeUnavailable(
            f"the neonize engine needs the neonize package and libmagic: {exc} "
            "(pip install 'neonize==0.5.2'; apt-get install libmagic1)"
        ) from exc
    finally:
        os.popen = real_popen
        root.handlers[:] = handlers
        root.setLevel(level)
    neonize_log = logging.getLogger("neonize.utils.log")
    if neonize_log.level == logging.NOTSET:
        neonize_log.setLevel(_GO_LOG_LEVEL)


def module(short: str) -> Any:
    """One neonize module (see `_NAMES`), importing neonize on first call."""
    if not _modules:
        with _lock:
            if not _modules:
                _import_all()
    return _modules[short]


def is_loaded() -> bool:
    return bool(_modules)
