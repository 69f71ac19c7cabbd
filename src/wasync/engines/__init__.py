"""WhatsApp engines: the port (`base`) and its implementations."""
