"""Which simulated people WhatsApp addresses by LID, and who hides their number.

A share of people (`NetworkConfig.lid_fraction`) have a LID; of those, some hide
their number for good. The choice hangs on the seed and the person's number alone
(never the network's random stream), so a network drawn at `lid_fraction` 0 is
exactly the network drawn before LIDs existed, only without LIDs.
"""

from __future__ import annotations

from dataclasses import replace

from wasync.domain.models import Contact
from wasync.engines.simulator.config import NetworkConfig
from wasync.engines.simulator.hashing import derive, mix, stable_hash

# Of the people with a LID, this share hide their number (WhatsApp's phone privacy).
HIDDEN_SHARE = 0.2
_SCALE = float(1 << 64)


def _roll(config: NetworkConfig, what: str, phone: str) -> float:
    return mix(derive(config.seed, what) ^ stable_hash(phone)) / _SCALE


def has_lid(config: NetworkConfig, phone: str) -> bool:
    return config.lid_fraction > 0 and _roll(config, "lid", phone) < config.lid_fraction


def hides_number(config: NetworkConfig, phone: str) -> bool:
    return has_lid(config, phone) and _roll(config, "hidden", phone) < HIDDEN_SHARE


def with_identity(contact: Contact, config: NetworkConfig) -> Contact:
    """The contact with its LID when WhatsApp addresses them by one, else without."""
    if contact.phone is not None and has_lid(config, contact.phone):
        return contact
    return replace(contact, lid=None)
