"""`wasync serve` (the HTTP API, live events and web UI) and `wasync demo`."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from wasync.commands.common import (
    DatabaseOpt,
    DataDirOpt,
    LateMappingsOpt,
    LidFractionOpt,
    with_identities,
)
from wasync.config import Settings
from wasync.engines.factory import ENGINE_NAMES, EngineFactory, SimulatorOptions
from wasync.engines.simulator.config import SCALES
from wasync.errors import ConfigError, WasyncError

if TYPE_CHECKING:
    from wasync.api.server import Started

console = Console(stderr=True, highlight=False, soft_wrap=True)

HostOpt = typer.Option(None, "--host", help="Address to bind [default: 127.0.0.1].")
PortOpt = typer.Option(
    None, "--port", min=0, max=65535, help="Port to bind, 0 for any free one [default: 8420]."
)
NoAuthOpt = typer.Option(
    False, "--no-auth", help="Serve without an API key (refused unless the host is loopback)."
)
LogLevelOpt = typer.Option("warning", "--log-level", help="debug, info, warning or error.")


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid setting: {problems}") from None


def _run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run the server; our errors become one red line and exit code 1."""
    try:
        asyncio.run(body())
    except WasyncError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _announce(title: str, data_note: str | None = None, *, demo: bool = False) -> Any:
    def show(started: Started) -> None:
        key = started.key
        console.print(f"[bold green]{title}[/]")
        login = f"{started.url}/ui/login"
        if key.value and (demo or key.source == "generated"):
            # The fragment never reaches the server; the login page stores and hides it.
            login += f"#key={key.value}"
        console.print(f"  web UI:   {login}")
        console.print(f"  API:      {started.url}/api  (docs: {started.url}/docs)")
        if key.source == "disabled":
            console.print("  API key:  [yellow]none — authentication is off (loopback only)[/]")
        elif key.source == "generated":
            console.print(f"  API key:  {key.value}")
            console.print(f"            (generated now, stored in {key.path} with mode 0600;")
            console.print("             this is the only time it is printed)")
        elif key.source == "file" and demo:
            console.print(f"  API key:  {key.value}")
        elif key.source == "file":
            console.print(f"  API key:  the one in {key.path}")
        else:
            console.print("  API key:  from WASYNC_API_KEY")
        if data_note:
            console.print(f"  data:     {data_note}")
        if started.restored:
            console.print(f"  sessions: {', '.join(started.restored)}")
        for name, error in started.restore_errors.items():
            console.print(f"  [yellow]session {escape(name)} not started:[/] {escape(error)}")
        console.print("Press Ctrl+C to stop.")
        sys.stderr.flush()

    return show


def serve(
    host: str | None = HostOpt,
    port: int | None = PortOpt,
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    no_auth: bool = NoAuthOpt,
    engine: str | None = typer.Option(
        None,
        "--engine",
        help=f"Engine of sessions created through the API ({', '.join(ENGINE_NAMES)}) "
        "[default: neonize when installed].",
    ),
    log_level: str = LogLevelOpt,
    access_log: bool = typer.Option(False, "--access-log", help="Log every HTTP request."),
    node_name: str | None = typer.Option(
        None,
        "--node-name",
        envvar="WASYNC_NODE_NAME",
        help="This node's name among the nodes sharing a PostgreSQL database [default: "
        "host name and process id].",
    ),
) -> None:
    """Serve the HTTP API, live events (Socket.IO, WebSocket) and the web UI."""
    from wasync.api.server import run_server

    async def body() -> None:
        settings = _settings(
            host=host,
            port=port,
            data_dir=data_dir,
            database_url=database,
            auth=False if no_auth else None,
            session_engine=engine,
            node_name=node_name,
        )
        if settings.session_engine is not None:
            EngineFactory(settings).check(settings.session_engine)
        await run_server(
            settings,
            on_started=_announce("wasync is serving"),
            log_level=log_level,
            access_log=access_log,
        )

    _run(body)


def demo(
    host: str | None = HostOpt,
    port: int | None = PortOpt,
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Keep the demo's data here [default: a temporary directory]."
    ),
    scale: str = typer.Option("small", help="Simulated account size: tiny, small, medium, large."),
    seed: int = typer.Option(1, help="Seed of the simulated network."),
    live_rate: float = typer.Option(1.0, "--live-rate", min=0, help="Live events per second."),
    lid_fraction: float | None = LidFractionOpt,
    late_mappings: bool | None = LateMappingsOpt,
    latency: float = typer.Option(
        0.03, min=0, help="Seconds each simulated WhatsApp request takes."
    ),
    limit_per_chat: int = typer.Option(
        50, "--limit-per-chat", min=0, help="Newest messages synced per chat."
    ),
    avatar_interval: float = typer.Option(
        0.2,
        "--avatar-interval",
        min=0.01,
        help="Average seconds between picture requests (a simulated network bans nobody, "
        "so the demo asks faster than the 3 s a real account should).",
    ),
    no_auth: bool = NoAuthOpt,
    log_level: str = LogLevelOpt,
) -> None:
    """Run the server on a simulated WhatsApp account with live traffic (no phone needed)."""
    from wasync.api.server import DemoOptions, run_server

    if scale not in SCALES:
        console.print(
            f"[bold red]error:[/] unknown scale {scale!r}: choose one of {', '.join(SCALES)}"
        )
        raise typer.Exit(1)
    temporary = data_dir is None
    directory = Path(tempfile.mkdtemp(prefix="wasync-demo-")) if data_dir is None else data_dir
    note = f"{directory} (deleted on exit)" if temporary else str(directory)

    async def body() -> None:
        settings = _settings(
            host=host,
            port=port,
            data_dir=directory,
            auth=False if no_auth else None,
            session_engine="simulator",
            simulator_scale=scale,
            simulator_seed=seed,
            simulator_live_rate=live_rate,
            limit_per_chat=limit_per_chat,
            avatar_interval=avatar_interval,
        )
        settings = with_identities(settings, lid_fraction, late_mappings)
        await run_server(
            settings,
            simulator=SimulatorOptions(
                scale,
                seed,
                live_rate,
                latency,
                pair_delay=3.0,
                lid_fraction=settings.simulator_lid_fraction,
                late_mappings=settings.simulator_late_mappings,
                real_clock=True,
            ),
            demo=DemoOptions(limit_per_chat=limit_per_chat),
            on_started=_announce(
                "wasync demo: a simulated WhatsApp account with live traffic", note, demo=True
            ),
            log_level=log_level,
        )

    try:
        _run(body)
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("demo")(demo)
