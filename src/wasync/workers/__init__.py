"""Background workers that consume the durable jobs queue."""
