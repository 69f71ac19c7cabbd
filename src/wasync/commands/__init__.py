"""CLI command groups registered by `wasync.cli` (kept apart to keep cli.py small)."""
