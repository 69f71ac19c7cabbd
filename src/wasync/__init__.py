"""wasync: mirror WhatsApp accounts into your own SQL database and keep it live."""

__version__ = "0.1.0"
