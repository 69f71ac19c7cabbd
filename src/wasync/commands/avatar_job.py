"""`wasync avatar-job`: a scheduled one-shot job, numbers' profile pictures to Discord.

Every option can come from the environment (WASYNC_*), so a container job needs no
arguments. Exit codes (one line on stderr says why):

    0  every number done (posted, unchanged, or reported without a picture)
    1  unexpected error
    2  bad options or environment (a malformed number, a refused webhook URL)
    3  the session is not paired (or was logged out): pair it, then run again
    4  no network: WhatsApp (or Discord, for every number) could not be reached
    5  partial failure: some numbers failed, the others are done
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import typer
from rich.markup import escape

from wasync.commands.common import (
    DatabaseOpt,
    DataDirOpt,
    err_console,
    open_database,
    settings_from,
)
from wasync.config import Settings
from wasync.delivery import endpoints as E
from wasync.delivery import picture_job as P
from wasync.delivery.http import guarded_client, redact_url
from wasync.delivery.ssrf import Guard, UnresolvableTarget, parse_networks
from wasync.domain.jid import to_jid
from wasync.engines.base import LoggedOutError
from wasync.engines.factory import make_engine
from wasync.errors import ConfigError, StoreError, WasyncError

HELP = """Post the profile pictures of phone numbers to a Discord webhook, then exit.

Restores the stored session, connects, asks WhatsApp for each number's picture and
posts the new or changed ones (an unchanged picture is not posted again). Exit codes:
0 done, 2 bad options, 3 not paired, 4 no network, 5 partial failure, 1 other error.
"""


def avatar_job(
    # WASYNC_PHONES is read by hand: click would split it on spaces, and people write
    # numbers with spaces in them ("+55 11 99999-0001").
    phones: list[str] = typer.Option(
        None,
        "--phone",
        help="Phone number with country code, in any format (repeat it, or give a "
        "comma-separated list; env WASYNC_PHONES).",
    ),
    discord_webhook: str | None = typer.Option(
        None,
        "--discord-webhook",
        envvar="WASYNC_DISCORD_WEBHOOK_URL",
        help="Discord webhook URL (https://discord.com/api/webhooks/…).",
    ),
    session: str = typer.Option("default", "--session", envvar="WASYNC_SESSION"),
    no_picture: str = typer.Option(
        "skip",
        "--no-picture",
        envvar="WASYNC_NO_PICTURE",
        help="A number without a (visible) picture: 'skip' (report only) or 'post' a text "
        "message once.",
    ),
    engine: str = typer.Option(
        "neonize", "--engine", envvar="WASYNC_ENGINE", help="'neonize' (WhatsApp) or 'simulator'."
    ),
    seed: int = typer.Option(1, "--seed", envvar="WASYNC_SIMULATOR_SEED", help="Simulator: seed."),
    scale: str = typer.Option(
        "tiny", "--scale", envvar="WASYNC_SIMULATOR_SCALE", help="Simulator: network size."
    ),
    connect_timeout: float = typer.Option(
        30.0,
        "--connect-timeout",
        envvar="WASYNC_CONNECT_TIMEOUT",
        min=1.0,
        help="Seconds to wait for WhatsApp.",
    ),
    data_dir: Path | None = DataDirOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = typer.Option(
        False, "--json", envvar="WASYNC_JSON", help="Print one JSON object at the end."
    ),
) -> None:
    try:
        settings = settings_from(data_dir, database)
        options = _options(settings, session, phones, discord_webhook, no_picture, connect_timeout)
        report = asyncio.run(_run(settings, options, engine, seed, scale, show=not as_json))
    except StoreError as exc:  # like WhatsApp down: the next scheduled run may succeed
        report = P.JobReport(P.EXIT_NO_NETWORK, f"no database: {exc}")
    except (WasyncError, ValueError) as exc:
        report = P.JobReport(P.EXIT_CONFIG, f"bad configuration: {exc}")
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130) from None
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict()) + "\n")
    elif report.exit_code == P.EXIT_OK:
        sys.stdout.write(report.reason + "\n")
    if report.exit_code != P.EXIT_OK:
        err_console.print(
            f"[bold red]avatar-job:[/] {escape(report.reason)}", highlight=False, markup=True
        )
    raise typer.Exit(report.exit_code)


def _options(
    settings: Settings,
    session: str,
    phones: list[str] | None,
    webhook: str | None,
    no_picture: str,
    connect_timeout: float,
) -> P.JobOptions:
    given = phones or [os.environ.get("WASYNC_PHONES", "")]
    numbers = [p.strip() for item in given for p in re.split(r"[,;\n]+", item) if p.strip()]
    if not numbers:
        raise ConfigError("no phone number: pass --phone (or set WASYNC_PHONES)")
    if not webhook:
        raise ConfigError(
            "no Discord webhook: pass --discord-webhook (or set WASYNC_DISCORD_WEBHOOK_URL)"
        )
    if no_picture not in ("skip", "post"):
        raise ConfigError(f"--no-picture must be 'skip' or 'post', not {no_picture!r}")
    jids: list[tuple[str, str]] = []
    for number in numbers:
        jid = to_jid(number)
        if not jid.endswith("@s.whatsapp.net"):
            raise ConfigError(f"{number!r} is not a phone number")
        if jid not in (j for _, j in jids):
            jids.append((number, jid))
    E.check_shape(session, webhook, ["avatar"], kind="discord")
    return P.JobOptions(session, jids, webhook.strip(), no_picture, connect_timeout)


async def _run(
    settings: Settings,
    options: P.JobOptions,
    engine_name: str,
    seed: int,
    scale: str,
    *,
    show: bool,
) -> P.JobReport:
    guard = Guard(parse_networks(settings.webhook_allowed_networks))
    try:
        await guard.check_url(options.webhook_url)
    except UnresolvableTarget as exc:
        # Discord's name not resolving is, for a scheduled job, a network problem.
        return P.JobReport(P.EXIT_NO_NETWORK, f"no network: {exc}")
    db = await asyncio.to_thread(open_database, settings)
    try:
        try:
            engine = make_engine(
                engine_name, seed=seed, scale=scale, session=options.session, settings=settings
            )
        except LoggedOutError as exc:
            return P.JobReport(P.EXIT_NOT_PAIRED, f"not paired: {exc}")
        if show:
            err_console.print(
                f"avatar-job: session {options.session}, {len(options.jids)} numbers → "
                f"{redact_url(options.webhook_url)}",
                highlight=False,
                markup=False,
            )

        def show_line(result: P.NumberResult) -> None:
            if show:
                sys.stdout.write(result.line() + "\n")
                sys.stdout.flush()

        async with guarded_client(guard, timeout=settings.webhook_timeout) as client:
            try:
                return await P.run_job(engine, db, options, client, on_result=show_line)
            finally:
                close = getattr(engine, "close", None)
                if close is not None:
                    result = close()
                    if asyncio.iscoroutine(result):
                        await result
    finally:
        db.close()
