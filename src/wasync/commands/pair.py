"""`wasync pair`: link a phone to a session and mirror the history it sends.

The phone sends its initial history once, right after linking, so pairing keeps
running and committing it until the phone says the transfer is complete or nothing
has arrived for `--settle` seconds.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import typer
from sqlalchemy import update

from wasync.commands.common import (
    DatabaseOpt,
    DataDirOpt,
    console,
    err_console,
    open_database,
    run_command,
    settings_from,
)
from wasync.config import Settings
from wasync.domain import events as ev
from wasync.domain.jid import normalize_phone
from wasync.engines.base import EngineError
from wasync.errors import ConfigError
from wasync.sessions.location import SessionStore, paired_device
from wasync.store.db import Database
from wasync.store.queries import summary
from wasync.store.schema import sessions
from wasync.store.sessions import ensure_session
from wasync.sync.commit import WriteFn

PAIR_HELP = "Link a phone to a session (QR code or phone pair code) and mirror its history."


class PairProgress:
    """Turns engine events into what the person at the terminal needs to see."""

    def __init__(self, out: TextIO, *, show_qr: bool) -> None:
        self.out = out
        self.show_qr = show_qr
        self.linked = asyncio.Event()
        self.settled = asyncio.Event()
        self.jid: str | None = None
        self.failure: str | None = None
        self.codes = 0
        self.messages = 0
        self.chats = 0
        self.last_history = time.monotonic()

    def on_event(self, event: ev.Event) -> None:
        match event:
            case ev.PairingCode(code=code, kind="qr"):
                self.codes += 1
                if self.show_qr:
                    self._draw_qr(code)
            case ev.PairingCode(code=code, kind="phone"):
                console.print(
                    f"\nOn the phone: WhatsApp > Linked devices > Link a device > "
                    f"Link with phone number instead, and enter: [bold]{code}[/]\n"
                )
            case ev.Paired(jid=jid):
                self.jid = jid
                self.last_history = time.monotonic()
                console.print(f"[green]linked[/] as +{jid.split('@')[0]}; waiting for history…")
                self.linked.set()
            case ev.PairingFailed(reason=reason) | ev.LoggedOut(reason=reason):
                self.failure = reason
                self.linked.set()
                self.settled.set()
            case ev.Connected():
                self.last_history = time.monotonic()
                console.print("[green]connected[/] to WhatsApp")
            case ev.Disconnected(reason=reason):
                console.print(f"[yellow]disconnected[/] ({reason})")
            case ev.HistoryBatch():
                self._history(event)

    def _draw_qr(self, code: str) -> None:
        import segno

        self.out.write(
            f"\nScan with WhatsApp on the phone: Settings > Linked devices > Link a device "
            f"(code {self.codes}; a new one comes every ~20 s)\n"
        )
        segno.make_qr(code).terminal(out=self.out, compact=True)
        self.out.flush()

    def _history(self, batch: ev.HistoryBatch) -> None:
        self.last_history = time.monotonic()
        self.messages += len(batch.messages)
        self.chats += len(batch.chats)
        done = f", {batch.progress}% of the transfer" if batch.progress is not None else ""
        console.print(
            f"history ({batch.sync_type.value}): +{len(batch.messages)} messages, "
            f"{self.messages} so far in {self.chats} chat blocks{done}"
        )
        if batch.progress is not None and batch.progress >= 100:
            self.settled.set()


def pair(
    session: str = typer.Option("default", "--session", help="Session name."),
    phone: str | None = typer.Option(
        None, "--phone", help="Pair with a code typed on the phone instead of a QR code."
    ),
    full_history: bool = typer.Option(
        False, "--full-history", help="Ask the phone for all the history it allows (~1 year)."
    ),
    history_days: int | None = typer.Option(
        None, "--history-days", min=1, help="Ask the phone for this many days of history."
    ),
    timeout: float = typer.Option(
        30.0, "--timeout", min=1.0, help="Seconds to wait for WhatsApp to answer."
    ),
    wait: float = typer.Option(
        180.0, "--wait", min=10.0, help="Seconds to wait for the phone to link."
    ),
    settle: float = typer.Option(
        60.0, "--settle", min=1.0, help="Stop after this many seconds without new history."
    ),
    force: bool = typer.Option(
        False, "--force", help="Pair again even though the session is paired (old keys kept aside)."
    ),
    proxy: str | None = typer.Option(
        None, "--proxy", envvar="WASYNC_PROXY", help="Proxy URL (socks5://… or http://…)."
    ),
    engine: str = typer.Option(
        "neonize", "--engine", help="Engine: 'neonize' (whatsmeow) or 'baileys' (Node.js)."
    ),
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
) -> None:
    """Link a phone to a session (QR code or phone pair code) and mirror its history."""
    from wasync.engines.neonize.options import HistoryDepth
    from wasync.engines.neonize.setup import neonize_engine_for, session_store

    if engine == "baileys":
        run_command(
            lambda: _pair_baileys(
                settings_from(data_dir, database),
                session,
                phone,
                full_history=full_history,
                history_days=history_days,
                timeout=timeout,
                wait=wait,
                settle=settle,
                force=force,
                proxy=proxy,
            )
        )
        return
    if engine != "neonize":
        run_command(_unknown_engine(engine))
        return

    def body() -> None:
        settings = settings_from(data_dir, database)
        if full_history and history_days is not None:
            raise ConfigError("give --full-history or --history-days, not both")
        depth = HistoryDepth(full=full_history, days=history_days)
        if phone is not None:
            normalize_phone(phone)  # a typo fails here, not after connecting
        db = open_database(settings)
        try:
            store = session_store(settings, session)
            with db.write() as conn:
                session_id = ensure_session(conn, session, "neonize")
                jid = (
                    conn.execute(sessions.select().where(sessions.c.id == session_id))
                    .one()
                    ._mapping["jid"]
                )
            device = paired_device(store, jid)
            aside = None
            if device is not None:
                if not force:
                    account = device.user_jid.split("@")[0]
                    raise EngineError(
                        f"session {session!r} is already paired as +{account} "
                        f"(keys in {store.describe()}); pass --force to link a phone again"
                    )
                aside = _set_aside(store.path)
            try:
                engine = neonize_engine_for(
                    settings,
                    session,
                    allow_pairing=True,
                    history=depth,
                    connect_timeout=timeout,
                    proxy=proxy,
                )
                console.print(
                    f"pairing session [bold]{session}[/] (keys in {store.describe()}); "
                    f"initial history: {depth.describe()}"
                )
                progress = PairProgress(sys.stdout, show_qr=phone is None)
                engine.add_listener(progress.on_event)
                asyncio.run(
                    _pair(settings, db, engine, session, session_id, progress, phone, wait, settle)
                )
            except BaseException:
                if aside is not None:
                    _put_back(store, aside)
                raise
        finally:
            db.close()

    run_command(body)


async def _pair(
    settings: Settings,
    db: Database,
    engine: object,
    session: str,
    session_id: int,
    progress: PairProgress,
    phone: str | None,
    wait: float,
    settle: float,
) -> None:
    from wasync.engines.baileys.engine import BaileysEngine
    from wasync.engines.neonize.engine import NeonizeEngine
    from wasync.sessions.host import hosted_session

    assert isinstance(engine, NeonizeEngine | BaileysEngine)
    name = "baileys" if isinstance(engine, BaileysEngine) else "neonize"
    async with hosted_session(
        settings, db, session, engine, engine_name=name, command=f"pair --session {session}"
    ) as handle:
        if phone is not None:
            await engine.pair_phone(phone)
        try:
            await asyncio.wait_for(progress.linked.wait(), wait)
        except TimeoutError:
            raise EngineError(
                f"no phone linked within {wait:g} s (the codes expired); run `wasync pair` again"
            ) from None
        if progress.failure is not None or progress.jid is None:
            raise EngineError(progress.failure or "pairing failed")
        await asyncio.to_thread(_record_jid, handle.write, session_id, progress.jid)
        await _settle(progress, settle)
        await handle.sync.flush()
        if progress.failure is not None:
            raise EngineError(progress.failure)
    # Read after the session stopped: stopping commits what the engine still held.
    with db.read() as conn:
        counts = summary(conn, session_id)
    console.print(
        f"[green]done[/]: session {session} mirrors {counts.get('chats', 0)} chats and "
        f"{counts.get('messages', 0)} messages. More history the phone sends later arrives "
        "the next time this session runs."
    )


async def _settle(progress: PairProgress, settle: float) -> None:
    """Wait until the phone says the transfer is complete, or it has been quiet a while."""
    while not progress.settled.is_set():
        quiet = time.monotonic() - progress.last_history
        if quiet >= settle:
            err_console.print(f"no new history for {settle:g} s; stopping")
            return
        try:
            await asyncio.wait_for(progress.settled.wait(), settle - quiet)
        except TimeoutError:
            continue


def _record_jid(write: WriteFn, session_id: int, jid: str) -> None:
    with write() as conn:
        conn.execute(update(sessions).where(sessions.c.id == session_id).values(jid=jid))


def _set_aside(path: Path | None) -> Path | None:
    """Keep old keys (renamed) rather than delete them: they may still be wanted."""
    if path is None or not path.exists():
        return None
    aside = path.with_name(f"{path.name}.replaced-{int(time.time())}")
    path.rename(aside)
    err_console.print(f"the old keys were moved to {aside}")
    return aside


def _put_back(store: SessionStore, aside: Path) -> None:
    """Pairing again failed before a new phone linked: the old keys work as before."""
    path = store.path
    if path is None or paired_device(store) is not None:
        return  # a new device linked: it stays, and the old keys stay aside
    for leftover in (path, *path.parent.glob(f"{path.name}-*")):  # the unlinked store
        leftover.unlink(missing_ok=True)
    aside.rename(path)
    err_console.print(f"pairing did not complete: the old keys are back in {path}")


def _unknown_engine(engine: str) -> Callable[[], None]:
    def fail() -> None:
        raise ConfigError(f"cannot pair with engine {engine!r}: choose 'neonize' or 'baileys'")

    return fail


def _pair_baileys(
    settings: Settings,
    session: str,
    phone: str | None,
    *,
    full_history: bool,
    history_days: int | None,
    timeout: float,
    wait: float,
    settle: float,
    force: bool,
    proxy: str | None,
) -> None:
    """`wasync pair --engine baileys`: the same flow, keys in the Baileys key store."""
    from wasync.engines.baileys.install import require
    from wasync.engines.baileys.setup import auth_store, baileys_engine_for

    if history_days is not None:
        raise ConfigError("--history-days is for the neonize engine; Baileys has --full-history")
    if phone is not None:
        normalize_phone(phone)
    require(settings.baileys_dir)  # no Node, not installed: say so before anything else
    db = open_database(settings)
    try:
        store = auth_store(settings, session)
        with db.write() as conn:
            session_id = ensure_session(conn, session, "baileys")
        account = store.account()
        if account is not None:
            if not force:
                raise EngineError(
                    f"session {session!r} is already paired as +{account.jid.split('@')[0]} "
                    f"(keys in {store.describe()}); pass --force to link a phone again"
                )
            store.clear()
            err_console.print("the old keys were removed (--force)")
        engine = baileys_engine_for(
            settings,
            session,
            allow_pairing=True,
            full_history=full_history,
            connect_timeout=timeout,
            proxy=proxy,
        )
        console.print(
            f"pairing session [bold]{session}[/] with the Baileys engine (keys in "
            f"{store.describe()})"
        )
        progress = PairProgress(sys.stdout, show_qr=phone is None)
        engine.add_listener(progress.on_event)
        asyncio.run(_pair(settings, db, engine, session, session_id, progress, phone, wait, settle))
    finally:
        db.close()
