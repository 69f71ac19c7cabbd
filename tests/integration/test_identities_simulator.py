"""Done means: with half the people addressed by LID and their pairs told late, the
mirror equals the network person by person after initial sync, live traffic, an outage
and full history, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from wasync.engines.simulator import Faults, Network, NetworkConfig, SimulatorEngine
from wasync.engines.simulator.identities import hides_number
from wasync.store.db import Database

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


@pytest.mark.parametrize("seed", [7, 8, 11])
@pytest.mark.parametrize("late", [True, False], ids=["late-mappings", "mappings-first"])
async def test_the_mirror_equals_the_network_person_by_person(
    db: Database, late: bool, seed: int
) -> None:
    net = lid_network(seed=seed, late=late)
    engine = SimulatorEngine(net, Faults(offline_retention=60))
    async with running(db, engine, limit_per_chat=10) as h:
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
