"""A node of a cluster: several `wasync serve` on one PostgreSQL database, nothing else.

The service registers the node, beats its heart, and sets how many sessions it should
run (its fair share: sessions / live nodes; sessions/manager.py takes them and gives
back extras). It listens for notifications (cluster/notify.py): jobs enqueued on
other nodes wake this node's runner, a session let go or a node come or gone makes
the manager look again, live events of other nodes reach this node's bus
(cluster/events.py), and commands for sessions that run here are carried out
(cluster/commands.py).

Stopping (SIGTERM) is a drain: the runtime stops every session and gives each back at
once, this node tells the others and deletes its row, so they take the sessions
within a second, not after the lease time.

On SQLite there is one machine and no cluster: the service only keeps the manager
looking for sessions another process let go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from wasync.cluster import nodes
from wasync.cluster.commands import Commands
from wasync.cluster.events import ClusterBus
from wasync.cluster.notify import Notifier
from wasync.jobs import queries as queue
from wasync.jobs import wakeups

if TYPE_CHECKING:
    from wasync.runtime import Runtime, SessionHandle

log = logging.getLogger(__name__)

CHANNEL = "wasync_cluster"
FORGET_AFTER = 3  # lease times after which a dead node's row is deleted


def default_node_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ClusterService:
    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self._runtime: Runtime | None = None
        self.notifier: Notifier | None = None
        self.bus: ClusterBus | None = None
        self.commands: Commands | None = None
        self.live_nodes = 1
        self._beat: asyncio.Task[None] | None = None
        self._registered = False
        self._stopped = False

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the cluster service is not started")
        return self._runtime

    @property
    def node(self) -> str:
        return self.runtime.holder

    @property
    def enabled(self) -> bool:
        """True on PostgreSQL: other nodes may share the database."""
        return self._runtime is not None and not self._runtime.db.is_sqlite

    # Service protocol.

    async def start(self, runtime: Runtime) -> None:
        self._runtime = runtime
        runtime.released_listeners.append(self._released)
        if runtime.db.is_sqlite:
            return
        self.commands = Commands(runtime)
        self.commands.install()
        await asyncio.to_thread(self._register)
        self._registered = True
        self.notifier = Notifier(runtime.db.url)
        self.notifier.on(wakeups.CHANNEL, self._job_note)
        self.notifier.on(CHANNEL, self._cluster_note)
        self.notifier.on_reconnect(self._caught_up)
        self.bus = ClusterBus(self.node, runtime.bus, runtime.db, self.notifier)
        await self.notifier.start()
        await self.bus.start()
        await asyncio.to_thread(self._heartbeat)
        runtime.manager.share = self._share
        self._beat = asyncio.create_task(self._beat_loop(), name="cluster-heartbeat")
        await self._tell("node")

    async def stop(self) -> None:
        if self._stopped or self._runtime is None:
            return
        self._stopped = True
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        if self.bus is not None:
            await self.bus.stop()
        if self._registered:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._unregister)
            with contextlib.suppress(Exception):
                await self._tell("node")
        if self.notifier is not None:
            await self.notifier.stop()

    async def session_added(self, handle: SessionHandle) -> None:
        pass

    async def session_removed(self, handle: SessionHandle) -> None:
        pass

    # Fair share.

    def _share(self, total: int) -> int | None:
        return math.ceil(total / max(1, self.live_nodes))

    # Registration and heartbeat.

    def _register(self) -> None:
        runtime = self.runtime
        with runtime.db.write() as conn:
            nodes.register(
                conn,
                self.node,
                queue.PROCESS_TOKEN,
                address=self.address,
                host=socket.gethostname(),
                pid=os.getpid(),
                now=time.time(),
                ttl=runtime.ownership.ttl,
            )

    def _unregister(self) -> None:
        with self.runtime.db.write() as conn:
            nodes.remove(conn, self.node, queue.PROCESS_TOKEN)

    def stats(self) -> dict[str, Any]:
        runtime = self.runtime
        return {
            "sessions": sorted(runtime.sessions),
            "eventsCommitted": runtime.writer.committed_events,
            "jobsProcessed": dict(runtime.jobs.processed),
            "busPublished": runtime.bus.published,
            "relayed": self.bus.relayed if self.bus is not None else 0,
            "received": self.bus.received if self.bus is not None else 0,
        }

    def _heartbeat(self) -> int:
        """Renew our row, count the live nodes, clean up after dead ones; the count."""
        runtime = self.runtime
        ttl = runtime.ownership.ttl
        now = time.time()
        with runtime.db.write() as conn:
            if not nodes.heartbeat(conn, self.node, queue.PROCESS_TOKEN, now, self.stats()):
                # Our row was taken for dead (we were paused past the lease): add it back.
                nodes.register(
                    conn,
                    self.node,
                    queue.PROCESS_TOKEN,
                    address=self.address,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    now=now,
                    ttl=ttl,
                )
            alive = nodes.live(conn, now, ttl)
            gone = nodes.dead(conn, now, ttl)
            for node in gone:
                # A dead node's deliveries need not wait out their job leases.
                owner = f"jobs:{node.host}:{node.pid}:{node.incarnation}"
                queue.release_owner(conn, owner, now=now)
            nodes.forget(
                conn,
                [n.name for n in gone if n.heartbeat_at < now - FORGET_AFTER * ttl],
                now,
                FORGET_AFTER * ttl,
            )
        return len(alive)

    async def _beat_loop(self) -> None:
        period = self.runtime.ownership.ttl / 3
        while True:
            await asyncio.sleep(period)
            try:
                count = await asyncio.to_thread(self._heartbeat)
            except Exception as exc:
                log.warning("cluster heartbeat failed: %s", exc)
                continue
            if count != self.live_nodes:
                log.info("cluster: %d node(s) alive (was %d)", count, self.live_nodes)
                self.live_nodes = count
                self.runtime.manager.look_again()

    # Notifications.

    async def _tell(self, what: str) -> None:
        if self.notifier is not None:
            await self.notifier.send(CHANNEL, [f"{what}|{self.node}"])

    def _released(self, session: str) -> None:
        if self.notifier is not None and not self._stopped:
            task = asyncio.ensure_future(self._tell("released"))
            task.add_done_callback(_quiet)

    def _job_note(self, payload: str) -> None:
        found = wakeups.parse(payload)
        if found is not None:
            self.runtime.jobs.notify(*found)

    def _cluster_note(self, payload: str) -> None:
        what, _, node = payload.partition("|")
        if node == self.node:
            return
        if what == "node":
            # A node came or went: count again, then look for sessions.
            task = asyncio.ensure_future(self._recount())
            task.add_done_callback(_quiet)
        else:
            self.runtime.manager.look_again()

    async def _recount(self) -> None:
        self.live_nodes = await asyncio.to_thread(self._heartbeat)
        self.runtime.manager.look_again()

    async def _caught_up(self) -> None:
        self.runtime.jobs.poll_now()
        self.runtime.manager.look_again()


def _quiet(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("a cluster notification could not be sent: %s", task.exception())
