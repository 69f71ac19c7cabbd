"""`wasync avatars sync | fetch | status | retry-failed`: the profile picture queue.

These work on the database alone, next to a running server: queued checks are
picked up by the session's worker in the server (within a second), at the
session's pace.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Connection

from wasync.avatars.config import AvatarConfig
from wasync.avatars.enqueue import KIND, Reason, enqueue_avatars, enqueue_session, has_avatar
from wasync.avatars.status import session_status
from wasync.commands.common import (
    DatabaseOpt,
    DataDirOpt,
    console,
    err_console,
    open_database,
    print_json,
    run_command,
    settings_from,
)
from wasync.commands.existing import open_existing_database
from wasync.domain.jid import to_jid
from wasync.errors import DomainError
from wasync.jobs import queries as queue
from wasync.store import identities
from wasync.store.sessions import get_session, list_sessions

app = typer.Typer(
    name="avatars",
    help="Profile pictures: queue checks for a session or one JID, see the queue, retry.",
    no_args_is_help=True,
)

SessionOpt = typer.Option("default", "--session", help="Session name.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object.")


@app.command("sync")
def sync_command(
    session: str = SessionOpt,
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Queue a picture check of every contact and chat (individual and group) of a session."""

    def body() -> None:
        settings = settings_from(data_dir, database)
        config = AvatarConfig.from_settings(settings)
        _warn_if_switched_off(config)
        db = open_database(settings)
        try:
            with db.write() as conn:
                sid = get_session(conn, session).id
                added, considered = enqueue_session(conn, sid, max_attempts=config.max_attempts)
        finally:
            db.close()
        if as_json:
            print_json({"session": session, "enqueued": added, "jids": considered})
            return
        pace = config.pace_for(session)
        console.print(
            f"queued {added} picture checks for session [bold]{escape(session)}[/] "
            f"({considered} contacts and chats; {considered - added} were already queued). "
            f"At one request per {pace.interval:g} s that takes about "
            f"{_duration(considered * pace.interval)}."
        )

    run_command(body)


@app.command("fetch")
def fetch_command(
    jid: str = typer.Argument(..., help="A JID (5511999990000@s.whatsapp.net) or phone number."),
    session: str = SessionOpt,
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Queue a picture check of one JID, ahead of everything else."""

    def body() -> None:
        canonical = to_jid(jid)
        if not has_avatar(canonical):
            raise DomainError(f"{canonical} has no profile picture (only people and groups do)")
        settings = settings_from(data_dir, database)
        config = AvatarConfig.from_settings(settings)
        _warn_if_switched_off(config)
        db = open_database(settings)
        try:
            with db.write() as conn:
                sid = get_session(conn, session).id
                person = identities.canonical(conn, sid, canonical)  # LID, number: one person
                added = enqueue_avatars(
                    conn, sid, [person], Reason.MANUAL, max_attempts=config.max_attempts
                )
        finally:
            db.close()
        if as_json:
            print_json({"session": session, "jid": person, "enqueued": added})
            return
        state = "queued" if added else "already queued (moved to the front)"
        console.print(f"{escape(canonical)}: {state}")

    run_command(body)


def _warn_if_switched_off(config: AvatarConfig) -> None:
    if not config.enabled:
        err_console.print(
            "note: WASYNC_AVATAR_WORKER is false, so no worker runs these jobs until it is "
            "true again",
            highlight=False,
        )


@app.command("status")
def status_command(
    session: str | None = typer.Option(None, "--session", help="Only this session."),
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Checks by state (queued, running, done, none, failed), pace, recent errors."""

    def body() -> None:
        settings = settings_from(data_dir, database)
        config = AvatarConfig.from_settings(settings)
        db = open_existing_database(settings)
        try:
            with db.read() as conn:
                rows = [get_session(conn, session)] if session else list_sessions(conn)
                now = time.time()
                report = {
                    row.name: session_status(conn, row.id, config.pace_for(row.name), now)
                    for row in rows
                }
        finally:
            db.close()
        if as_json:
            print_json({"sessions": report})
            return
        if not report:
            console.print("no sessions yet")
        for name, status in report.items():
            _show(name, status)

    run_command(body)


def _show(name: str, status: dict[str, Any]) -> None:
    table = Table(title=f"avatars of session {escape(name)}", show_header=False)
    for state, n in status["states"].items():
        table.add_row(state, str(n))
    table.add_row("pictures stored", str(status["pictures"]["stored"]))
    table.add_row("never checked", str(status["pictures"]["unchecked"]))
    table.add_row(
        "configured rate",
        f"{status['configuredRate']:.3g}/s (gaps {status['minGap']:g}-{status['maxGap']:g} s)",
    )
    table.add_row("checks/s (last minute)", f"{status['checksPerSecond']:.3g}")
    console.print(table)
    for error in status["recentErrors"]:
        console.print(
            f"[yellow]{escape(str(error['jid']))}[/] ({error['state']}, "
            f"{error['attempts']} tries): {escape(str(error['error']))}",
            highlight=False,
        )


@app.command("retry-failed")
def retry_failed_command(
    session: str = SessionOpt,
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Queue every failed picture check of a session again, with a fresh budget of tries."""

    def body() -> None:
        settings = settings_from(data_dir, database)
        db = open_database(settings)
        try:
            with db.write() as conn:
                sid = get_session(conn, session).id
                retried = _retry_failed(conn, sid)
        finally:
            db.close()
        if as_json:
            print_json({"session": session, "retried": retried})
            return
        console.print(f"queued {retried} failed picture checks again")

    run_command(body)


def _retry_failed(conn: Connection, session_id: int) -> int:
    # The newest failure of each JID, unless the JID is queued again already.
    found = queue.newest_failed_per_key(conn, KIND, session_id)
    return sum(1 for job_id in found if queue.retry_failed(conn, job_id))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
