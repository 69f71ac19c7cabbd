"""`wasync search WORDS`: messages of a session holding every word, newest first."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from wasync.commands.common import (
    DatabaseOpt,
    DataDirOpt,
    console,
    print_json,
    run_command,
    settings_from,
)
from wasync.commands.existing import open_existing_database
from wasync.domain.jid import to_jid
from wasync.search import catch_up
from wasync.search.results import search_page
from wasync.store import search as store_search
from wasync.store.sessions import get_session, validate_session_name

HELP = """Find messages holding every word (letters and digits, any case), newest first,
with their chat. Pages: pass the printed cursor back with --before."""


def search(
    words: list[str] = typer.Argument(..., help="The words to find, all of them."),
    session: str = typer.Option("default", "--session", help="Session name."),
    chat: str | None = typer.Option(None, "--chat", help="Only this chat: a JID or phone number."),
    limit: int = typer.Option(
        20, "--limit", min=1, max=store_search.MAX_LIMIT, help="Hits per page."
    ),
    before: str | None = typer.Option(
        None, "--before", metavar="CURSOR", help="Older than this cursor (from a page before)."
    ),
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the page as one JSON object."),
) -> None:
    def body() -> None:
        query = " ".join(words)
        store_search.query_words(query)  # a query without words is refused before anything
        validate_session_name(session)
        chat_jid = to_jid(chat) if chat else None
        db = open_existing_database(settings_from(data_dir, database))
        try:
            catch_up(db)  # what was stored until now is found (SQLite indexes in steps)
            with db.read() as conn:
                sid = get_session(conn, session).id
                page = search_page(
                    conn, session, sid, query, chat_jid=chat_jid, before=before, limit=limit
                )
        finally:
            db.close()
        if as_json:
            print_json(page)
            return
        if not page["items"]:
            console.print(f"no message of session {escape(session)} holds {escape(query)!r}")
            return
        table = Table("time (UTC)", "chat", "from", "text", title=f"search: {escape(query)}")
        for hit in page["items"]:
            when = datetime.fromtimestamp(hit["timestamp"], UTC).strftime("%Y-%m-%d %H:%M")
            sender = "me" if hit["fromMe"] else hit["senderName"] or hit["senderJid"]
            table.add_row(
                when, escape(hit["chat"]["displayName"]), escape(sender), escape(hit["text"] or "")
            )
        console.print(table)
        if page["nextCursor"]:
            console.print(f"older hits: --before {page['nextCursor']}", highlight=False)

    run_command(body)
