"""The Baileys engine: WhatsApp through Baileys 7 (npm) in a Node.js sidecar.

Only this package knows Node exists. It needs Node.js >= 20 and the sidecar's npm
packages (`wasync engine install baileys`); without them it is listed unavailable,
with the reason, and nothing else changes. Importing it starts no process.
"""

from wasync.engines.baileys.engine import CAPABILITIES, BaileysEngine, NotPaired
from wasync.engines.baileys.install import Availability, EngineUnavailable, check
from wasync.engines.baileys.options import BaileysOptions

__all__ = [
    "CAPABILITIES",
    "Availability",
    "BaileysEngine",
    "BaileysOptions",
    "EngineUnavailable",
    "NotPaired",
    "check",
]
