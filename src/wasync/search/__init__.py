"""Message search: the indexer that keeps SQLite's index in step (store/search.py has
the index itself and the queries)."""

from __future__ import annotations

from wasync.search.indexer import SearchIndexer, catch_up, install

__all__ = ["SearchIndexer", "catch_up", "install"]
