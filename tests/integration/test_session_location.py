"""Where session keys live: a file per session, or PostgreSQL next to the mirror."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from wasync.config import Settings
from wasync.domain.events import SessionStatus
from wasync.engines.base import TransientEngineError
from wasync.engines.neonize import loader
from wasync.engines.neonize.setup import neonize_engine_for
from wasync.sessions.location import locate, paired_device, session_file
from wasync.store.db import Database, normalize_url
from wasync.store.sessions import ensure_session, set_status


def test_sqlite_mirror_keeps_keys_in_a_file(tmp_path: Path) -> None:
    store = locate(tmp_path, f"sqlite:///{tmp_path}/wasync.db", "work")
    assert store.path == session_file(tmp_path, "work") and store.path.is_absolute()
    assert store.neonize_name == str(tmp_path.resolve() / "sessions" / "work.db")
    assert paired_device(store) is None


@pytest.mark.postgres
async def test_postgres_mirror_keeps_keys_in_postgres(
    pg_schema_url: str, tmp_path: Path, refusing_proxy: str
) -> None:
    store = locate(tmp_path, pg_schema_url, "work")
    assert store.path is None and store.neonize_name.startswith("postgres://")
    assert "search_path=t_" in store.neonize_name

    # whatsmeow itself creates its tables in the mirror's schema (then cannot dial out).
    settings = Settings(data_dir=tmp_path, database_url=pg_schema_url)
    events = loader.module("events")
    events.event_global_loop = None
    engine = neonize_engine_for(settings, "work", connect_timeout=20, proxy=refusing_proxy)
    assert engine.client.new_device  # no stored device: must not pick another session's
    with pytest.raises(TransientEngineError, match="cannot reach WhatsApp"):
        await engine.connect()
    await engine.disconnect()
    events.event_global_loop = None

    # A device row (as pairing would leave it) is found by the session's account.
    admin = create_engine(normalize_url(pg_schema_url))
    with admin.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM whatsmeow_device")).scalar_one() == 0
        conn.execute(
            text(
                "INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key,"
                " signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details,"
                " adv_account_sig, adv_account_sig_key, adv_device_sig) VALUES (:jid, 1, :k,"
                " :k, :k, 1, :s, :k, :k, :s, :k, :s)"
            ),
            {"jid": "5511966660006:4@s.whatsapp.net", "k": bytes(32), "s": bytes(64)},
        )
    admin.dispose()
    device = paired_device(store, "5511966660006@s.whatsapp.net")
    assert device is not None and (device.jid, device.device) == (
        "5511966660006:4@s.whatsapp.net",
        4,
    )
    assert paired_device(store, "5511900000000@s.whatsapp.net") is None

    db = Database(pg_schema_url)
    db.migrate()
    with db.write() as conn:
        sid = ensure_session(conn, "work", "neonize")
        set_status(conn, sid, SessionStatus.DISCONNECTED, jid="5511966660006@s.whatsapp.net")
    db.close()
    engine = neonize_engine_for(settings, "work")
    assert engine.options.device_jid == "5511966660006:4@s.whatsapp.net"
    assert engine.client.jid.Device == 4 and not engine.client.new_device
    assert engine.own_jid == "5511966660006@s.whatsapp.net"


def test_forgetting_a_session_deletes_the_keys_of_either_engine(tmp_path: Path) -> None:
    from wasync.config import Settings
    from wasync.engines.baileys.auth import AuthStore, auth_file
    from wasync.engines.factory import EngineFactory
    from wasync.sessions.location import session_file

    settings = Settings(data_dir=tmp_path)
    neonize = session_file(tmp_path, "n")
    neonize.parent.mkdir(parents=True, exist_ok=True)
    for path in (neonize, neonize.with_name(neonize.name + "-wal")):
        path.write_bytes(b"keys")
    store = AuthStore("b", path=auth_file(tmp_path, "b"))
    store.apply([("creds", "", '{"me": {"id": "5511999990000@s.whatsapp.net"}}')])
    store.close()
    factory = EngineFactory(settings)
    factory.forget("n", "neonize")
    factory.forget("b", "baileys")
    assert not neonize.exists() and not neonize.with_name(neonize.name + "-wal").exists()
    assert not auth_file(tmp_path, "b").exists()
