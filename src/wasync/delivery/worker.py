"""The delivery service: the delivery job kinds, and their handler.

Webhook and Discord jobs are HTTP posts; broker jobs (`nats`, `rabbitmq`, `redis`)
go through `streams.pool.Publishers`, one long-lived connection per endpoint.
Deliveries are not tied to a running session: any process with the runner may send
them. Each endpoint is a job *target*, so one slow endpoint holds at most
`WASYNC_WEBHOOK_ENDPOINT_CONCURRENCY` of the kind's slots in a process.

It also feeds durable delivery from the live bus where no transaction exists to
join: `sync.progress` events (emitted while a sync runs, not stored) are enqueued
when they are published by this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from wasync.bus import BusEvent
from wasync.config import Settings
from wasync.delivery import discord, webhook_sink
from wasync.delivery import endpoints as E
from wasync.delivery.circuit import Circuit
from wasync.delivery.config_file import check_targets, read_specs
from wasync.delivery.enqueue import enqueue_events
from wasync.delivery.envelope import Event
from wasync.delivery.hook import DeliveryRecorder
from wasync.delivery.http import guarded_client
from wasync.delivery.pictures import load_picture
from wasync.delivery.ssrf import Guard, Resolver, parse_networks
from wasync.delivery.streams import log as stream_log
from wasync.delivery.streams.publisher import Failed, PublishResult, StreamSettings
from wasync.delivery.streams.pump import ATTEMPTS as PUMP_ATTEMPTS
from wasync.delivery.streams.pump import Pump
from wasync.delivery.topics import PING
from wasync.jobs import queries as queue
from wasync.jobs.kinds import JobKind
from wasync.jobs.outcome import Defer, Done, Retry
from wasync.jobs.outcome import JobOutcome as Outcome
from wasync.jobs.policy import RetryPolicy
from wasync.store.db import Database
from wasync.store.schema import contacts, sessions

if TYPE_CHECKING:
    import httpx

    from wasync.delivery.streams.pool import Publishers
    from wasync.runtime import Runtime, SessionHandle

log = logging.getLogger(__name__)

REAP_INTERVAL = 30.0  # seconds between looks for broker connections to close
BACKLOG_AGE = 2.0  # seconds the dashboard's count of events waiting for brokers is kept


class Delivery:
    """The feature's shared state: endpoints, guard, recorder, retry policy."""

    def __init__(
        self, settings: Settings, db: Database, *, resolver: Resolver | None = None
    ) -> None:
        self.settings = settings
        self.db = db
        self.guard = Guard(parse_networks(settings.webhook_allowed_networks), resolver=resolver)
        self.endpoints = E.EndpointCache()
        self.recorder = DeliveryRecorder(
            self.endpoints,
            max_attempts=settings.webhook_max_attempts,
            public_url=settings.public_url,
        )
        self.policy = RetryPolicy(
            max_attempts=settings.webhook_max_attempts,
            base_delay=settings.webhook_retry_base,
            max_delay=settings.webhook_retry_max,
        )

    def enqueue(self, session: str, events: list[Event], *, endpoint_id: int | None = None) -> int:
        """Enqueue events of a session in their own transaction (no change to join)."""
        with self.db.write() as conn:
            sid = conn.execute(
                select(sessions.c.id).where(sessions.c.name == session)
            ).scalar_one_or_none()
            targets = self.endpoints.for_session(conn, session)
            if endpoint_id is not None:
                found = E.get(conn, endpoint_id)
                targets = (found,) if found is not None and found.session == session else ()
            return enqueue_events(
                conn,
                sid,
                targets,
                events,
                max_attempts=self.settings.webhook_max_attempts,
                public_url=self.settings.public_url,
            )

    def stream_settings(self) -> StreamSettings:
        s = self.settings
        return StreamSettings(
            timeout=s.stream_timeout,
            nats_create_stream=s.stream_nats_create,
            nats_duplicate_window=s.stream_nats_duplicate_window,
            redis_maxlen=s.stream_redis_maxlen,
        )

    def topics_now(self, session: str) -> frozenset[str]:
        with self.db.read() as conn:
            return self.endpoints.topics_of(conn, session)

    async def load_file(self) -> None:
        path = self.settings.webhooks_file
        if path is None:
            return
        specs = read_specs(path)
        await check_targets(self.guard, specs)

        def store() -> tuple[int, int]:
            with self.db.write() as conn:
                return E.replace_file_endpoints(conn, specs)

        kept, removed = await asyncio.to_thread(store)
        self.endpoints.invalidate()
        log.info("webhooks file %s: %d endpoints (%d removed)", path, kept, removed)


