"""`wasync webhooks add | list | remove | ping | deliveries | retry | deliver`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from wasync.commands.common import (
    DatabaseOpt,
    DataDirOpt,
    console,
    err_console,
    open_database,
    print_json,
    run_command,
    settings_from,
    utc_time,
)
from wasync.commands.existing import open_existing_database
from wasync.config import Settings
from wasync.delivery import admin
from wasync.delivery.envelope import Event
from wasync.delivery.ssrf import Guard, parse_networks
from wasync.delivery.topics import EVENT_TYPES, PING

app = typer.Typer(
    name="webhooks",
    help="Signed webhooks, Discord and brokers (NATS, RabbitMQ, Redis): endpoints, dead "
    "letters, and the delivery worker.",
    no_args_is_help=True,
)

SessionOpt = typer.Option(
    "default",
    "--session",
    envvar="WASYNC_SESSION",
    help="Session name.",
)
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _guard(settings: Settings) -> Guard:
    return Guard(parse_networks(settings.webhook_allowed_networks))


@app.command("add")
def add_command(
    url: str = typer.Argument(
        ...,
        help="Receiver URL (https://…; Discord URLs are detected) or a broker: "
        "nats://host:4222/<prefix>, amqp://user:pass@host:5672/<vhost>?exchange=<name>, "
        "redis://host:6379/<db>?stream=<name>.",
    ),
    session: str = SessionOpt,
    events: str = typer.Option(
        "*", "--events", help=f"Comma-separated: {', '.join(EVENT_TYPES)}, or '*' for all."
    ),
    kind: str | None = typer.Option(
        None,
        "--kind",
        help="'webhook' (signed JSON), 'discord', 'nats', 'rabbitmq' or 'redis' "
        "[default: from the URL].",
    ),
    secret: str | None = typer.Option(
        None,
        "--secret",
        envvar="WASYNC_WEBHOOK_SECRET",
        help="HMAC secret (16+ characters) [default: generated and printed once].",
    ),
    description: str | None = typer.Option(None, "--description", help="A note for humans."),
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Add an endpoint to a session. Prints its id and, for signed webhooks, the secret."""

    def body() -> None:
        settings = settings_from(data_dir, database)
        db = open_database(settings)
        try:
            endpoint = asyncio.run(
                admin.add_endpoint(
                    db,
                    _guard(settings),
                    session,
                    url,
                    events,
                    kind=kind,
                    secret=secret,
                    description=description,
                )
            )
        finally:
            db.close()
        if as_json:
            print_json(endpoint.public(with_secret=True))
            return
        console.print(
            f"added {endpoint.kind} endpoint [bold]{endpoint.id}[/] for session "
            f"{escape(session)}: {escape(','.join(endpoint.events))}",
            highlight=False,
        )
        if endpoint.secret:
            console.print(f"secret (shown once, keep it with the receiver): {endpoint.secret}")
        console.print("deliveries start within a few seconds in a running `wasync serve`.")

    run_command(body)


