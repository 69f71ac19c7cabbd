"""`wasync history` as a user drives it: JSON summaries, resumable pages, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wasync.cli import app
from wasync.engines.simulator import Network

runner = CliRunner()
SEED = 3


def _chat() -> tuple[str, int]:
    net = Network.from_scale("tiny", SEED)
    chat = max(net.chat_jids(), key=net.message_count)
    return chat, net.message_count(chat)


def _json(args: list[str], data_dir: Path) -> dict[str, object]:
    result = runner.invoke(app, [*args, "--seed", str(SEED), "--data-dir", str(data_dir), "--json"])
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.stdout)
    return out


def test_pages_then_full_history_then_nothing_left(tmp_path: Path) -> None:
    chat, total = _chat()
    _json(["sync", "--limit-per-chat", "5"], tmp_path)
    older = _json(["history", "--chat", chat, "--pages", "2", "--page-size", "7"], tmp_path)
    assert older["status"] == "done" and older["pages"] == 2 and older["messages"] == 14
    assert older["storedMessages"] == 5 + 14 and older["fullySynced"] is False
    full = _json(["history", "--chat", chat, "--full", "--page-size", "7"], tmp_path)
    assert full["status"] == "done" and full["fullySynced"] is True
    assert full["storedMessages"] == total and full["messages"] == total - 19
    assert full["jobId"] != older["jobId"]
    again = _json(["history", "--chat", chat, "--full"], tmp_path)
    assert again["status"] == "fully_synced" and again["jobId"] is None
    stats = json.loads(runner.invoke(app, ["stats", "--data-dir", str(tmp_path), "--json"]).stdout)
    assert stats["chats_with_errors"] == 0


def test_a_phone_number_names_the_chat_too(tmp_path: Path) -> None:
    chat, _ = _chat()
    _json(["sync"], tmp_path)
    out = _json(["history", "--chat", "+" + chat.split("@")[0]], tmp_path)
    assert out["chat"] == chat and out["status"] in ("done", "fully_synced")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chat", "X", "--pages", "2", "--full"], "choose --pages N or --full, not both"),
        (["--chat", "not a jid"], "not a phone number"),
        (["--chat", "12345678@s.whatsapp.net"], "run `wasync sync` first"),
        (["--chat", "12345678@s.whatsapp.net", "--session", "../x"], "invalid session name"),
        (["--chat", "12345678@s.whatsapp.net", "--scale", "huge"], "unknown scale"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["history", *args, "--data-dir", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output + result.stderr
