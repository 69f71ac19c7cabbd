"""One engine factory for the CLI and the server: an engine by name, for a session.

`neonize` (whatsmeow) and `baileys` (Baileys in a Node.js sidecar) are real WhatsApp
(their keys live in the session store, see wasync.sessions.location); `simulator` is
the in-repo fake network, which `wasync demo` and the tests use. Simulator sessions
are rebuilt from their seed after a restart, so they come back with the same network.
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from wasync.engines.base import Engine
from wasync.errors import ConfigError

if TYPE_CHECKING:
    from wasync.config import Settings

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
    history_delay: float = 0.0  # seconds the simulated phone takes to answer history
    live_limit: int | None = None  # live events in all, then the traffic stops
    lid_fraction: float = 0.0  # share of people addressed by LID
    late_mappings: bool = False  # LID <-> number pairs told only after both forms were seen
    # Live events on the real clock (the demo) instead of the network's virtual one.
    real_clock: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> SimulatorOptions:
        options = {
            "scale": settings.simulator_scale,
            "seed": settings.simulator_seed,
            "live_rate": settings.simulator_live_rate,
            "history_delay": settings.simulator_history_delay,
            "live_limit": settings.simulator_live_limit,
            "lid_fraction": settings.simulator_lid_fraction,
            "late_mappings": settings.simulator_late_mappings,
            **overrides,
        }
        return cls(**options)  # type: ignore[arg-type]


# What draws a simulated network: stored with a session so it gets its own back.
NETWORK_OPTIONS = ("seed", "scale", "lid_fraction", "late_mappings")


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

    def options_for(self, engine: str) -> dict[str, object] | None:
        """What a new session of `engine` stores to be rebuilt the same way later."""
        if engine != "simulator":
            return None
        return {key: getattr(self.simulator, key) for key in NETWORK_OPTIONS}

    def build(
        self,
        session: str,
        engine: str,
        *,
        new: bool = False,
        options: Mapping[str, object] | None = None,
    ) -> Engine:
        """The engine of `session`; `new` starts pairing instead of using stored keys.

        `options` are the session's stored ones (a simulator's seed and scale): they win
        over the factory's defaults, so a restored session gets its own network back.
        """
        self.check(engine)
        if engine == "simulator":
            return self._simulator(new=new, options=options or {})
        if engine == "baileys":
            # Real WhatsApp through Baileys in a Node.js sidecar (`wasync engine install`).
            from wasync.engines.baileys.setup import baileys_engine_for

            return baileys_engine_for(self.settings, session, allow_pairing=new)
        from wasync.engines.neonize.setup import neonize_engine_for

        return neonize_engine_for(self.settings, session, allow_pairing=new)

    def forget(self, session: str, engine: str) -> None:
        """Delete a session's keys (the session is being deleted): they are the account."""
        from wasync.sessions.location import session_file

        if engine == "baileys":
            from wasync.engines.baileys.setup import auth_store

            store = auth_store(self.settings, session)
            try:
                store.clear()
            finally:
                store.close()
        # neonize's key file (and a Baileys session's own file), with SQLite's -wal/-shm.
        neonize = session_file(self.settings.data_dir, session)
        baileys = neonize.with_name(f"{session}.baileys.db")
        for path in (neonize, baileys):
            for candidate in (path, *path.parent.glob(f"{path.name}-*")):
                with contextlib.suppress(FileNotFoundError):
                    candidate.unlink()

    def _simulator(self, *, new: bool, options: Mapping[str, object]) -> Engine:
        from wasync.engines.simulator import SCALES, Faults, Network, SimulatorEngine

        opts = self.simulator
        stored = {k: options[k] for k in NETWORK_OPTIONS if k in options}
        if stored:
            opts = replace(opts, **stored)  # type: ignore[arg-type]
        if opts.scale not in SCALES:
            raise ConfigError(f"unknown scale {opts.scale!r}: choose one of {', '.join(SCALES)}")
        faults = Faults(
            live_rate=opts.live_rate,
            latency=opts.latency,
            history_delay=opts.history_delay,
            live_limit=opts.live_limit,
        )
        network = Network.from_scale(
            opts.scale,
            opts.seed,
            lid_fraction=opts.lid_fraction,
            late_mappings=opts.late_mappings,
            wall_clock=time.time if opts.real_clock else None,
        )
        return SimulatorEngine(network, faults, paired=not new, auto_pair=False)


def make_engine(
    name: str,
    *,
    seed: int = 1,
    scale: str = "tiny",
    session: str = "default",
    settings: Settings | None = None,
) -> Engine:
    """A command's engine for a stored (paired) session."""
    from wasync.config import Settings

    settings = settings or Settings()
    simulator = SimulatorOptions.from_settings(settings, scale=scale, seed=seed)
    return EngineFactory(settings, simulator).build(session, name)
