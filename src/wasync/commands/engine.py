"""`wasync engine list|install`: which WhatsApp engines this machine can run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from wasync.commands.common import console, run_command
from wasync.config import Settings

app = typer.Typer(help="WhatsApp engines: which are available here, and installing Baileys.")


def engines_status(settings: Settings) -> list[dict[str, object]]:
    from wasync.engines.baileys.install import check

    neonize = importlib.util.find_spec("neonize") is not None
    baileys = check(settings.baileys_dir)
    return [
        {
            "engine": "neonize",
            "available": neonize,
            "reason": None if neonize else "not installed: pip install neonize==0.5.2",
            "olderHistory": False,
        },
        {
            "engine": "baileys",
            "available": baileys.available,
            "reason": baileys.reason,
            "olderHistory": True,
            "directory": str(baileys.directory),
            "node": baileys.node,
        },
        {"engine": "simulator", "available": True, "reason": None, "olderHistory": True},
    ]


@app.command("list")
def list_engines(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Each engine, whether it can run here, and why not."""

    def body() -> None:
        rows = engines_status(Settings())
        if as_json:
            sys.stdout.write(json.dumps(rows) + "\n")
            return
        table = Table("engine", "available", "older history", "note")
        for row in rows:
            note = row["reason"] or (f"in {row['directory']}" if row.get("directory") else "")
            table.add_row(
                str(row["engine"]),
                "yes" if row["available"] else "no",
                "yes" if row["olderHistory"] else "no",
                str(note),
            )
        console.print(table)

    run_command(body)


@app.command("install")
def install_engine(
    name: str = typer.Argument(..., help="The engine to install: baileys."),
    directory: Path | None = typer.Option(
        None, "--dir", help="Install here instead of WASYNC_BAILEYS_DIR or the default."
    ),
) -> None:
    """Install an engine's own dependencies (Baileys: `npm ci` against its lockfile)."""
    from wasync.engines.baileys.install import BAILEYS_VERSION, install
    from wasync.errors import ConfigError

    def body() -> None:
        if name != "baileys":
            raise ConfigError(f"nothing to install for {name!r}: only 'baileys' has an installer")
        target = install(directory or Settings().baileys_dir)
        console.print(
            f"installed Baileys {BAILEYS_VERSION} and its npm packages in {target} "
            "(libsignal is GPL-3.0, installed from npm)"
        )

    run_command(body)
