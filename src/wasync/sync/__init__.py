"""Turning engine events into committed rows: batching, initial sync, live ingestion."""
