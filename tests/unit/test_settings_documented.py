"""Every setting is documented: its environment variable appears in the README."""

from __future__ import annotations

from pathlib import Path

from wasync.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_has_its_variable_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    prefix = str(Settings.model_config.get("env_prefix", ""))
    missing = [
        f"{prefix}{name}".upper()
        for name in Settings.model_fields
        if f"`{prefix}{name}`".upper() not in text.upper()
    ]
    assert missing == [], f"settings without a line in README.md: {missing}"
