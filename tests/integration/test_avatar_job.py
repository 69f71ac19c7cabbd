"""The one-shot picture job on the simulator: what it posts to a local Discord, what it
remembers, and its exit codes for each failure."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from wasync.cli import app
from wasync.commands import avatar_job as command
from wasync.delivery import picture_job as P
from wasync.delivery.http import guarded_client
from wasync.delivery.ssrf import Guard, parse_networks
from wasync.engines.simulator import Faults, Network, PictureState, SimulatorEngine
from wasync.store.db import Database

from .delivery_servers import DiscordServer, running

SEED = 4
runner = CliRunner()


def phones_by_state(net: Network) -> dict[PictureState, list[str]]:
    """Numbers whose (deterministic) picture state is known from the ground truth."""
    found: dict[PictureState, list[str]] = {s: [] for s in PictureState}
    n = 0
    while len(found[PictureState.SET]) < 3 or not all(found.values()):
        phone = f"55119{n:08d}"
        found[net.picture_state(f"{phone}@s.whatsapp.net")].append(phone)
        n += 1
    return {state: phones[:3] for state, phones in found.items()}


@pytest.fixture
def discord_server() -> Iterator[DiscordServer]:
    with running(DiscordServer()) as server:
        yield server


async def run(
    net: Network,
    db: Database,
    url: str,
    phones: list[str],
    *,
    no_picture: str = "skip",
    engine: SimulatorEngine | None = None,
) -> P.JobReport:
    engine = engine or SimulatorEngine(net)
    jids = [(p, f"{p}@s.whatsapp.net") for p in phones]
    options = P.JobOptions("default", jids, url, no_picture, 5.0, retry_base=0.01)
    guard = Guard(parse_networks("127.0.0.0/8"))
    try:
        async with guarded_client(guard, timeout=5.0) as client:
            return await P.run_job(engine, db, options, client)
    finally:
        await engine.close()


async def test_each_changed_picture_is_posted_once(
    db: Database, discord_server: DiscordServer
) -> None:
    net = Network.from_scale("tiny", SEED)
    states = phones_by_state(net)
    with_picture = states[PictureState.SET]
    phones = [*with_picture, states[PictureState.NOT_SET][0], states[PictureState.FORBIDDEN][0]]
    url = discord_server.url()

    first = await run(net, db, url, phones)
    assert first.exit_code == P.EXIT_OK, first.reason
    assert [r.outcome for r in first.results] == ["posted"] * 3 + ["no-picture", "hidden"]
    posted = {p.payload["embeds"][0]["fields"][1]["value"]: p for p in discord_server.posts}
    assert set(posted) == {f"+{p}" for p in with_picture}
    for phone in with_picture:
        jid = f"{phone}@s.whatsapp.net"
        picture_id = net.picture_id(jid)
        assert picture_id is not None
        _, _, data = posted[f"+{phone}"].files["files[0]"]
        assert data == net.picture_bytes(jid, picture_id)  # the picture WhatsApp shows

    second = await run(net, db, url, phones)
    assert second.exit_code == P.EXIT_OK
    assert [r.outcome for r in second.results][:3] == ["unchanged"] * 3
    assert len(discord_server.posts) == 3  # nothing posted again

    changed = f"{with_picture[1]}@s.whatsapp.net"
    new_id = net.change_picture(changed)
    third = await run(net, db, url, phones)
    assert [r.outcome for r in third.results][:3] == ["unchanged", "posted", "unchanged"]
    assert third.results[1].picture_id == new_id
    (latest,) = discord_server.posts[3:]
    assert latest.files["files[0]"][2] == net.picture_bytes(changed, new_id)

    # Reporting numbers without a picture as a text message: once, not on every run.
    fourth = await run(net, db, url, phones, no_picture="post")
    assert [r.detail for r in fourth.results[3:]] == ["posted a text message"] * 2
    texts = [p.payload["content"] for p in discord_server.posts[4:]]
    assert texts == [
        f"+{phones[3]} has no profile picture",
        f"+{phones[4]} hides their profile picture from this account",
    ]
    fifth = await run(net, db, url, phones, no_picture="post")
    assert fifth.exit_code == P.EXIT_OK and len(discord_server.posts) == 6


async def test_not_paired_and_no_network_have_their_exit_codes(
    db: Database, discord_server: DiscordServer
) -> None:
    net = Network.from_scale("tiny", SEED)
    phones = phones_by_state(net)[PictureState.SET][:1]
    unpaired = SimulatorEngine(net, paired=False, auto_pair=False)
    report = await run(net, db, discord_server.url(), phones, engine=unpaired)
    assert report.exit_code == P.EXIT_NOT_PAIRED
    assert "wasync pair --session default" in report.reason

    offline = SimulatorEngine(net, Faults(unreachable=True))
    report = await run(net, db, discord_server.url(), phones, engine=offline)
    assert report.exit_code == P.EXIT_NO_NETWORK and "cannot reach WhatsApp" in report.reason

    # WhatsApp answers, but Discord cannot be reached at all: no network either.
    report = await run(net, db, "http://127.0.0.1:9/api/webhooks/1/x", phones)
    assert report.exit_code == P.EXIT_NO_NETWORK and "could not reach" in report.reason
    assert discord_server.posts == []


async def test_some_numbers_failing_is_a_partial_failure(db: Database) -> None:
    net = Network.from_scale("tiny", SEED)
    phones = phones_by_state(net)[PictureState.SET]
    with running(DiscordServer(refuse_next=1)) as server:
        report = await run(net, db, server.url(), phones)
        assert len(server.posts) == 2
    assert report.exit_code == P.EXIT_PARTIAL
    assert [r.outcome for r in report.results] == ["failed", "posted", "posted"]
    assert "1 of 3 numbers failed" in report.reason and "Invalid Form Body" in report.reason
    # The failed one is not remembered as posted: the next run tries it again.
    with running(DiscordServer()) as server:
        again = await run(net, db, server.url().replace("tok-en_XYZ", "rotated"), phones)
    assert [r.outcome for r in again.results] == ["posted", "unchanged", "unchanged"]


def test_every_number_failing_says_so() -> None:
    refused = [P.NumberResult(p, f"{p}@s.whatsapp.net", "failed", detail="HTTP 400") for p in "12"]
    code, reason = P.summarize(refused)
    assert code == P.EXIT_PARTIAL and reason.startswith("failure: all 2 numbers failed")


# The command line, as a container job runs it.


def cli_env(tmp_path: Path, url: str, phones: list[str]) -> dict[str, str]:
    return {
        "WASYNC_DATA_DIR": str(tmp_path),
        "WASYNC_ENGINE": "simulator",
        "WASYNC_SIMULATOR_SEED": str(SEED),
        "WASYNC_PHONES": ",".join(phones),
        "WASYNC_DISCORD_WEBHOOK_URL": url,
        "WASYNC_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    }


def test_the_command_needs_no_arguments_in_a_container(
    tmp_path: Path, discord_server: DiscordServer
) -> None:
    phones = phones_by_state(Network.from_scale("tiny", SEED))[PictureState.SET]
    env = cli_env(tmp_path, discord_server.url(), phones)
    first = runner.invoke(app, ["avatar-job"], env=env)
    assert first.exit_code == 0, first.stderr
    assert first.stdout.count(": posted (picture ") == 3
    assert "done: 3 posted, 0 unchanged, 0 without a picture" in first.stdout
    second = runner.invoke(app, ["avatar-job", "--json"], env=env)
    assert second.exit_code == 0
    summary = json.loads(second.stdout)
    assert [n["outcome"] for n in summary["numbers"]] == ["unchanged"] * 3
    assert len(discord_server.posts) == 3


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--phone", "12"], 2, "bad configuration"),
        (["--discord-webhook", "http://10.0.0.7/api/webhooks/1/x"], 2, "private address"),
        (["--no-picture", "maybe"], 2, "'skip' or 'post'"),
        (["--engine", "nope"], 2, "unknown engine 'nope'"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    tmp_path: Path, discord_server: DiscordServer, args: list[str], code: int, words: str
) -> None:
    env = cli_env(tmp_path, discord_server.url(), ["5511900000000"])
    result = runner.invoke(app, ["avatar-job", *args], env=env)
    assert result.exit_code == code
    assert words in result.stderr and len(result.stderr.strip().splitlines()) <= 2
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("engine_kwargs", "code", "words"),
    [
        ({"paired": False, "auto_pair": False}, 3, "not paired"),
        ({"faults": Faults(unreachable=True)}, 4, "no network"),
    ],
)
def test_failures_exit_with_their_codes(
    tmp_path: Path,
    discord_server: DiscordServer,
    monkeypatch: pytest.MonkeyPatch,
    engine_kwargs: dict[str, object],
    code: int,
    words: str,
) -> None:
    net = Network.from_scale("tiny", SEED)

    def make_engine(name: str, **_: object) -> SimulatorEngine:
        return SimulatorEngine(net, **engine_kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(command, "make_engine", make_engine)
    env = cli_env(tmp_path, discord_server.url(), ["5511900000000"])
    result = runner.invoke(app, ["avatar-job"], env=env)
    assert result.exit_code == code
    assert words in result.stderr and "Traceback" not in result.stderr


def test_a_discord_host_that_does_not_resolve_is_no_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # For a scheduled job a name that does not resolve is the network's fault. The
    # resolver is told to fail, so no query leaves the machine.
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "discord.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    env = cli_env(tmp_path, "https://discord.invalid/api/webhooks/1/x", ["5511900000000"])
    result = runner.invoke(app, ["avatar-job"], env=env)
    assert result.exit_code == P.EXIT_NO_NETWORK
    assert "cannot resolve host 'discord.invalid'" in result.stderr


def test_a_neonize_session_never_paired_is_exit_3_without_the_network(
    tmp_path: Path, discord_server: DiscordServer
) -> None:
    env = {**cli_env(tmp_path, discord_server.url(), ["5511900000000"]), "WASYNC_ENGINE": "neonize"}
    result = runner.invoke(app, ["avatar-job"], env=env)
    assert result.exit_code == P.EXIT_NOT_PAIRED, result.stderr
    assert "not paired" in result.stderr and "wasync pair --session default" in result.stderr


def test_numbers_are_taken_as_people_write_them(
    tmp_path: Path, discord_server: DiscordServer
) -> None:
    digits = phones_by_state(Network.from_scale("tiny", SEED))[PictureState.SET][:2]
    spaced = [f"+{d[:2]} {d[2:4]} {d[4:-4]}-{d[-4:]}" for d in digits]  # "+55 11 9999-0001"
    env = {**cli_env(tmp_path, discord_server.url(), []), "WASYNC_PHONES": ", ".join(spaced)}
    by_env = runner.invoke(app, ["avatar-job", "--json"], env=env)
    assert by_env.exit_code == 0, by_env.stderr
    assert [n["jid"] for n in json.loads(by_env.stdout)["numbers"]] == [
        f"{d}@s.whatsapp.net" for d in digits
    ]
    by_option = runner.invoke(app, ["avatar-job", "--json", "--phone", spaced[0]], env=env)
    assert by_option.exit_code == 0, by_option.stderr
    assert json.loads(by_option.stdout)["numbers"][0]["outcome"] == "unchanged"


def test_a_reason_is_printed_as_it_is(
    tmp_path: Path, discord_server: DiscordServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A receiver's words end up in the reason; brackets in them are no markup.
    async def run_job(*_: object, **__: object) -> P.JobReport:
        return P.JobReport(P.EXIT_PARTIAL, "partial failure: HTTP 400 bad [/oops] [bold]thing")

    monkeypatch.setattr(P, "run_job", run_job)
    env = cli_env(tmp_path, discord_server.url(), ["5511900000000"])
    result = runner.invoke(app, ["avatar-job"], env=env)
    assert result.exit_code == P.EXIT_PARTIAL
    assert "HTTP 400 bad [/oops] [bold]thing" in result.stderr
