"""Compact JSON, fast: orjson where it can, the standard library where it cannot.

Every event recorded for an endpoint is serialised on the ingestion path (its
envelope; a webhook's job payload too), and the standard encoder was a sixth of what
a subscribed endpoint costs ingestion. orjson writes the same compact UTF-8 in a
twentieth of the time (a small float's exponent loses its leading zero, 1.5e-7 for
1.5e-07; NaN and infinities, which JSON has no words for, become null). It refuses
what it cannot write exactly (integers beyond 64 bits, keys that are not strings,
lone surrogates): those go through `json` with non-ASCII escaped, so that a lone
surrogate becomes an escape, not bytes that no UTF-8 reader (nor a PostgreSQL text
column) accepts.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """`value` as compact JSON in UTF-8 (no spaces, non-ASCII written as it is)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys).encode("ascii")
