"""Profile picture ground truth of the simulated network."""

from __future__ import annotations

import io
from collections import Counter

from PIL import Image

from wasync.engines.simulator import Network, PictureState


def test_picture_states_follow_the_documented_shares() -> None:
    network = Network.from_scale("small", seed=2)
    jids = [c.jid for c in network.contacts()] + [g.jid for g in network.groups()]
    counts = Counter(network.picture_state(jid) for jid in jids)
    assert 0.55 < counts[PictureState.SET] / len(jids) < 0.85
    assert counts[PictureState.NOT_SET] and counts[PictureState.FORBIDDEN]
    for jid in jids:
        picture_id = network.picture_id(jid)
        if network.picture_state(jid) is PictureState.SET:
            assert picture_id is not None and picture_id.isdigit()
        else:
            assert picture_id is None


def test_picture_state_is_deterministic_for_any_jid() -> None:
    a, b = Network.from_scale("tiny", seed=9), Network.from_scale("tiny", seed=9)
    strangers = [f"4917{n:07d}@s.whatsapp.net" for n in range(50)]
    assert [a.picture_id(j) for j in strangers] == [b.picture_id(j) for j in strangers]
    assert [a.picture_state(j) for j in strangers] == [b.picture_state(j) for j in strangers]


def test_change_picture_gives_a_new_id() -> None:
    network = Network.from_scale("tiny", seed=3)
    jids = [c.jid for c in network.contacts()]
    shown = next(j for j in jids if network.picture_state(j) is PictureState.SET)
    old = network.picture_id(shown)
    new = network.change_picture(shown)
    assert new != old and network.picture_id(shown) == new

    unset = next(
        (j for j in jids if network.picture_state(j) is PictureState.NOT_SET),
        "19990000000@s.whatsapp.net",
    )
    network.set_picture_state(unset, PictureState.NOT_SET)
    assert network.change_picture(unset) == network.picture_id(unset)

    network.remove_picture(shown)
    assert network.picture_state(shown) is PictureState.NOT_SET
    assert network.picture_id(shown) is None

    network.set_picture_state(shown, PictureState.FORBIDDEN)
    network.change_picture(shown)
    assert network.picture_state(shown) is PictureState.FORBIDDEN  # still hidden from us


def test_picture_bytes_are_real_jpegs_that_differ_by_id() -> None:
    network = Network.from_scale("tiny", seed=3)
    jid = network.contacts()[0].jid
    first = network.picture_bytes(jid, "1700000001")
    assert first == network.picture_bytes(jid, "1700000001")
    assert first != network.picture_bytes(jid, "1700000002")
    with Image.open(io.BytesIO(first)) as image:
        image.verify()
        assert image.format == "JPEG"
