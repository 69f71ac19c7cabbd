"""A deterministic, seeded fake WhatsApp network behind the Engine port.

`Network` is the ground truth (contacts, groups, chats, lazily generated messages,
pictures, live traffic); `SimulatorEngine` serves it through the Engine protocol with
`Faults` injected; `MediaServer` serves its picture and media URLs over real HTTP.
"""

from wasync.engines.simulator.config import SCALES, NetworkConfig
from wasync.engines.simulator.delivery import EngineStats
from wasync.engines.simulator.engine import SimulatorEngine
from wasync.engines.simulator.faults import Faults
from wasync.engines.simulator.network import Network
from wasync.engines.simulator.pictures import PictureState
from wasync.engines.simulator.server import MediaServer, PictureDownloads, RemoteMediaServer

__all__ = [
    "SCALES",
    "EngineStats",
    "Faults",
    "MediaServer",
    "Network",
    "NetworkConfig",
    "PictureDownloads",
    "PictureState",
    "RemoteMediaServer",
    "SimulatorEngine",
]
