"""What the command modules share: options, settings, error handling, consoles."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
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

# The simulator's identities (engines/simulator/wire.py); None: the setting's value.
LidFractionOpt = typer.Option(
    None,
    "--lid-fraction",
    min=0.0,
    max=1.0,
    envvar="WASYNC_SIMULATOR_LID_FRACTION",
    help="Simulator: share of people WhatsApp addresses by LID, a fifth of them with "
    "their number hidden [default: 0].",
)
LateMappingsOpt = typer.Option(
    None,
    "--late-mappings/--no-late-mappings",
    envvar="WASYNC_SIMULATOR_LATE_MAPPINGS",
    help="Simulator: tell a person's LID <-> number pair only after both forms were seen "
    "(or at the next connect) [default: no].",
)


def with_identities(
    settings: Settings, lid_fraction: float | None, late_mappings: bool | None
) -> Settings:
    """`settings` with the simulator identity options given on the command line."""
    changes: dict[str, Any] = {}
    if lid_fraction is not None:
        changes["simulator_lid_fraction"] = lid_fraction
    if late_mappings is not None:
        changes["simulator_late_mappings"] = late_mappings
    return settings.model_copy(update=changes) if changes else settings


def utc_time(timestamp: float) -> str:
    """A moment as the commands print it: `2024-05-01 12:00:00 UTC`."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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
