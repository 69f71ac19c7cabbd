"""Build an engine by name (the CLI and the server choose engines by configuration)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wasync.engines.base import Engine
from wasync.errors import ConfigError

if TYPE_CHECKING:
    from wasync.config import Settings

ENGINES = ("simulator", "neonize", "baileys")


def make_engine(
    name: str,
    *,
    seed: int = 1,
    scale: str = "tiny",
    session: str = "default",
    settings: Settings | None = None,
) -> Engine:
    if name == "neonize":
        # Real WhatsApp: the session must have been paired (`wasync pair`) or imported.
        from wasync.config import Settings
        from wasync.engines.neonize.setup import neonize_engine_for

        return neonize_engine_for(settings or Settings(), session)
    if name == "baileys":
        # Real WhatsApp through Baileys in a Node.js sidecar (`wasync engine install baileys`).
        from wasync.config import Settings
        from wasync.engines.baileys.setup import baileys_engine_for

        return baileys_engine_for(settings or Settings(), session)
    if name == "simulator":
        from wasync.engines.simulator import SCALES, Network, SimulatorEngine

        if scale not in SCALES:
            raise ConfigError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
        simulator = SimulatorEngine(Network.from_scale(scale, seed))
        if settings is not None:
            simulator.faults.history_delay = settings.simulator_history_delay
        return simulator
    raise ConfigError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
