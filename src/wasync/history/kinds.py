"""The job kinds of history work, their priorities, and the words users see."""

from __future__ import annotations

BACKFILL = "history.backfill"  # one chat, backwards from its oldest stored message
GAP_SCAN = "history.gapscan"  # one session, after a reconnect: which chats may have holes
GAP_FILL = "history.gapfill"  # one chat, backwards from its newest message to the watermark

KINDS = (GAP_SCAN, GAP_FILL, BACKFILL)

# Claimed first: deciding where holes are, then closing them, then older history. A
# long backfill runs in slices, so gap fill never waits behind it for long.
PRIORITY = {GAP_SCAN: 20, GAP_FILL: 10, BACKFILL: 0}

NOT_AVAILABLE = "older history is not available from this engine"
