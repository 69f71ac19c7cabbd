"""Assemble a runtime with every feature installed (serve, demo and tests use this).

Each feature exposes `install(runtime)`, which registers its transaction hooks and
services. Order matters only where a feature says so.
"""

from __future__ import annotations

from wasync.config import Settings
from wasync.runtime import Runtime


def build_runtime(settings: Settings) -> Runtime:
    from wasync.api.install import install as install_api
    from wasync.avatars import install as install_avatars
    from wasync.delivery import install as install_delivery
    from wasync.history import install as install_history

    runtime = Runtime(settings)
    # The API first: its realtime hub must be subscribed before sessions publish.
    install_api(runtime)
    install_avatars(runtime)  # transaction hook, a worker per session, queue figures
    install_delivery(runtime)  # webhooks and Discord: hook, outbox listener, worker
    install_history(runtime)  # load older / full history, gap fill: connect hook, worker
    # Features add one line each here, e.g.:
    #   from wasync.avatars import install as install_avatars; install_avatars(runtime)
    return runtime
