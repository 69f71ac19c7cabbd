"""`GET /metrics`: Prometheus text format (prometheus_client).

Figures are read at scrape time from where they already live (the runtime's
sessions, the jobs table, the avatar columns, the realtime hub), so nothing on the
ingestion path pays for metrics. Live state is read on the event loop; database
counts on a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select

from wasync.api import schemas as S
from wasync.api.deps import Authenticated
from wasync.api.realtime_hub import RealtimeHub
from wasync.api.session_control import SessionControl
from wasync.jobs import queries as queue
from wasync.runtime import Runtime
from wasync.store.schema import chats, contacts

router = APIRouter(tags=["ops"], dependencies=[Authenticated])


@dataclass(slots=True)
class LiveFigures:
    ingested: dict[str, int] = field(default_factory=dict)  # session -> events committed
    statuses: dict[str, int] = field(default_factory=dict)  # status -> sessions
    queue_stats: dict[tuple[str, str], float] = field(default_factory=dict)
    bus_published: int = 0
    realtime_clients: int = 0
    realtime_dropped: int = 0
    # (session, outcome) -> picture checks since start: new, unchanged, none, ...
    avatar_checks: dict[tuple[str, str], int] = field(default_factory=dict)
    # session -> picture requests sent to WhatsApp since start (by this node)
    avatar_requests: dict[str, int] = field(default_factory=dict)
    node: str = ""
    jobs_processed: dict[str, int] = field(default_factory=dict)  # kind -> by this node
    commit_lag: list[tuple[str, int]] = field(default_factory=list)  # cumulative buckets
    commit_lag_sum: float = 0.0


def live_figures(runtime: Runtime, hub: RealtimeHub) -> LiveFigures:
    figures = LiveFigures(
        bus_published=runtime.bus.published,
        realtime_clients=len(hub.feeds),
        realtime_dropped=hub.dropped,
        node=runtime.holder,
        jobs_processed=dict(runtime.jobs.processed),
        commit_lag=runtime.writer.lag.cumulative(),
        commit_lag_sum=runtime.writer.lag.total,
    )
    for name, handle in list(runtime.sessions.items()):
        figures.ingested[name] = handle.sync.stream.committed_events
        status = str(handle.engine.status)
        figures.statuses[status] = figures.statuses.get(status, 0) + 1
    for kind, provider in list(runtime.queue_stats.items()):
        try:
            stats = provider()
        except Exception:
            continue
        for key, value in stats.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                figures.queue_stats[(kind, str(key))] = float(value)
        if kind == "avatar":
            figures.avatar_checks.update(_avatar_checks(stats))
            sessions = stats.get("sessions")
            for name, found in (sessions if isinstance(sessions, dict) else {}).items():
                if isinstance(found, dict) and isinstance(found.get("requests"), int):
                    figures.avatar_requests[str(name)] = found["requests"]
    return figures


def _avatar_checks(stats: dict[str, Any]) -> dict[tuple[str, str], int]:
    """The avatar worker's outcome counts per session, from its queue figures."""
    out: dict[tuple[str, str], int] = {}
    sessions = stats.get("sessions")
    for name, figures in (sessions if isinstance(sessions, dict) else {}).items():
        outcomes = figures.get("outcomes") if isinstance(figures, dict) else None
        for outcome, n in (outcomes if isinstance(outcomes, dict) else {}).items():
            if isinstance(n, int):
                out[(str(name), str(outcome))] = n
    return out


