"""Which engine a session created or restored by the server runs on, and building it.

`neonize` is real WhatsApp (its keys live in the session store, see
wasync.sessions.location); `simulator` is the in-repo fake network, which `wasync
demo` and the tests use. Simulator sessions are rebuilt from their seed after a
restart, so they come back with the same network.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from wasync.config import Settings
from wasync.engines.base import Engine
from wasync.errors import ConfigError

ENGINE_NAMES = ("neonize", "baileys", "simulator")


def neonize_installed() -> bool:
    return importlib.util.find_spec("neonize") is not None


@dataclass(frozen=True, slots=True)
class SimulatorOptions:
    scale: str = "tiny"
    seed: int = 1
    live_rate: float = 0.0  # live events per second
    latency: float = 0.0  # seconds each engine request takes (makes progress visible)
    # Seconds after which a pairing simulator session counts its QR as scanned; None
    # waits for a test to call confirm_pairing().
    pair_delay: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SimulatorOptions:
        return cls(
            scale=settings.simulator_scale,
            seed=settings.simulator_seed,
            live_rate=settings.simulator_live_rate,
        )


class EngineFactory:
    def __init__(self, settings: Settings, simulator: SimulatorOptions | None = None) -> None:
        self.settings = settings
        self.simulator = simulator or SimulatorOptions.from_settings(settings)

    @property
    def default_engine(self) -> str:
        if self.settings.session_engine:
            return self.settings.session_engine
        return "neonize" if neonize_installed() else "simulator"

    def check(self, engine: str) -> str:
        if engine not in ENGINE_NAMES:
            raise ConfigError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINE_NAMES)}")
        if engine == "neonize" and not neonize_installed():
            raise ConfigError("the neonize engine is not installed: pip install neonize")
        if engine == "baileys":
            from wasync.engines.baileys.install import check

            status = check(self.settings.baileys_dir)
            if not status.available:
                raise ConfigError(f"the Baileys engine is unavailable: {status.reason}")
        return engine

    def build(self, session: str, engine: str, *, new: bool) -> Engine:
        """The engine of `session`; `new` starts pairing instead of using stored keys."""
        self.check(engine)
        if engine == "simulator":
            return self._simulator(new=new)
        if engine == "baileys":
            from wasync.engines.baileys.setup import baileys_engine_for

            return baileys_engine_for(self.settings, session, allow_pairing=new)
        from wasync.engines.neonize.setup import neonize_engine_for

        return neonize_engine_for(self.settings, session, allow_pairing=new)

    def _simulator(self, *, new: bool) -> Engine:
        from wasync.engines.simulator import SCALES, Faults, Network, SimulatorEngine

        opts = self.simulator
        if opts.scale not in SCALES:
            raise ConfigError(
                f"unknown simulator scale {opts.scale!r}: choose one of {', '.join(SCALES)}"
            )
        faults = Faults(live_rate=opts.live_rate, latency=opts.latency)
        network = Network.from_scale(opts.scale, opts.seed)
        return SimulatorEngine(network, faults, paired=not new, auto_pair=False)
