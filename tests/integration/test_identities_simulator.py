"""Done means: with half the people addressed by LID and their pairs told late, the
mirror equals the network person by person after initial sync, live traffic, an outage
and full history, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasync.avatars import AvatarService, records
from wasync.avatars import install as install_avatars
from wasync.config import Settings
from wasync.engines.simulator import Faults, Network, NetworkConfig, SimulatorEngine
from wasync.engines.simulator.identities import hides_number
from wasync.jobs import queries as queue
from wasync.runtime import Runtime
from wasync.store.db import Database

from ..waiting import eventually
from .avatars_harness import fast_config
from .mirror import assert_people_mirrored
from .test_history_support import running


def lid_network(seed: int, *, late: bool = True) -> Network:
    return Network(
        NetworkConfig(
            seed=seed,
            contacts=30,
            groups=6,
            individual_chats=20,
            messages=1_500,
            lid_fraction=0.5,
            late_mappings=late,
        )
    )


def test_the_network_names_people_by_lid_and_some_hide_their_number() -> None:
    net = lid_network(seed=5)
    with_lid = [c for c in net.contacts() if c.lid]
    hidden = [c for c in with_lid if hides_number(net.config, c.phone or "")]
    assert 0 < len(with_lid) < len(net.contacts())
    assert hidden and all(net.person(c.jid).phone is None for c in hidden)  # type: ignore[union-attr]
    # At lid_fraction 0 the network is the same draw, with no LIDs.
    plain = Network(lid_network(seed=5).config.replace(lid_fraction=0.0))
    assert [c.jid for c in plain.contacts()] == [c.jid for c in net.contacts()]
    assert all(c.lid is None for c in plain.contacts())
    # A group member known by LID writes to us directly for the first time.
    before = set(net.chat_jids())
    net.live_events(300)
    members = {p.jid for g in net.groups() for p in g.participants}
    first = [j for j in set(net.chat_jids()) - before if j in members]
    assert first and all(net.canonical(j).endswith("@lid") for j in first)


@pytest.mark.parametrize("seed", [7, 8, 11])
@pytest.mark.parametrize("late", [True, False], ids=["late-mappings", "mappings-first"])
async def test_the_mirror_equals_the_network_person_by_person(
    db: Database, late: bool, seed: int, tmp_path: Path
) -> None:
    net = lid_network(seed=seed, late=late)
    engine = SimulatorEngine(net, Faults(offline_retention=60))
    settings = Settings(limit_per_chat=10, data_dir=tmp_path)
    avatars: list[AvatarService] = []

    def with_avatars(runtime: Runtime) -> None:
        avatars.append(install_avatars(runtime, fast_config(0.002)))

    async with running(
        db, engine, limit_per_chat=10, settings=settings, before_start=with_avatars
    ) as h:
        await engine.push_live(200)
        await h.settle(engine)

        await engine.drop_connection()
        await engine.push_live(300)  # more than the server keeps: gaps to fill
        await h.reconnect(engine)
        await engine.push_live(100)
        await h.settle(engine)

        # Full history of every chat, asked by whichever form the mirror keeps.
        for jid in net.chat_jids():
            await h.service.request("default", net.canonical(jid), full=True)
        await h.settle(engine)
        assert engine.stats.events_lost > 0
        assert_people_mirrored(db, h.session_id, net)

        # Pictures: every person checked, none twice (no picture changed meanwhile).
        def checked() -> bool:
            with db.read() as conn:
                return queue.pending_count(conn, "avatar", h.session_id) == 0

        await eventually(checked, 60)
        assert engine.pictures_asked
        twice = {jid: n for jid, n in engine.pictures_asked.items() if n > 1}
        assert not twice, f"pictures fetched more than once per person: {twice}"
        with db.read() as conn:
            unchecked = records.never_checked(conn, h.session_id)
        assert unchecked == []  # every person and group was checked


async def test_duplicates_reordering_and_a_lossy_outage_still_mirror_person_by_person(
    db: Database,
) -> None:
    """Mappings told late may arrive twice, out of order, or be lost with the offline
    queue: they are told again at every connect, and the mirror still converges."""
    net = lid_network(seed=12)
    faults = Faults(offline_retention=40, duplicate_rate=0.2, reorder_window=6)
    engine = SimulatorEngine(net, faults)
    async with running(db, engine, limit_per_chat=10) as h:
        await engine.push_live(150)
        await h.settle(engine)
        for _ in range(2):
            await engine.drop_connection()
            await engine.push_live(200)
            await h.reconnect(engine)
            await engine.push_live(50)
            await h.settle(engine)
        for jid in net.chat_jids():
            await h.service.request("default", net.canonical(jid), full=True)
        await h.settle(engine)
        assert engine.stats.events_lost > 0 and engine.stats.duplicates_delivered > 0
        assert_people_mirrored(db, h.session_id, net)
