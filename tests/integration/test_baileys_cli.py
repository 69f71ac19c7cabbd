"""The Baileys engine as a user meets it: listed, unavailable without Node, pairing
with no network, its keys kept private (file) or in PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.baileys_harness import requires_sidecar
from wasync.domain.models import PictureForbidden, PictureNotSet
from wasync.engines.baileys.auth import AuthStore
from wasync.engines.baileys.engine import _picture_error, media_kind, picture_id_of
from wasync.engines.baileys.sidecar import SidecarError
from wasync.engines.base import RateLimited

EXE = Path(sys.executable).parent / "wasync"


def _wasync(
    *args: str, data_dir: Path, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WASYNC_DATA_DIR": str(data_dir)}
    env.pop("WASYNC_DATABASE_URL", None)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [str(EXE), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@requires_sidecar
def test_pair_with_no_network_fails_in_one_line(tmp_path: Path, refusing_proxy: str) -> None:
    out = _wasync(
        "pair",
        "--engine",
        "baileys",
        "--session",
        "p1",
        "--proxy",
        refusing_proxy,
        data_dir=tmp_path,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "WhatsApp" in errors[0]
    assert "Traceback" not in out.stderr
    listed = _wasync("session", "list", "--json", data_dir=tmp_path)
    assert '"name": "p1"' in listed.stdout and '"paired": false' in listed.stdout


def test_without_node_the_engine_is_listed_unavailable_and_the_rest_works(tmp_path: Path) -> None:
    bare = str(tmp_path / "empty-path")
    listed = _wasync("engine", "list", "--json", data_dir=tmp_path, path=bare)
    assert listed.returncode == 0, listed.stderr
    rows = {row["engine"]: row for row in json.loads(listed.stdout)}
    assert rows["baileys"]["available"] is False
    assert "Node.js >= 20 not found" in rows["baileys"]["reason"]
    assert rows["simulator"]["available"] is True
    paired = _wasync("pair", "--engine", "baileys", data_dir=tmp_path, path=bare)
    assert paired.returncode == 1 and "Node.js >= 20 not found" in paired.stderr
    assert "Traceback" not in paired.stderr
    synced = _wasync("sync", "--engine", "simulator", "--json", data_dir=tmp_path, path=bare)
    assert synced.returncode == 0 and '"messages"' in synced.stdout


def test_a_file_key_store_is_private_and_round_trips(tmp_path: Path) -> None:
    store = AuthStore("k1", path=tmp_path / "sessions" / "k1.baileys.db")
    assert store.account() is None
    creds = json.dumps({"me": {"id": "5511900000001:3@s.whatsapp.net", "lid": "9001@lid"}})
    store.apply(
        [("creds", "", creds), ("session", "a.0", '{"x":1}'), ("session", "a.0", '{"x":2}')]
    )
    store.apply([("pre-key", "1", '"k"'), ("pre-key", "1", None)])
    assert store.load() == (creds, [("session", "a.0", '{"x":2}')])
    account = store.account()
    assert account is not None and account.jid == "5511900000001@s.whatsapp.net"
    assert account.lid == "9001@lid"
    assert (tmp_path / "sessions").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "sessions" / "k1.baileys.db").stat().st_mode & 0o777 == 0o600
    store.clear()
    assert store.account() is None
    store.close()


@pytest.mark.postgres
def test_keys_live_in_postgresql_when_the_mirror_does(tmp_path: Path, pg_schema_url: str) -> None:
    from wasync.store.db import Database

    db = Database(pg_schema_url)
    db.migrate()
    db.close()
    store = AuthStore.locate(tmp_path, pg_schema_url, "k2")
    assert not store.is_file
    store.apply([("creds", "", '{"me": {"id": "5511900000002@s.whatsapp.net"}}')])
    other = AuthStore.locate(tmp_path, pg_schema_url, "k2")  # another node
    account = other.account()
    assert account is not None and account.jid == "5511900000002@s.whatsapp.net"
    third = AuthStore.locate(tmp_path, pg_schema_url, "k3")
    assert third.account() is None
    third.close()
    store.close()
    other.close()


def test_picture_and_media_outcomes() -> None:
    url = "https://pps.whatsapp.net/v/t61.24694-24/123_456_n.jpg?ccb=1&oh=x&oe=y"
    assert picture_id_of(url) == "123_456_n"
    assert picture_id_of(url.replace("oh=x", "oh=z")) == "123_456_n"
    assert isinstance(_picture_error(SidecarError("not-authorized", 401), "j"), PictureForbidden)
    assert isinstance(_picture_error(SidecarError("item-not-found", 404), "j"), PictureNotSet)
    with pytest.raises(RateLimited):
        _picture_error(SidecarError("rate-overlimit", 429), "j")
    assert media_kind("image/webp") == "image" and media_kind("application/pdf") == "document"
