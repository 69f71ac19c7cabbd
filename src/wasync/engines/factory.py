"""Build an engine by name (the CLI and the server choose engines by configuration)."""

from __future__ import annotations

from wasync.engines.base import Engine
from wasync.errors import ConfigError

ENGINES = ("simulator",)


def make_engine(name: str, *, seed: int = 1, scale: str = "tiny") -> Engine:
    if name == "simulator":
        from wasync.engines.simulator import SCALES, Network, SimulatorEngine

        if scale not in SCALES:
            raise ConfigError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
        return SimulatorEngine(Network.from_scale(scale, seed))
    raise ConfigError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
