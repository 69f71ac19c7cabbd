"""Every API router, in one list: a feature adds its router here with one line."""

from __future__ import annotations

from fastapi import APIRouter

from wasync.api import (
    metrics,
    readiness,
    realtime_ws,
    routes_avatars,
    routes_chats,
    routes_cluster,
    routes_contacts,
    routes_history,
    routes_media,
    routes_queues,
    routes_search,
    routes_sessions,
    routes_webhooks,
)

ROUTERS: list[APIRouter] = [
    routes_sessions.router,
    routes_chats.router,
    routes_contacts.router,
    routes_media.router,
    routes_queues.router,
    routes_cluster.router,
    metrics.router,
    readiness.router,
    realtime_ws.router,
]

# Profile pictures: the /api endpoints, and /media/avatars/... (its own auth rule).
ROUTERS += [routes_avatars.router, routes_avatars.media_router]

# Webhooks and Discord endpoints of a session, dead letters, retries.
ROUTERS.append(routes_webhooks.router)

# History on demand (load older / full history) and a chat's sync state.
ROUTERS.append(routes_history.router)

# Message search (store/search.py).
ROUTERS.append(routes_search.router)
