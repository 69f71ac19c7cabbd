"""Settings from the environment (WASYNC_*), with defaults that need no set-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from wasync.store.db import sqlite_url_for


class Settings(BaseSettings):
    """Every option; each can be set as an environment variable named WASYNC_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="WASYNC_", extra="ignore")

    data_dir: Path = Field(
        default=Path("./wasync-data"),
        description="Directory for the SQLite database, sessions and media.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the mirror; default: SQLite in the data directory.",
    )
    media_store: Literal["auto", "local", "database"] = Field(
        default="auto",
        description="Where pictures and media are kept: local (files in the data directory),"
        " database (blobs every node shares) or auto (database on PostgreSQL, else local).",
    )
    limit_per_chat: int = Field(
        default=20, ge=0, description="Messages per chat fetched by the initial sparse sync."
    )
    # Running sessions: which process holds each one (README: Scaling out).
    lease_seconds: float = Field(
        default=15.0,
        ge=3,
        le=600,
        description="PostgreSQL: a session's lease; a node that stops renewing it (dead, "
        "paused, cut off) loses its sessions to the others after this many seconds.",
    )
    node_name: str | None = Field(
        default=None,
        description="This node's name in the cluster (unique among running nodes); "
        "default: the host name and process id.",
    )
    # HTTP API, live events and web UI (`wasync serve`, `wasync demo`).
    host: str = Field(default="127.0.0.1", description="Address `wasync serve` binds.")
    port: int = Field(
        default=8420, ge=0, le=65535, description="Port `wasync serve` binds (0: any free port)."
    )
    api_threads: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Threads serving the API's database reads at once; default: the CPUs "
        "(at least 2). More only add contention for Python's GIL, and latency with it.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="API key for the HTTP API; default: generated on first start and kept "
        "in <data-dir>/api-key (mode 0600).",
    )
    auth: bool = Field(
        default=True,
        description="Require the API key; may be switched off only on a loopback address.",
    )
    max_body_bytes: int = Field(
        default=2**20,
        ge=1024,
        description="Largest request body accepted, in bytes; larger is refused with 413 "
        "before it is read.",
    )
    allowed_hosts: str = Field(
        default="",
        description="Comma-separated host names accepted in the Host header when "
        "authentication is off, besides loopback names and the bound address.",
    )
    allowed_origins: str = Field(
        default="",
        description="Comma-separated origins (e.g. https://dash.example.com) whose pages may "
        "send state-changing requests and open live channels, besides the server's own.",
    )
    session_engine: str | None = Field(
        default=None,
        description="Engine of sessions created through the API: 'neonize', 'baileys' or "
        "'simulator'; default: neonize when installed, else simulator.",
    )
    baileys_dir: Path | None = Field(
        default=None,
        description="Where `wasync engine install baileys` puts the Baileys sidecar's npm "
        "packages and where the engine runs it from; default: the package's own sidecar "
        "directory when writable, else ~/.local/share/wasync/baileys.",
    )
    simulator_scale: str = Field(
        default="tiny", description="Simulator sessions: network size (tiny, small, medium, large)."
    )
    simulator_seed: int = Field(default=1, description="Simulator sessions: network seed.")
    simulator_live_rate: float = Field(
        default=0.0, ge=0, description="Simulator sessions: live events per second (0: none)."
    )
    simulator_live_limit: int | None = Field(
        default=None,
        ge=0,
        description="Simulator sessions: live traffic ends after this many events (default: "
        "never), so the network's final state is known.",
    )
    simulator_lid_fraction: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Simulator sessions: share of people WhatsApp addresses by LID (a fifth "
        "of them hide their number).",
    )
    simulator_late_mappings: bool = Field(
        default=False,
        description="Simulator sessions: a person's LID <-> number pair is told only after "
        "both forms were seen (or at the next connect).",
    )

    simulator_history_delay: float = Field(
        default=0.0,
        ge=0,
        description="Simulator: seconds before the simulated phone answers a history "
        "request (a real phone takes seconds).",
    )
    history_answer_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds the phone has to answer an on-demand history request (Baileys "
        "engine) before it counts as a timeout; an answer that comes later is still stored.",
    )
    # History on demand and gap fill (wasync/history).
    history_page_size: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="Messages asked per history request (load older, full history, gap fill).",
    )
    history_max_attempts: int = Field(
        default=8,
        ge=1,
        description="Failed tries of a history job, counted since its last page, before it "
        "fails for good (the chat's sync state keeps the error).",
    )
    history_retry_delay: float = Field(
        default=5.0,
        gt=0,
        description="Seconds before the first retry of a failed history request; doubles "
        "with every failed try (with jitter) up to history_retry_max_delay.",
    )
    history_retry_max_delay: float = Field(
        default=300.0, gt=0, description="Longest wait between two tries of a history request."
    )
    history_lease_seconds: float = Field(
        default=30.0,
        ge=3,
        description="A running history job's lease; a job whose worker died is taken over "
        "once it expires (at once when the dead worker was a process on this host).",
    )
    gap_fill: bool = Field(
        default=True,
        description="After a reconnect, page back through history to fill what the offline "
        "queue did not bring (needs an engine with on-demand history).",
    )
    gap_fill_delay: float = Field(
        default=2.0,
        ge=0,
        description="Seconds gap fill waits after a reconnect before looking for holes, so "
        "the offline replay lands first.",
    )

    # Profile pictures (wasync/avatars; README "Profile pictures").
    avatar_worker: bool = Field(
        default=True, description="Fetch profile pictures in the background (one worker a session)."
    )
    avatar_interval: float = Field(
        default=3.0, gt=0, description="Average seconds between picture requests of one session."
    )
    avatar_min_gap: float | None = Field(
        default=None, gt=0, description="Shortest gap between picture requests; default 2/3 of it."
    )
    avatar_max_gap: float | None = Field(
        default=None, gt=0, description="Longest gap the jitter may draw; default 5/3 of it."
    )
    avatar_session_intervals: dict[str, float] = Field(
        default_factory=dict,
        description='Per-session interval as JSON, e.g. {"sales": 6}; the gaps scale with it.',
    )
    avatar_refresh_ttl: float = Field(
        default=86_400, gt=0, description="Seconds before a stored picture is re-checked."
    )
    avatar_none_ttl: float = Field(
        default=7 * 86_400, gt=0, description="Seconds before a 'none' picture is re-checked."
    )
    avatar_max_bytes: int = Field(
        default=5 * 2**20, ge=1024, description="Largest picture download accepted, in bytes."
    )
    avatar_max_attempts: int = Field(
        default=5, ge=1, description="Tries of a failing picture fetch before it is marked failed."
    )
    avatar_rate_limit_pause: float = Field(
        default=60, gt=0, description="Pause after a 429 without retry-after; doubles per 429."
    )
    public_avatars: bool = Field(
        default=False, description="Serve /media/avatars/... without the API key."
    )

    # Delivery: signed webhooks and Discord (wasync/delivery; README: Webhooks).
    webhooks_file: Path | None = Field(
        default=None,
        description="TOML file of webhook endpoints, loaded at start (README: Webhooks).",
    )
    webhook_allowed_networks: str = Field(
        default="",
        description="Comma-separated networks (CIDR) webhooks may reach although they are "
        "loopback, private, link-local or metadata addresses, e.g. 10.0.0.0/8; default: none.",
    )
    webhook_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a webhook receiver has to answer in full (a deadline for the "
        "whole try, not per read).",
    )
    webhook_max_attempts: int = Field(
        default=10,
        ge=1,
        description="Tries of a webhook or Discord delivery before it is dead-lettered "
        "(events for a broker wait in its log until the broker takes them).",
    )
    webhook_retry_base: float = Field(
        default=5.0, ge=0, description="Seconds before a delivery's first retry (then doubling)."
    )
    webhook_retry_max: float = Field(
        default=300.0, ge=0, description="Longest wait between two tries of a delivery (seconds)."
    )
    webhook_concurrency: int = Field(
        default=4,
        ge=1,
        description="Deliveries in flight at once, per process (broker endpoints' pumps "
        "have as many slots again, their own).",
    )
    webhook_endpoint_concurrency: int = Field(
        default=2,
        ge=1,
        description="Deliveries to one endpoint in flight at once, per process: a slow "
        "endpoint cannot take every slot from the others.",
    )
    webhook_circuit_failures: int = Field(
        default=5,
        ge=0,
        description="Failed tries in a row after which an endpoint is left alone for a "
        "while (its deliveries wait untried); 0: never.",
    )
    webhook_circuit_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Seconds an endpoint is first left alone after failing; doubled each "
        "time it fails again on its first try back, up to 10 minutes.",
    )
    webhook_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A delivery whose worker died is taken over after this many seconds.",
    )
    webhook_poll_interval: float = Field(
        default=1.0, gt=0, description="Seconds between looks at the delivery queue when idle."
    )
    # Event streams: broker endpoints (wasync/delivery/streams; README: Event streams).
    stream_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds one publish to a broker has in all (connecting included) before "
        "its unacknowledged events are retried.",
    )
    stream_batch: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Events of one broker endpoint published per round trip (read from its "
        "log, sent, and passed together).",
    )
    stream_nats_create: bool = Field(
        default=True,
        description="Create the JetStream stream of a nats:// endpoint when no stream stores "
        "its subjects yet.",
    )
    stream_nats_duplicate_window: float = Field(
        default=120.0,
        gt=0,
        description="Duplicate window (seconds) of the JetStream streams wasync creates: a "
        "re-sent event id within it is stored once.",
    )
    stream_redis_maxlen: int = Field(
        default=1_000_000,
        ge=0,
        description="Approximate cap (XADD MAXLEN ~) of a Redis stream, unless its URL sets "
        "maxlen; 0: no cap.",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL at which receivers reach this wasync (e.g. https://wa.example.com);"
        " makes the pictureUrl of avatar events absolute.",
    )

    def resolved_database_url(self) -> str:
        return self.database_url or sqlite_url_for(self.data_dir)
