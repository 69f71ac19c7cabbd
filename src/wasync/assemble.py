"""Assemble a runtime with every feature installed (serve, demo and tests use this).

Each feature exposes `install(runtime)`, which registers its transaction hooks, job
kinds and services. Order matters only where a feature says so.
"""

from __future__ import annotations

import os
import socket

from wasync.config import Settings
from wasync.runtime import Runtime
from wasync.sessions.ownership import describe_process


def node_name(settings: Settings) -> str:
    """This server's name among the nodes sharing its database."""
    return settings.node_name or f"{socket.gethostname()}-{os.getpid()}"


def build_runtime(settings: Settings, *, address: str | None = None) -> Runtime:
    from wasync.api.install import install as install_api
    from wasync.avatars import install as install_avatars
    from wasync.cluster.service import ClusterService
    from wasync.delivery import install as install_delivery
    from wasync.history import install as install_history
    from wasync.search import install as install_search

    name = node_name(settings)
    runtime = Runtime(
        settings,
        holder=name,
        holder_detail=describe_process(f"wasync serve (node {name})"),
    )
    # The cluster first: it relays live events and carries out commands of other nodes.
    runtime.add_service(ClusterService(address))
    # The API next: its realtime hub must be subscribed before sessions publish.
    install_api(runtime)
    install_avatars(runtime)  # transaction hook, the avatar job kind, queue figures
    install_delivery(runtime)  # webhooks, Discord, brokers: hook, outbox listener, kinds
    install_history(runtime)  # load older / full history, gap fill: connect hook, kinds
    install_search(runtime)  # keeps SQLite's message search index in step
    return runtime
