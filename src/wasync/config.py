"""Settings from the environment (WASYNC_*), with defaults that need no set-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
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
    limit_per_chat: int = Field(
        default=20, ge=0, description="Messages per chat fetched by the initial sparse sync."
    )

    def resolved_database_url(self) -> str:
        return self.database_url or sqlite_url_for(self.data_dir)
