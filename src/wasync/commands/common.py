"""What the command modules share: options, settings, error handling, consoles."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from wasync.config import Settings
from wasync.errors import WasyncError
from wasync.files import secure_data_dir
from wasync.store.db import Database

T = TypeVar("T")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

DataDirOpt = typer.Option(
    None, "--data-dir", envvar="WASYNC_DATA_DIR", help="Data directory [default: ./wasync-data]."
)
DatabaseOpt = typer.Option(
    None,
    "--database",
    envvar="WASYNC_DATABASE_URL",
    help="Database URL (sqlite:///path or postgresql://…) [default: SQLite in the data dir].",
)


def print_json(value: Any) -> None:
    """One JSON document on stdout (the --json output of a command)."""
    sys.stdout.write(json.dumps(value) + "\n")


def settings_from(data_dir: Path | None, database: str | None) -> Settings:
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database is not None:
        overrides["database_url"] = database
    return Settings(**overrides)


def open_database(settings: Settings) -> Database:
    secure_data_dir(settings.data_dir)
    db = Database(settings.resolved_database_url())
    db.migrate()
    return db


def run_command(fn: Callable[[], T]) -> T:
    """Run a command body; our errors become one red line and exit code 1."""
    try:
        return fn()
    except WasyncError as exc:
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130) from None
