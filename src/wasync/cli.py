"""The `wasync` command line (Typer + Rich)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wasync.commands import avatar_job
from wasync.commands import history as history_command
from wasync.commands.avatars import app as avatars_app
from wasync.commands.cluster import app as cluster_app
from wasync.commands.common import DatabaseOpt, DataDirOpt, open_database, settings_from
from wasync.commands.engine import app as engine_app
from wasync.commands.media import app as media_app
from wasync.commands.pair import PAIR_HELP
from wasync.commands.pair import pair as pair_command
from wasync.commands.serve import register as register_serve_commands
from wasync.commands.session import app as session_app
from wasync.commands.webhooks import app as webhooks_app
from wasync.config import Settings
from wasync.domain.models import SyncProgress, SyncReport
from wasync.errors import WasyncError
from wasync.store.queries import summary
from wasync.store.sessions import get_session

app = typer.Typer(
    name="wasync",
    help="Mirror WhatsApp accounts into your own SQL database and keep it live.",
    no_args_is_help=True,
    add_completion=False,
    # An unexpected error's traceback must not print local variables: they can hold a
    # database URL with its password, a session key or a webhook secret.
    pretty_exceptions_show_locals=False,
)
console = Console()
err_console = Console(stderr=True)
register_serve_commands(app)  # serve, demo (wasync/commands/serve.py)

T = TypeVar("T")


def _run(fn: Callable[[], T]) -> T:
    """Run a command body; our errors become one red line and exit code 1."""
    try:
        return fn()
    except WasyncError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130) from None


@app.command()
def sync(
    engine: str = typer.Option("simulator", help="Engine: 'simulator', 'neonize' or 'baileys'."),
    seed: int = typer.Option(1, help="Simulator: seed of the generated network."),
    scale: str = typer.Option("tiny", help="Simulator: tiny, small, medium or large."),
    session: str = typer.Option("default", help="Session name."),
    limit_per_chat: int = typer.Option(
        20, "--limit-per-chat", min=0, help="Newest messages fetched per chat."
    ),
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
) -> None:
    """Run the initial sync of a session and print what was mirrored."""

    def body() -> None:
        settings = settings_from(data_dir, database)
        report = asyncio.run(
            _sync(settings, engine, seed, scale, session, limit_per_chat, show=not as_json)
        )
        out = {
            "chats": report.chats,
            "contacts": report.contacts,
            "groups": report.groups,
            "messages": report.messages,
            "failed_chats": [{"chat": f.chat_jid, "error": f.error} for f in report.failed_chats],
            "seconds": round(report.seconds, 3),
        }
        if as_json:
            sys.stdout.write(json.dumps(out) + "\n")
            return
        table = Table(title=f"session {session}: initial sync", show_header=False)
        for key in ("chats", "contacts", "groups", "messages", "seconds"):
            table.add_row(key, str(out[key]))
        table.add_row("failed chats", str(len(report.failed_chats)))
        console.print(table)
        for failure in report.failed_chats:
            err_console.print(f"[yellow]chat {failure.chat_jid} failed:[/] {failure.error}")

    _run(body)


async def _sync(
    settings: Settings,
    engine_name: str,
    seed: int,
    scale: str,
    session: str,
    limit_per_chat: int,
    *,
    show: bool,
) -> SyncReport:
    from wasync.engines.factory import make_engine
    from wasync.sessions.host import hosted_session

    db = open_database(settings)
    engine = make_engine(engine_name, seed=seed, scale=scale, session=session, settings=settings)
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
        engine_name=engine_name,
        command=f"sync --session {session}",
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
    """Print what the mirror holds."""

    def body() -> None:
        settings = settings_from(data_dir, database)
        db = open_database(settings)
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

    _run(body)


app.command("pair", help=PAIR_HELP)(pair_command)
app.add_typer(session_app, name="session")
app.add_typer(cluster_app, name="cluster")
app.add_typer(engine_app, name="engine")
app.add_typer(webhooks_app, name="webhooks")
app.command("avatar-job", help=avatar_job.HELP)(avatar_job.avatar_job)
app.add_typer(avatars_app, name="avatars")  # wasync/commands/avatars.py
app.add_typer(media_app, name="media")  # wasync/commands/media.py
app.command("history", help=history_command.HELP)(history_command.history)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


__all__ = ["app", "main"]