class DeliveryService:
    """Runs the deliveries (runtime.Service)."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.client: httpx.AsyncClient | None = None
        self.publishers: Publishers | None = None
        self._watch: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._runtime: Runtime | None = None
        # Tries under way, by endpoint: cancelled when their endpoint is removed, so
        # a deleted slow receiver gives its slots back at once.
        self._flights: dict[int, set[asyncio.Task[list[Outcome]]]] = {}
        self.cancelled_tries = 0
        self._circuits: dict[int, Circuit] = {}  # by endpoint
        self.pump: Pump | None = None
        # Events waiting in the broker endpoints' logs, for the dashboard: read in a
        # thread when asked for and older than BACKLOG_AGE (its figures are read on
        # the event loop, which must not wait for the database).
        self._backlog: int | None = None
        self._backlog_read = -math.inf
        self._backlog_task: asyncio.Task[None] | None = None

    async def start(self, runtime: Runtime) -> None:
        settings = self.delivery.settings
        self._runtime = runtime
        await self.delivery.load_file()
        self.client = guarded_client(
            self.delivery.guard,
            timeout=settings.webhook_timeout,
            max_connections=max(4, settings.webhook_concurrency * 2),
        )
        # Imported here: the three broker clients load only where deliveries run.
        from wasync.delivery.streams.pool import Publishers

        self.publishers = Publishers(self.delivery.stream_settings())
        # Brokers read their events from a log per endpoint, published by one pump job
        # per endpoint (delivery/streams/pump.py); their per-event kinds below carry the
        # dead letters a retry sends again.
        self.pump = Pump(
            self.delivery.db,
            lambda: self.publishers,
            self._circuit,
            batch=settings.stream_batch,
            dead_letter_attempts=settings.webhook_max_attempts,
            retry_delay=settings.webhook_retry_base,
        )
        runtime.jobs.register(
            JobKind(
                stream_log.PUMP,
                self.pump.run,
                policy=RetryPolicy(
                    max_attempts=PUMP_ATTEMPTS,
                    base_delay=settings.webhook_retry_base,
                    max_delay=settings.webhook_retry_max,
                ),
                lease_seconds=settings.webhook_lease_seconds,
                concurrency=settings.webhook_concurrency,
                per_session=False,
                # A budget of its own: a kind's cap per target is its budget's, and
                # webhooks keep theirs (WASYNC_WEBHOOK_ENDPOINT_CONCURRENCY) while a
                # pump runs alone per endpoint. Brokers and webhooks then never wait
                # for each other's slots.
                target_concurrency=1,
            )
        )
        for kind in E.DELIVERY_KINDS:
            # A broker's dead letters, once retried, run in batches of one endpoint
            # (one claim, one publish_many, one statement marking them done).
            broker = E.is_broker(kind)
            runtime.jobs.register(
                JobKind(
                    kind,
                    self.handle,
                    policy=self.delivery.policy,
                    lease_seconds=settings.webhook_lease_seconds,
                    concurrency=settings.webhook_concurrency,
                    per_session=False,
                    target_concurrency=settings.webhook_endpoint_concurrency,
                    group="delivery",
                    batch_handler=self.handle_batch if broker else None,
                    batch=settings.stream_batch if broker else 1,
                )
            )
        self._watch = asyncio.create_task(self._watch_bus(runtime), name="delivery-bus")
        self._watch.add_done_callback(_log_crash)
        self._reaper = asyncio.create_task(self._reap_publishers(), name="delivery-reaper")
        self._reaper.add_done_callback(_log_crash)

    async def stop(self) -> None:
        for task in (self._watch, self._reaper, self._backlog_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._watch = self._reaper = self._backlog_task = None
        if self.client is not None:
            await self.client.aclose()
            self.client = None
        if self.publishers is not None:
            await self.publishers.close_all()
            self.publishers = None

    def events_waiting(self) -> int | None:
        """The events waiting in broker endpoints' logs, as last read (None: not yet);
        starts a new read when that is older than BACKLOG_AGE. Call on the loop."""
        stale = time.monotonic() - self._backlog_read > BACKLOG_AGE
        if stale and self._backlog_task is None:
            self._backlog_task = asyncio.get_running_loop().create_task(self._read_backlog())
        return self._backlog

    async def _read_backlog(self) -> None:
        def read() -> int:
            with self.delivery.db.read() as conn:
                return stream_log.waiting(conn)

        try:
            self._backlog = await asyncio.to_thread(read)
            self._backlog_read = time.monotonic()
        except Exception as exc:
            log.warning("streams: could not count the events waiting: %s", exc)
        finally:
            self._backlog_task = None

    async def session_added(self, handle: SessionHandle) -> None:
        pass

    async def session_removed(self, handle: SessionHandle) -> None:
        pass

    async def endpoints_changed(self) -> None:
        """Endpoints were added or removed here: stop removed ones' tries and drop
        their connections now."""
        self.delivery.endpoints.invalidate()
        await self._forget_removed_endpoints()

    async def _forget_removed_endpoints(self) -> None:
        """Cancel removed endpoints' tries, drop their circuits and connections."""
        has_publishers = self.publishers is not None and len(self.publishers) > 0
        if not has_publishers and not self._flights and not self._circuits:
            return
        ids = await asyncio.to_thread(self._endpoint_ids)
        for endpoint_id in set(self._circuits) - ids:
            del self._circuits[endpoint_id]
        for endpoint_id, flights in list(self._flights.items()):
            if endpoint_id not in ids:
                for task in flights:
                    task.cancel()
        if self.publishers is not None and has_publishers:
            await self.publishers.retain(ids)

    def _endpoint_ids(self) -> set[int]:
        with self.delivery.db.read() as conn:
            return {e.id for e in E.list_all(conn)}

    async def _reap_publishers(self) -> None:
        # Removed endpoints (by the CLI, another process, the config file) and idle
        # ones give their broker connections back; a log left without a pump gets one.
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            try:
                await self._forget_removed_endpoints()
                if self.publishers is not None:
                    await self.publishers.close_idle()
                await asyncio.to_thread(self._requeue_stalled)
            except Exception:
                log.exception("streams: housekeeping (unused connections, stalled logs) failed")

    def _requeue_stalled(self) -> None:
        with self.delivery.db.write() as conn:
            stalled = stream_log.requeue_stalled(conn)
        if stalled:
            log.warning("streams: events were waiting with no pump for endpoints %s", stalled)

    async def _watch_bus(self, runtime: Runtime) -> None:
        # Progress has its own roomy queue: a flood of messages on the bus must not
        # push progress events out.
        progress = runtime.bus.subscribe(topics=["sync.progress"], maxsize=10_000, local=True)
        try:
            async for event in progress:
                await self._progress(event)
        finally:
            progress.close()

    async def _progress(self, event: BusEvent) -> None:
        try:
            wanted = self.delivery.endpoints.cached_topics(event.session)
            if wanted is None:
                wanted = await asyncio.to_thread(self.delivery.topics_now, event.session)
            if "sync.progress" not in wanted:
                return
            await asyncio.to_thread(
                self.delivery.enqueue,
                event.session,
                [Event.occurrence(event.session, "sync.progress", event.data)],
            )
        except Exception:
            log.exception("webhooks: could not enqueue a sync.progress event")

    # The job handlers.

    async def handle(self, job: queue.Job) -> Outcome:
        (outcome,) = await self.handle_batch([job])
        return outcome

    async def handle_batch(self, jobs: list[queue.Job]) -> list[Outcome]:
        """Deliver jobs of one endpoint (one job, or a broker's batch): one outcome each."""
        assert self.client is not None
        endpoint = await asyncio.to_thread(self._endpoint, jobs[0].payload.get("endpoint"))
        if endpoint is None:
            return [Done()] * len(jobs)  # removed since: nobody to deliver to
        outcomes: list[Outcome | None] = [None] * len(jobs)
        envelopes: list[dict[str, Any]] = []
        for i, job in enumerate(jobs):
            envelope = job.payload.get("envelope")
            if isinstance(envelope, dict) and "id" in envelope:
                envelopes.append(envelope)
            else:
                outcomes[i] = Retry("malformed delivery (no envelope)", permanent=True)
        if not envelopes:
            return [o or Done() for o in outcomes]
        circuit = self._circuit(endpoint.id)
        closed_at = circuit.open_until(time.time())
        if closed_at is not None:
            until = time.strftime("%H:%M:%S", time.localtime(closed_at))
            why = f"{circuit.reason} (the endpoint keeps failing: next try {until})"
            return [o or Defer(closed_at, why) for o in outcomes]
        flights = self._flights.setdefault(endpoint.id, set())
        task = asyncio.create_task(self._try(endpoint, envelopes, jobs[0].attempts))
        flights.add(task)
        try:
            tried = iter(await task)
            done = [o or next(tried) for o in outcomes]
            failures = [o for o in done if isinstance(o, Retry) and not o.permanent]
            if not failures:
                circuit.succeeded()
            elif circuit.failed(time.time(), failures[0].error):
                log.warning(
                    "endpoint %s keeps failing; leaving it alone until %s",
                    endpoint.id,
                    time.strftime("%H:%M:%S", time.localtime(circuit.until)),
                )
            return done
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this handler itself is cancelled (shutdown): not ours to judge
            self.cancelled_tries += 1
            return [Done()] * len(jobs)  # its endpoint was removed: nobody to deliver to
        finally:
            flights.discard(task)
            if not flights and self._flights.get(endpoint.id) is flights:
                del self._flights[endpoint.id]

    def _circuit(self, endpoint_id: int) -> Circuit:
        found = self._circuits.get(endpoint_id)
        if found is None:
            settings = self.delivery.settings
            found = Circuit(settings.webhook_circuit_failures, settings.webhook_circuit_seconds)
            self._circuits[endpoint_id] = found
        return found

    async def _try(
        self, endpoint: E.Endpoint, envelopes: list[dict[str, Any]], attempt: int
    ) -> list[Outcome]:
        assert self.client is not None
        if not envelopes:
            return []
        if E.is_broker(endpoint.kind):
            assert self.publishers is not None
            results = await self.publishers.publish(endpoint.id, endpoint.url, envelopes)
            return [outcome_of(r) for r in results]
        # HTTP targets take one event per request.
        (envelope,) = envelopes
        if endpoint.kind == "discord":
            return [await self._discord(endpoint, envelope)]
        return [await webhook_sink.deliver(self.client, endpoint, envelope, attempt)]

    def _endpoint(self, endpoint_id: Any) -> E.Endpoint | None:
        if not isinstance(endpoint_id, int):
            return None
        with self.delivery.db.read() as conn:
            return E.get(conn, endpoint_id)

    async def _discord(self, endpoint: E.Endpoint, envelope: dict[str, Any]) -> Outcome:
        assert self.client is not None
        topic = envelope.get("event")
        session = str(envelope.get("session", ""))
        data = envelope.get("data") or {}
        if topic == "avatar":
            message = await asyncio.to_thread(self._avatar_message, session, data, envelope)
        elif topic == "session.status":
            message = discord.status_message(session, data)
        elif topic == PING:
            message = discord.text_message(f"wasync: test message for session **{session}**")
        else:
            return Done()
        return await discord.post(self.client, endpoint.url, message)

    def _avatar_message(
        self, session: str, data: dict[str, Any], envelope: dict[str, Any]
    ) -> discord.DiscordMessage:
        picture: bytes | None = None
        why_not: str | None = "No profile picture any more (removed, or hidden from us)"
        if data.get("pictureId") is not None and data.get("pictureUrl") != "none":
            assert self._runtime is not None, "not started"
            picture, why_not = load_picture(self._runtime.media, data)
        jid = str(data.get("jid", ""))
        return discord.avatar_message(
            phone=data.get("phone"),
            jid=jid,
            name=self._contact_name(session, jid),
            session=session,
            picture=picture,
            picture_id=data.get("pictureId"),
            when=float(envelope.get("timestamp") or time.time()),
            note=why_not,
        )

    def _contact_name(self, session: str, jid: str) -> str | None:
        with self.delivery.db.read() as conn:
            row = conn.execute(
                select(contacts.c.name, contacts.c.push_name, contacts.c.business_name)
                .join(sessions, sessions.c.id == contacts.c.session_id)
                .where(sessions.c.name == session, contacts.c.jid == jid)
            ).one_or_none()
        if row is None:
            return None
        name: str | None = row.name or row.business_name or row.push_name
        return name


def outcome_of(result: PublishResult) -> Outcome:
    """A broker's answer for one event as the job runner's outcome."""
    if isinstance(result, Failed):
        return Retry(result.error, permanent=result.permanent)
    return Done()


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the delivery bus watcher stopped", exc_info=task.exception())
