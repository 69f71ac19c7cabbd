"""`wasync history`: load older messages, or a chat's whole history, from the CLI.

The work is the same durable job the server runs (wasync/history): if the command is
interrupted or killed, running it again resumes at the first page not stored, and a
`wasync serve` on the same database would finish it too.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from wasync.commands.common import (
    DatabaseOpt,
    DataDirOpt,
    console,
    err_console,
    run_command,
    settings_from,
)
from wasync.commands.existing import check_engine_inputs, choose_engine, open_existing_database
from wasync.config import Settings
from wasync.domain.jid import to_jid
from wasync.engines.base import CapabilityMissing
from wasync.errors import DomainError
from wasync.history import ChatNotFound, HistoryOptions, HistoryProgress, HistoryService
from wasync.history.backfill import FULLY_SYNCED, request_backfill
from wasync.history.kinds import BACKFILL, NOT_AVAILABLE
from wasync.history.view import chat_known
from wasync.jobs import queries as queue
from wasync.runtime import Runtime
from wasync.store import queries
from wasync.store.db import Database
from wasync.store.identities import canonical
from wasync.store.schema import messages

HELP = """Load older messages of one chat: a number of pages (--pages, default 1) or its
whole history (--full). Runs as a durable job: run the command again after an
interruption and it resumes where it stopped."""


@dataclass
class _Run:
    """What this run did, for the summary (a resumed job counts only its new pages)."""

    job_id: int | None = None
    status: str = "done"
    pages: int = 0
    messages: int = 0
    fully_synced: bool = False
    error: str | None = None
    start: tuple[int, int] = (0, 0)  # the job's (pages, messages) before this run


def history(
    chat: str = typer.Option(..., "--chat", help="The chat: a JID, or a phone number."),
    pages: int | None = typer.Option(
        None, "--pages", min=1, help="Pages of older messages to load (default 1)."
    ),
    full: bool = typer.Option(
        False, "--full", help="Load the whole history, back to the chat's first message."
    ),
    engine: str | None = typer.Option(
        None, help="Engine, if given: must be the session's own (it keeps its engine)."
    ),
    seed: int | None = typer.Option(
        None, help="Simulator seed, if given: must be the one the session was made with."
    ),
    scale: str | None = typer.Option(
        None, help="Simulator scale, if given: must be the one the session was made with."
    ),
    session: str = typer.Option("default", help="Session name."),
    page_size: int | None = typer.Option(
        None,
        "--page-size",
        min=1,
        max=1000,
        help="Messages per history request (default: the history_page_size setting, 50).",
    ),
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
) -> None:
    def body() -> None:
        if full and pages is not None:
            raise DomainError("choose --pages N or --full, not both")
        chat_jid = to_jid(chat)
        settings = settings_from(data_dir, database)
        check_engine_inputs(settings, session, engine, scale)
        overrides = {"page_size": page_size} if page_size is not None else {}
        options = HistoryOptions.from_settings(settings, **overrides)
        started = time.monotonic()
        run, stored = asyncio.run(
            _history(
                settings,
                options,
                engine,
                seed,
                scale,
                session,
                chat_jid,
                full=full,
                pages=pages or 1,
                show=not as_json,
            )
        )
        out = {
            "chat": chat_jid,
            "session": session,
            "jobId": run.job_id,
            "status": run.status,
            "pages": run.pages,
            "messages": run.messages,
            "fullySynced": run.fully_synced,
            "storedMessages": stored["count"],
            "oldestTimestamp": stored["oldest"],
            "error": run.error,
            "seconds": round(time.monotonic() - started, 3),
        }
        if as_json:
            sys.stdout.write(json.dumps(out) + "\n")
        else:
            table = Table(title=f"session {session}: history of {chat_jid}", show_header=False)
            for key in ("status", "pages", "messages", "fullySynced", "storedMessages"):
                table.add_row(key, str(out[key]))
            console.print(table)
        if run.status == "failed":
            err_console.print(f"[bold red]error:[/] {run.error}", highlight=False)
            raise typer.Exit(1)

    run_command(body)


async def _history(
    settings: Settings,
    options: HistoryOptions,
    engine_name: str | None,
    seed: int | None,
    scale: str | None,
    session: str,
    chat_jid: str,
    *,
    full: bool,
    pages: int,
    show: bool,
) -> tuple[_Run, dict[str, Any]]:
    from wasync.engines.factory import make_engine
    from wasync.history import install
    from wasync.sessions.host import hosted_session

    # Older history of a session that exists, with the engine it was made with.
    db = open_existing_database(settings)
    try:
        choice = choose_engine(
            db, session, engine=engine_name, seed=seed, scale=scale, may_create=False
        )
        settings = choice.settings_for(settings)
        engine = make_engine(
            choice.engine, seed=choice.seed, scale=choice.scale, session=session, settings=settings
        )
    except BaseException:
        db.close()
        raise
    if not engine.capabilities.on_demand_history:
        close = getattr(engine, "close", None)
        if close is not None:
            result = close()
            if asyncio.iscoroutine(result):
                await result
        db.close()
        raise CapabilityMissing(NOT_AVAILABLE)
    service: list[HistoryService] = []

    def install_history(runtime: Runtime) -> None:
        # Only older history: gap fill belongs to a server that keeps the session live.
        service.append(install(runtime, options, kinds=(BACKFILL,)))

    async with hosted_session(
        settings,
        db,
        session,
        engine,
        engine_name=choice.engine,
        command=f"history --session {session}",
        engine_options=choice.options(),
        install=install_history,
    ) as handle:
        # A person's chat by LID, phone JID or number: the key the mirror keeps it under.
        chat_jid = await asyncio.to_thread(_canonical, db, handle.session_id, chat_jid)
        run = await _backfill(
            db, service[0], handle.session_id, session, chat_jid, options, full, pages, show
        )
        await handle.sync.flush()
        return run, await asyncio.to_thread(_stored, db, handle.session_id, chat_jid)


def _canonical(db: Database, session_id: int, jid: str) -> str:
    with db.read() as conn:
        return canonical(conn, session_id, jid)


async def _backfill(
    db: Database,
    service: HistoryService,
    session_id: int,
    session: str,
    chat_jid: str,
    options: HistoryOptions,
    full: bool,
    pages: int,
    show: bool,
) -> _Run:
    def enqueue() -> tuple[int | None, str, tuple[int, int]]:
        with db.write() as conn:
            if not chat_known(conn, session_id, chat_jid):
                raise ChatNotFound(
                    f"session {session!r} has no chat {chat_jid}: run `wasync sync` first"
                )
            request = request_backfill(
                conn,
                session_id,
                chat_jid,
                full=full,
                pages=pages,
                max_attempts=options.max_attempts,
            )
            job = queue.get_job(conn, request.job_id) if request.job_id is not None else None
            if job is None:
                return request.job_id, request.status, (0, 0)
            done = (int(job.payload.get("done", 0)), int(job.payload.get("messages", 0)))
            return request.job_id, request.status, done

    run = _Run()
    run.job_id, status, run.start = await asyncio.to_thread(enqueue)
    if status == FULLY_SYNCED or run.job_id is None:
        run.status, run.fully_synced = FULLY_SYNCED, True
        return run
    job_id = run.job_id
    progress = Progress(
        TextColumn(f"[bold]history of {chat_jid}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[messages]} messages {task.fields[note]}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=not show,
    )
    total = None if full else run.start[0] + pages
    task = progress.add_task("history", total=total, messages=run.start[1], note="")

    def on_progress(p: HistoryProgress) -> None:
        if p.job_id != job_id:
            return  # another queued backfill this worker picked up meanwhile
        run.pages, run.messages = p.page - run.start[0], p.messages_synced - run.start[1]
        run.fully_synced = run.fully_synced or p.fully_synced
        note = f"[yellow]{escape(p.error)}[/]" if p.error else ""
        progress.update(task, completed=p.page, messages=p.messages_synced, note=note)

    service.listen(session, on_progress)
    with progress:
        job = await _finished(db, job_id)
    run.status = job.state
    run.error = job.last_error if job.state == queue.JobState.FAILED.value else None
    # What the mirror says, not what was asked: a job can end without reaching the start.
    run.fully_synced = await asyncio.to_thread(_fully_synced, db, session_id, chat_jid)
    return run


def _fully_synced(db: Database, session_id: int, chat_jid: str) -> bool:
    with db.read() as conn:
        state = queries.get_sync_state(conn, session_id, chat_jid)
    return bool(state is not None and state.fully_synced)


async def _finished(db: Database, job_id: int) -> queue.Job:
    def read() -> queue.Job | None:
        with db.read() as conn:
            return queue.get_job(conn, job_id)

    while True:
        job = await asyncio.to_thread(read)
        if job is None:
            raise DomainError(f"history job {job_id} disappeared")
        if job.state in (queue.JobState.DONE.value, queue.JobState.FAILED.value):
            return job
        await asyncio.sleep(0.05)


def _stored(db: Database, session_id: int, chat_jid: str) -> dict[str, Any]:
    m = messages.c
    with db.read() as conn:
        count = conn.execute(
            select(func.count()).where(m.session_id == session_id, m.chat_jid == chat_jid)
        ).scalar_one()
        state = queries.get_sync_state(conn, session_id, chat_jid)
    return {"count": int(count), "oldest": state.oldest_timestamp if state else None}
