"""Error types with messages meant for people.

Every error wasync raises on purpose derives from `WasyncError`; driver and library
exceptions are wrapped at the boundary where they occur, so callers (CLI, API) can
show `str(error)` without a traceback.
"""


class WasyncError(Exception):
    """Base of all errors wasync raises on purpose; `str()` is a human sentence."""


class DomainError(WasyncError, ValueError):
    """Input that breaks a domain rule (a malformed JID, an impossible phone number)."""


class InvalidJID(DomainError):
    pass


class InvalidPhoneNumber(DomainError):
    pass


class StoreError(WasyncError):
    """The database refused or failed an operation."""


class ConfigError(WasyncError):
    """A setting is missing or malformed."""


class NotFound(WasyncError):
    """Something asked for does not exist (the API answers 404)."""


class Conflict(WasyncError):
    """The request clashes with the current state, e.g. a sync already running (409)."""
