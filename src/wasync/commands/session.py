"""`wasync session list | export | import`: see sessions and move them between machines."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from wasync.commands.common import (
    DatabaseOpt,
    DataDirOpt,
    console,
    open_database,
    run_command,
    settings_from,
)
from wasync.commands.existing import open_existing_database
from wasync.domain.events import SessionStatus
from wasync.sessions.location import locate, paired_device, sessions_dir
from wasync.store.sessions import ensure_session, list_sessions, set_status

if TYPE_CHECKING:
    from wasync.sessions.crypto import Secret

app = typer.Typer(
    name="session",
    help="List sessions; export a paired session to an encrypted file and import it elsewhere.",
    no_args_is_help=True,
)


def _secret(*, confirm: bool) -> Secret:
    """The key from WASYNC_SESSION_KEY, or a passphrase typed at the terminal."""
    from wasync.sessions.crypto import KEY_ENV, Secret, SessionFileError

    value = os.environ.get(KEY_ENV)
    if value:
        return Secret.from_text(value)
    if not sys.stdin.isatty():
        raise SessionFileError(
            f"no key: set {KEY_ENV} to a random key (openssl rand -base64 32) or a "
            "passphrase, or run this in a terminal to type a passphrase"
        )
    passphrase = typer.prompt("passphrase", hide_input=True, confirmation_prompt=confirm)
    return Secret.from_passphrase(passphrase)


@app.command("list")
def list_command(
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per session."),
) -> None:
    """Every session: engine, status (and why), account, where its keys live, paired or not."""

    def body() -> None:
        settings = settings_from(data_dir, database)
        db = open_existing_database(settings)
        try:
            with db.read() as conn:
                rows = list_sessions(conn)
        finally:
            db.close()
        url = settings.resolved_database_url()
        listed = []
        names = {r.name for r in rows}
        folder = sessions_dir(settings.data_dir)
        # A key file without a row (copied in by hand) is a session too.
        orphans = sorted(p.stem for p in folder.glob("*.db")) if folder.is_dir() else []
        for row in rows:
            store = locate(settings.data_dir, url, row.name)
            device = paired_device(store, row.jid) if row.engine == "neonize" else None
            listed.append(
                {
                    "name": row.name,
                    "engine": row.engine,
                    "status": row.status,
                    "reason": row.status_reason,
                    "jid": row.jid or (device.user_jid if device else None),
                    "keys": store.describe() if row.engine == "neonize" else None,
                    "paired": device is not None,
                }
            )
        for name in orphans:
            if name not in names:
                store = locate(settings.data_dir, url, name)
                device = paired_device(store)
                listed.append(
                    {
                        "name": name,
                        "engine": "neonize",
                        "status": "not registered",
                        "reason": None,
                        "jid": device.user_jid if device else None,
                        "keys": store.describe(),
                        "paired": device is not None,
                    }
                )
        if as_json:
            for item in listed:
                sys.stdout.write(json.dumps(item) + "\n")
            return
        table = Table(title="sessions")
        for column in ("name", "engine", "status", "account", "paired", "keys"):
            table.add_column(column)
        for item in listed:
            status = str(item["status"])
            if item["reason"]:
                status += f" ({item['reason']})"
            table.add_row(
                str(item["name"]),
                str(item["engine"]),
                status,
                str(item["jid"] or "-"),
                "yes" if item["paired"] else "no",
                str(item["keys"] or "-"),
            )
        console.print(table)

    run_command(body)


@app.command("export")
def export_command(
    name: str = typer.Argument(..., help="Session to export."),
    out: Path = typer.Option(..., "--out", help="File to write (created with mode 600)."),
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
) -> None:
    """Write a paired session's keys to an encrypted file (AES-256-GCM).

    The key comes from WASYNC_SESSION_KEY (a random key, or a passphrase), else a
    passphrase is asked for. Anyone holding the file and its key can use the account.
    """
    from wasync.sessions.transfer import export_session

    def body() -> None:
        settings = settings_from(data_dir, database)
        store = locate(settings.data_dir, settings.resolved_database_url(), name)
        secret = _secret(confirm=True)
        manifest = export_session(store, secret, out)
        console.print(
            f"exported session [bold]{name}[/] ({manifest.jid}, {manifest.size} bytes) to {out}"
        )

    run_command(body)


@app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="A file written by `wasync session export`."),
    name: str | None = typer.Option(None, "--name", help="Import under this session name."),
    force: bool = typer.Option(False, "--force", help="Replace a session of the same name."),
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
) -> None:
    """Install a session exported elsewhere, so this machine can run it.

    Nothing is written unless the file opens with the key and holds a paired session.
    Run only one copy of a session at a time: WhatsApp drops the other (stream replaced).
    """
    from wasync.sessions.transfer import install_session, read_sealed

    def body() -> None:
        settings = settings_from(data_dir, database)
        secret = _secret(confirm=False)
        manifest, payload = read_sealed(file, secret)
        path, device = install_session(settings.data_dir, manifest, payload, name=name, force=force)
        target = name or manifest.session
        db = open_database(settings)
        try:
            with db.write() as conn:
                session_id = ensure_session(conn, target, "neonize")
                set_status(
                    conn,
                    session_id,
                    SessionStatus.DISCONNECTED,
                    f"imported from {file.name}",
                    jid=device.user_jid,
                )
        finally:
            db.close()
        console.print(f"imported session [bold]{target}[/] ({device.user_jid}) to {path}")

    run_command(body)