@app.command("list")
def list_command(
    session: str | None = typer.Option(None, "--session", help="Only this session."),
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Every endpoint: id, session, kind, events, URL (tokens and secrets hidden)."""

    def body() -> None:
        db = open_existing_database(settings_from(data_dir, database))
        try:
            found = admin.list_endpoints(db, session)
        finally:
            db.close()
        if as_json:
            print_json([e.public() for e in found])
            return
        table = Table("id", "session", "kind", "events", "url", "source", title="webhook endpoints")
        for e in found:
            table.add_row(
                str(e.id),
                e.session,
                e.kind,
                ",".join(e.events),
                escape(e.public()["url"]),
                e.source,
            )
        console.print(table)

    run_command(body)


@app.command("remove")
def remove_command(
    endpoint_id: int = typer.Argument(..., help="Endpoint id (see `wasync webhooks list`)."),
    session: str = SessionOpt,
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
) -> None:
    """Remove an endpoint; its deliveries still queued are cancelled."""

    def body() -> None:
        db = open_database(settings_from(data_dir, database))
        try:
            cancelled = admin.remove_endpoint(db, session, endpoint_id)
        finally:
            db.close()
        console.print(f"removed endpoint {endpoint_id}; {cancelled} queued deliveries cancelled")

    run_command(body)


@app.command("ping")
def ping_command(
    endpoint_id: int = typer.Argument(..., help="Endpoint id."),
    session: str = SessionOpt,
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
) -> None:
    """Queue a signed test event (`ping`) to one endpoint, whatever its filter."""

    def body() -> None:
        from wasync.delivery.worker import Delivery

        settings = settings_from(data_dir, database)
        db = open_database(settings)
        try:
            with db.read() as conn:
                admin.find_endpoint(conn, session, endpoint_id)
            event = Event.occurrence(session, PING, {"message": "test delivery from wasync"})
            Delivery(settings, db).enqueue(session, [event], endpoint_id=endpoint_id)
        finally:
            db.close()
        console.print(f"queued ping {event.id} to endpoint {endpoint_id}")

    run_command(body)


@app.command("deliveries")
def deliveries_command(
    session: str = SessionOpt,
    state: str = typer.Option(
        "failed", "--state", help="failed (dead letters), queued, running, done, or all."
    ),
    endpoint_id: int | None = typer.Option(None, "--endpoint", help="Only this endpoint."),
    limit: int = typer.Option(50, "--limit", min=1, max=admin.MAX_LIST),
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Deliveries of a session, newest first: by default the dead letters, with why."""

    def body() -> None:
        db = open_existing_database(settings_from(data_dir, database))
        try:
            counts = admin.delivery_counts(db, session)
            rows = admin.list_deliveries(
                db,
                session,
                state=None if state == "all" else state,
                endpoint_id=endpoint_id,
                limit=limit,
            )
            streams = admin.stream_standing(db, session, endpoint_id=endpoint_id)
        finally:
            db.close()
        if as_json:
            print_json({"counts": counts, "deliveries": rows, "streams": streams})
            return
        console.print(" ".join(f"{k}: {v}" for k, v in counts.items()))
        if streams:
            # Broker endpoints publish from a log, not a job per event: its standing.
            logs = Table("endpoint", "kind", "waiting", title="broker logs")
            logs.add_column("oldest waiting", no_wrap=True)
            logs.add_column("pump")
            logs.add_column("last error")
            for s in streams:
                oldest = s["oldestWaiting"]
                logs.add_row(
                    str(s["endpoint"]),
                    s["kind"],
                    str(s["waiting"]),
                    "" if oldest is None else utc_time(oldest),
                    s["pump"] or "",
                    escape(s["lastError"] or ""),
                )
            console.print(logs)
        table = Table("job", "endpoint", "event", "state", "tries", "last error", title=state)
        for r in rows:
            table.add_row(
                str(r["id"]),
                str(r["endpoint"]),
                f"{r['event']} {r['eventId']}",
                r["state"],
                f"{r['attempts']}/{r['maxAttempts']}",
                escape(r["lastError"] or ""),
            )
        console.print(table)

    run_command(body)


@app.command("retry")
def retry_command(
    job_ids: list[int] = typer.Argument(None, help="Delivery job ids [default: all dead letters]."),
    session: str = SessionOpt,
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
) -> None:
    """Queue dead-lettered deliveries again, with a fresh budget of tries."""

    def body() -> None:
        db = open_database(settings_from(data_dir, database))
        try:
            done, missing = admin.retry_deliveries(db, session, job_ids or None)
        finally:
            db.close()
        console.print(f"{done} deliveries queued again")
        if missing:
            err_console.print(
                f"not dead-lettered deliveries of {session!r}: {', '.join(map(str, missing))}"
            )
            raise typer.Exit(1)

    run_command(body)


@app.command("deliver")
def deliver_command(
    until_idle: bool = typer.Option(
        False, "--until-idle", help="Exit once nothing is queued or running (cron style)."
    ),
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
) -> None:
    """Run the delivery worker in this process until SIGTERM/Ctrl-C (`wasync serve` runs
    one too; more processes on one PostgreSQL database share the work)."""

    def body() -> None:
        settings = settings_from(data_dir, database)
        processed = asyncio.run(_deliver(settings, until_idle=until_idle))
        err_console.print(f"delivery worker stopped after {processed} deliveries")

    run_command(body)


async def _deliver(settings: Settings, *, until_idle: bool) -> int:
    from wasync.delivery import delivery_of, install
    from wasync.delivery.endpoints import DELIVERY_KINDS
    from wasync.delivery.streams import log as stream_log
    from wasync.jobs import queries as queue
    from wasync.runtime import Runtime

    runtime = Runtime(settings)
    install(runtime)
    await runtime.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    err_console.print(f"delivering webhooks from {runtime.db!r} (Ctrl-C to stop)")

    kinds = (*DELIVERY_KINDS, stream_log.PUMP)

    def idle() -> bool:
        with runtime.db.read() as conn:
            counts = queue.counts(conn)
            waiting = stream_log.waiting(conn)
        pending = any(counts.get(k, {}).get(s, 0) for k in kinds for s in queue.PENDING)
        return not pending and not waiting

    try:
        while not stop.is_set():
            if until_idle and await asyncio.to_thread(idle):
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.webhook_poll_interval)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        processed = sum(runtime.jobs.processed[k] for k in DELIVERY_KINDS)
        found = delivery_of(runtime)
        if found is not None and found[1].pump is not None:
            processed += found[1].pump.published  # broker events, published by the pumps
        await runtime.stop()
    return processed
