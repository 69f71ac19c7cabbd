"""`wasync media import`: the local media directory copied into the database store."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from wasync.commands.common import (
    DatabaseOpt,
    DataDirOpt,
    console,
    err_console,
    print_json,
    run_command,
    settings_from,
)
from wasync.commands.existing import open_existing_database

app = typer.Typer(
    name="media",
    help="Where pictures and message media are kept (README: Where media are kept).",
    no_args_is_help=True,
)


@app.command("import")
def import_media(
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Copy the pictures and media under <data-dir>/media into the database, where
    every node serves them (WASYNC_MEDIA_STORE=database, or auto on PostgreSQL).

    Run it once when a deployment switches to the database store: nothing is then
    downloaded or announced again. The files stay; names already in the database are
    left alone, so running it again (or on every node) is harmless. Media of sessions
    the database does not have are skipped (nothing would ever delete them there).
    """
    from wasync.media.database import DatabaseMediaStore
    from wasync.media.local import LocalMediaStore
    from wasync.media.transfer import import_local
    from wasync.store.sessions import list_sessions

    def body() -> None:
        settings = settings_from(data_dir, database)
        db = open_existing_database(settings)
        try:
            with db.read() as conn:
                sessions = [(row.name, row.id) for row in list_sessions(conn)]
            # On stderr, and not with --json: stdout stays one JSON object.
            progress = Progress(
                TextColumn("[bold]media import"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                disable=as_json,
            )
            task = progress.add_task("import", total=None)
            with progress:
                report = import_local(
                    LocalMediaStore(settings.data_dir / "media"),
                    DatabaseMediaStore(db),
                    sessions=sessions,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
        finally:
            db.close()
        if as_json:
            print_json(report.as_json())
            return
        console.print(
            f"copied {report.copied} objects ({report.bytes_copied} bytes) into the database; "
            f"{report.already_there} were there already"
        )
        for line in report.skipped:
            console.print(f"skipped {line}")

    run_command(body)
