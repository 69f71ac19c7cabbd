"""Assemble a runtime with every feature installed (serve, demo and tests use this).

Each feature exposes `install(runtime)`, which registers its transaction hooks and
services. Order matters only where a feature says so.
"""

from __future__ import annotations

from wasync.config import Settings
from wasync.runtime import Runtime


def build_runtime(settings: Settings) -> Runtime:
    runtime = Runtime(settings)
    # Features add one line each here, e.g.:
    #   from wasync.avatars import install as install_avatars; install_avatars(runtime)
    return runtime
