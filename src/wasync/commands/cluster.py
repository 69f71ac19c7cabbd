"""`wasync cluster status`: the nodes sharing this database and the sessions each runs."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from wasync.commands.common import (
    DatabaseOpt,
    DataDirOpt,
    console,
    print_json,
    run_command,
    settings_from,
    utc_time,
)
from wasync.commands.existing import open_existing_database

app = typer.Typer(
    name="cluster",
    help="The nodes (`wasync serve`) that share this database, and what each one runs.",
    no_args_is_help=True,
)


@app.command("status")
def status(
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Every live node with its address, heartbeat and sessions (as GET /api/cluster)."""
    from wasync.cluster.view import cluster_view

    def body() -> None:
        settings = settings_from(data_dir, database)
        db = open_existing_database(settings)
        try:
            with db.read() as conn:
                view = cluster_view(conn, ttl=settings.lease_seconds)
        finally:
            db.close()
        if as_json:
            print_json(view)
            return
        if not view["nodes"]:
            console.print("no node is running on this database")
        else:
            table = Table(title="nodes")
            for column in ("node", "address", "sessions", "heartbeat", "since"):
                table.add_column(column)
            now = time.time()
            for node in view["nodes"]:
                started = node["startedAt"]
                table.add_row(
                    node["id"],
                    node["address"] or "",
                    ", ".join(node["sessions"]) or "-",
                    f"{now - node['heartbeatAt']:.0f} s ago",
                    utc_time(started) if started else "",
                )
            console.print(table)
        for session, holder in view["holders"].items():
            console.print(f"session {session} is held by {holder}")

    run_command(body)
