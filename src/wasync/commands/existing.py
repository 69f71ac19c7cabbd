"""Commands that must not create anything by accident.

A command that only reads opens an existing mirror or refuses in one line (a typo in
--data-dir must not leave an empty database behind that reports zeros). A session is
used as it was made: its engine, and a simulator's seed and scale, are stored with it
(`sessions.engine_options`), so `history` after `sync --scale small` asks the same
simulated network, and asking for another one is refused instead of silently mixing
two networks in one mirror.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from wasync.config import Settings
from wasync.engines.factory import ENGINE_NAMES, NETWORK_OPTIONS, EngineFactory
from wasync.errors import ConfigError
from wasync.files import secure_data_dir
from wasync.store.db import Database, normalize_url
from wasync.store.sessions import (
    SessionNotFound,
    find_session,
    list_sessions,
    validate_session_name,
)

# What a simulator session is built with when nothing says otherwise.
DEFAULT_SEED = 1
DEFAULT_SCALE = "tiny"


def open_existing_database(settings: Settings) -> Database:
    """The mirror's database, migrated; ConfigError when there is none (nothing made)."""
    url = normalize_url(settings.resolved_database_url())
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if settings.data_dir.exists() and not settings.data_dir.is_dir():
            raise ConfigError(
                f"cannot use {settings.data_dir} as the data directory: not a directory"
            )
        if settings.database_url is None and not settings.data_dir.is_dir():
            raise ConfigError(
                f"no data directory {settings.data_dir}: nothing is mirrored there "
                "(check --data-dir, or run `wasync sync` first)"
            )
        if settings.database_url is None:
            secure_data_dir(settings.data_dir)  # it exists: only tightens its mode
        path = Path(str(parsed.database)).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"no database at {path}: nothing is mirrored there "
                "(check --data-dir or --database, or run `wasync sync` first)"
            )
    db = Database(url)
    try:
        if not db.is_mirror():
            raise ConfigError(
                "the database holds no wasync mirror (check --database, or run `wasync sync` first)"
            )
        db.migrate()
    except BaseException:
        db.close()
        raise
    return db


@dataclass(frozen=True, slots=True)
class EngineChoice:
    engine: str
    seed: int
    scale: str
    new: bool  # the session does not exist yet: it is made with these
    lid_fraction: float = 0.0
    late_mappings: bool = False

    def options(self) -> dict[str, object] | None:
        if self.engine != "simulator":
            return None
        return {key: getattr(self, key) for key in NETWORK_OPTIONS}

    def settings_for(self, settings: Settings) -> Settings:
        """`settings` with this session's simulated identities (its network's shape)."""
        return settings.model_copy(
            update={
                "simulator_lid_fraction": self.lid_fraction,
                "simulator_late_mappings": self.late_mappings,
            }
        )


def check_engine_inputs(
    settings: Settings, session: str, engine: str | None, scale: str | None
) -> None:
    """Reject a bad session name, engine or scale before anything opens or draws."""
    from wasync.engines.simulator import SCALES

    validate_session_name(session)
    if engine is not None:
        if engine not in ENGINE_NAMES:
            raise ConfigError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINE_NAMES)}")
        EngineFactory(settings).check(engine)
    if scale is not None and scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")


def choose_engine(
    db: Database,
    session: str,
    *,
    engine: str | None,
    seed: int | None,
    scale: str | None,
    may_create: bool,
    create: bool = False,
    settings: Settings | None = None,
) -> EngineChoice:
    """The engine a command runs `session` with: the stored one, else what was asked.

    A new session is made only where the command makes sessions (`may_create`), and
    once others exist only when asked (`create`): a typo in --session must not make a
    session that `wasync serve` would then start.
    """
    with db.read() as conn:
        row = find_session(conn, session)
        names = [r.name for r in list_sessions(conn)] if row is None else []
    if row is None:
        if not may_create:
            raise SessionNotFound(
                f"no session named {session!r}: run `wasync sync --session {session}` first"
                + (f" (sessions: {', '.join(names)})" if names else "")
            )
        if names and not create:
            raise SessionNotFound(
                f"no session named {session!r} (sessions: {', '.join(names)}): "
                "pass --create to make a new one"
            )
        wanted = settings or Settings()
        return EngineChoice(
            engine or "simulator",
            _or(seed, DEFAULT_SEED),
            scale or DEFAULT_SCALE,
            new=True,
            lid_fraction=wanted.simulator_lid_fraction,
            late_mappings=wanted.simulator_late_mappings,
        )
    if engine is not None and engine != row.engine:
        raise ConfigError(
            f"session {session!r} runs the {row.engine} engine, not {engine}: "
            "drop --engine, or use another --session"
        )
    if row.engine != "simulator":
        if seed is not None or scale is not None:
            raise ConfigError(
                f"--seed and --scale are for simulator sessions; {session!r} runs {row.engine}"
            )
        return EngineChoice(row.engine, DEFAULT_SEED, DEFAULT_SCALE, new=False)
    stored = row.engine_options or {}
    kept_seed = int(stored.get("seed", _or(seed, DEFAULT_SEED)))
    kept_scale = str(stored.get("scale", scale or DEFAULT_SCALE))
    for flag, asked, kept in (("--seed", seed, kept_seed), ("--scale", scale, kept_scale)):
        if asked is not None and asked != kept:
            raise ConfigError(
                f"session {session!r} was made with {flag} {kept}, not {asked}: "
                f"drop {flag}, or use another --session"
            )
    # A session made before identities were stored was drawn without LIDs.
    return EngineChoice(
        "simulator",
        kept_seed,
        kept_scale,
        new=False,
        lid_fraction=float(stored.get("lid_fraction", 0.0)),
        late_mappings=bool(stored.get("late_mappings", False)),
    )


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
