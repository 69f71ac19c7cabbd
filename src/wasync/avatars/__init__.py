"""Profile pictures: a durable, rate-limited worker per session and their file storage.

- `enqueue`: transaction hook and bulk enqueue (jobs of kind "avatar", one pending
  per session and JID);
- `pace`: the per-session request limiter (rate, jitter, 429 pauses);
- `fetch`: checking one JID (download, verify, store, rows + outbox);
- `worker`: claiming jobs at the pace, and the refresh of stale pictures;
- `storage`: safe names of pictures in the media store (files or database blobs);
- `status`: counts and figures for `wasync avatars status` and the API;
- `service`: the runtime service; `install(runtime)` plugs it all in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wasync.avatars.config import AvatarConfig, Pace
from wasync.avatars.enqueue import KIND
from wasync.avatars.service import AvatarService, AvatarsUnavailable, avatar_service

if TYPE_CHECKING:
    from wasync.runtime import Runtime

__all__ = [
    "KIND",
    "AvatarConfig",
    "AvatarService",
    "AvatarsUnavailable",
    "Pace",
    "avatar_service",
    "install",
]


def install(runtime: Runtime, config: AvatarConfig | None = None) -> AvatarService:
    """Register the enqueue hook, the per-session workers and the queue figures."""
    config = AvatarConfig.from_settings(runtime.settings) if config is None else config
    service = AvatarService(config)
    if config.enabled:
        runtime.add_hook(service.hook)
    runtime.add_service(service)
    runtime.queue_stats[KIND] = service.queue_stats
    return service
