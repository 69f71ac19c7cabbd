"""The `wasync` command line (Typer + Rich)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wasync import __version__
from wasync.commands import avatar_job
from wasync.commands import history as history_command
from wasync.commands import search as search_command
from wasync.commands.avatars import app as avatars_app
from wasync.commands.cluster import app as cluster_app
from wasync.commands.common import (
    DatabaseOpt,
    DataDirOpt,
    LateMappingsOpt,
    LidFractionOpt,
    open_database,
    run_command,
    settings_from,
    with_identities,
)
from wasync.commands.engine import app as engine_app
from wasync.commands.existing import check_engine_inputs, choose_engine, open_existing_database
from wasync.commands.help_text import TidyGroup
from wasync.commands.media import app as media_app
from wasync.commands.pair import PAIR_HELP
from wasync.commands.pair import pair as pair_command
from wasync.commands.serve import register as register_serve_commands
from wasync.commands.session import app as session_app
from wasync.commands.webhooks import app as webhooks_app
from wasync.config import Settings
from wasync.domain.models import SyncProgress, SyncReport
from wasync.store.queries import summary
from wasync.store.sessions import get_session

app = typer.Typer(
    name="wasync",
    help="Mirror WhatsApp accounts into your own SQL database and keep it live.",
    no_args_is_help=True,
    add_completion=False,
    cls=TidyGroup,  # every option's --help placeholder (wasync/commands/help_text.py)
    # An unexpected error's traceback must not print local variables: they can hold a
    # database URL with its password, a session key or a webhook secret.
    pretty_exceptions_show_locals=False,
)
console = Console()
err_console = Console(stderr=True)
register_serve_commands(app)  # serve, demo (wasync/commands/serve.py)


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"wasync {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        callback=_print_version,
        help="Print the version and exit.",
    ),
) -> None:
    """Mirror WhatsApp accounts into your own SQL database and keep it live."""


@app.command()
def sync(
    engine: str | None = typer.Option(
        None,
        help="Engine of a new session: 'simulator', 'neonize' or 'baileys' [default: "
        "simulator]; an existing session keeps its own.",
    ),
    seed: int | None = typer.Option(
        None, help="Simulator: seed of a new session's network [default: 1]."
    ),
    scale: str | None = typer.Option(
        None,
        help="Simulator: tiny, small, medium or large, for a new session [default: tiny].",
    ),
    session: str = typer.Option("default", help="Session name."),
    create: bool = typer.Option(
        False, "--create", help="Make the session if it does not exist (once others do)."
    ),
    limit_per_chat: int = typer.Option(
        20, "--limit-per-chat", min=0, help="Newest messages fetched per chat."
    ),
    lid_fraction: float | None = LidFractionOpt,
    late_mappings: bool | None = LateMappingsOpt,
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
) -> None:
    """Run the initial sync of a session and print what was mirrored.

    The first session of a mirror is made on first use; after that a new one needs
    --create. A session keeps the engine, seed and scale it was made with.
    """

    def body() -> None:
        settings = with_identities(settings_from(data_dir, database), lid_fraction, late_mappings)
        check_engine_inputs(settings, session, engine, scale)
        report = asyncio.run(
            _sync(
                settings,
                session,
                limit_per_chat,
                asked=(engine, seed, scale, create),
                show=not as_json,
            )
        )
        out = {
            "chats": report.chats,
            "contacts": report.contacts,
            "groups": report.groups,
            "messages": report.messages,
            "new_messages": report.new_messages,
            "failed_chats": [{"chat": f.chat_jid, "error": f.error} for f in report.failed_chats],
            "seconds": round(report.seconds, 3),
        }
        if as_json:
            sys.stdout.write(json.dumps(out) + "\n")
            return
        table = Table(title=f"session {session}: initial sync", show_header=False)
        for key in ("chats", "contacts", "groups"):
            table.add_row(key, str(out[key]))
        table.add_row("messages fetched", str(report.messages))
        table.add_row("new messages", str(report.new_messages))
        table.add_row("seconds", str(out["seconds"]))
        table.add_row("failed chats", str(len(report.failed_chats)))
        console.print(table)
        for failure in report.failed_chats:
            err_console.print(f"[yellow]chat {failure.chat_jid} failed:[/] {failure.error}")

    run_command(body)


async def _sync(
    settings: Settings,
    session: str,
    limit_per_chat: int,
    *,
    asked: tuple[str | None, int | None, str | None, bool],
    show: bool,
) -> SyncReport:
    from wasync.engines.factory import make_engine
    from wasync.sessions.host import hosted_session

    engine_name, seed, scale, create = asked
    db = open_database(settings)
    try:
        choice = choose_engine(
            db,
            session,
            engine=engine_name,
            seed=seed,
            scale=scale,
            may_create=True,
            create=create,
            settings=settings,
        )
        settings = choice.settings_for(settings)
        engine = make_engine(
            choice.engine, seed=choice.seed, scale=choice.scale, session=session, settings=settings
        )
    except BaseException:
        db.close()
        raise
    progress = Progress(
        TextColumn("[bold]syncing chats"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[chat]}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=not show,
    )
    task = progress.add_task("sync", total=None, chat="")

    def on_progress(p: SyncProgress) -> None:
        progress.update(task, total=p.n_chats, completed=p.current_chat, chat=p.chat_id or "")

    async with hosted_session(
        settings,
        db,
        session,
        engine,
        engine_name=choice.engine,
        command=f"sync --session {session}",
        engine_options=choice.options(),
    ) as handle:
        with progress:
            report = await handle.sync.initial_sync(limit_per_chat, on_progress=on_progress)
            await handle.sync.flush()
        return report


@app.command()
def stats(
    session: str | None = typer.Option(None, help="Only this session."),
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Print what the mirror holds (refuses a data directory or database that has none)."""

    def body() -> None:
        settings = settings_from(data_dir, database)
        db = open_existing_database(settings)
        try:
            with db.read() as conn:
                sid = get_session(conn, session).id if session else None
                counts = summary(conn, sid)
        finally:
            db.close()
        if as_json:
            sys.stdout.write(json.dumps(counts) + "\n")
            return
        table = Table(title="wasync mirror", show_header=False)
        for key, value in counts.items():
            table.add_row(key.replace("_", " "), str(value))
        console.print(table)

    run_command(body)


app.command("pair", help=PAIR_HELP)(pair_command)
app.add_typer(session_app, name="session")
app.add_typer(cluster_app, name="cluster")
app.add_typer(engine_app, name="engine")
app.add_typer(webhooks_app, name="webhooks")
app.command("avatar-job", help=avatar_job.HELP)(avatar_job.avatar_job)
app.add_typer(avatars_app, name="avatars")  # wasync/commands/avatars.py
app.add_typer(media_app, name="media")  # wasync/commands/media.py
app.command("history", help=history_command.HELP)(history_command.history)
app.command("search", help=search_command.HELP)(search_command.search)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


__all__ = ["app", "main"]