class MirrorCollector(Collector):
    def __init__(self, runtime: Runtime, live: LiveFigures) -> None:
        self.runtime = runtime
        self.live = live

    def collect(self) -> Iterator[Metric]:
        live = self.live
        ingested = CounterMetricFamily(
            "wasync_events_ingested", "Engine events committed to the mirror.", labels=["session"]
        )
        for name, n in sorted(live.ingested.items()):
            ingested.add_metric([name], n)
        yield ingested
        yield HistogramMetricFamily(
            "wasync_commit_lag_seconds",
            "Seconds live events waited between reaching the writer and their commit "
            "(each event counted at its batch's first event: an upper bound).",
            buckets=live.commit_lag,
            sum_value=live.commit_lag_sum,
        )
        sessions = GaugeMetricFamily(
            "wasync_sessions", "Running sessions by connection status.", labels=["status"]
        )
        for status, n in sorted(live.statuses.items()):
            sessions.add_metric([status], n)
        yield sessions
        yield CounterMetricFamily(
            "wasync_bus_events", "Events published on the live bus.", value=live.bus_published
        )
        yield GaugeMetricFamily(
            "wasync_realtime_clients", "Connected live clients.", value=live.realtime_clients
        )
        yield CounterMetricFamily(
            "wasync_realtime_dropped_events",
            "Live events dropped for clients too slow to read them.",
            value=live.realtime_dropped,
        )
        stats = GaugeMetricFamily(
            "wasync_queue_stat", "Figures reported by queue workers.", labels=["kind", "name"]
        )
        for (kind, name), value in sorted(live.queue_stats.items()):
            stats.add_metric([kind, name], value)
        yield stats
        checks = CounterMetricFamily(
            "wasync_avatar_checks",
            "Profile picture checks since start by outcome: new, unchanged, none, "
            "rate_limited, failed.",
            labels=["session", "outcome"],
        )
        for (session, outcome), n in sorted(live.avatar_checks.items()):
            checks.add_metric([session, outcome], n)
        yield checks
        requests = CounterMetricFamily(
            "wasync_avatar_requests",
            "Picture requests this node sent to WhatsApp since start, per session.",
            labels=["session"],
        )
        for session, n in sorted(live.avatar_requests.items()):
            requests.add_metric([session], n)
        yield requests
        info = GaugeMetricFamily("wasync_node", "This node (value 1), by name.", labels=["node"])
        info.add_metric([live.node], 1)
        yield info
        processed = CounterMetricFamily(
            "wasync_jobs_processed",
            "Jobs this node ran to an outcome since start, by kind.",
            labels=["node", "kind"],
        )
        for kind, n in sorted(live.jobs_processed.items()):
            processed.add_metric([live.node, kind], n)
        yield processed
        yield from self._from_database()

    def _from_database(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "wasync_jobs", "Jobs in the queue by kind and state.", labels=["kind", "state"]
        )
        avatars = GaugeMetricFamily(
            "wasync_avatars",
            "Avatar outcomes of contacts and chats: stored, none (no picture or hidden), "
            "pending (not fetched yet).",
            labels=["table", "outcome"],
        )
        with self.runtime.db.read() as conn:
            for kind, states in sorted(queue.counts(conn).items()):
                for state, n in sorted(states.items()):
                    depth.add_metric([kind, state], n)
            for table in (contacts, chats):
                outcome = case(
                    (table.c.profile_picture.is_(None), "pending"),
                    (table.c.profile_picture == "none", "none"),
                    else_="stored",
                )
                rows = conn.execute(select(outcome, func.count()).group_by(outcome))
                for name, n in rows:
                    avatars.add_metric([table.name, str(name)], int(n))
        yield depth
        yield avatars
        yield self._nodes()

    def _nodes(self) -> Metric:
        """Sessions run by each node of the cluster (each holder, on SQLite)."""
        from wasync.cluster import nodes

        held = GaugeMetricFamily(
            "wasync_node_sessions", "Sessions each node (or command) runs.", labels=["node"]
        )
        with self.runtime.db.read() as conn:
            for holder, sids in sorted(nodes.sessions_by_holder(conn, time.time()).items()):
                held.add_metric([holder], len(sids))
        return held


def render(runtime: Runtime, live: LiveFigures, control: SessionControl) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MirrorCollector(runtime, live))
    registry.register(control.sync_seconds)
    return generate_latest(registry)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **S.error_responses(401)},
    summary="Prometheus metrics",
)
async def metrics(request: Request) -> Response:
    state: Any = request.app.state
    live = live_figures(state.runtime, state.hub)
    body = await asyncio.to_thread(render, state.runtime, live, state.control)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
