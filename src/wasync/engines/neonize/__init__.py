"""The real engine: WhatsApp through neonize (whatsmeow), imported only when used.

Nothing outside this package imports neonize, and nothing here imports it at module
level (see `loader`), so `import wasync` never loads the Go library.
"""

from wasync.engines.neonize.engine import CAPABILITIES, NeonizeEngine, NotPaired
from wasync.engines.neonize.options import HistoryDepth, NeonizeOptions
from wasync.engines.neonize.queries import NO_HISTORY_REQUESTS, UserInfo

__all__ = [
    "CAPABILITIES",
    "NO_HISTORY_REQUESTS",
    "HistoryDepth",
    "NeonizeEngine",
    "NeonizeOptions",
    "NotPaired",
    "UserInfo",
]
