"""Cheap, stable integer hashing for lazily generated values.

Every per-message value comes from `mix(chat_key ^ index)`: no RNG state and no
allocation, so any message can be produced on demand in O(1). `mix` is splitmix64's
finalizer, a bijection on 64-bit integers, and `unmix` inverts it: that lets the
media server turn a message id back into its index without an index table.
"""

from __future__ import annotations

import hashlib

MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB
_C1_INV = pow(_C1, -1, 1 << 64)
_C2_INV = pow(_C2, -1, 1 << 64)


def mix(x: int) -> int:
    """splitmix64: a well-spread 64-bit value from any integer (a bijection mod 2**64)."""
    x = (x + _GOLDEN) & MASK64
    x = ((x ^ (x >> 30)) * _C1) & MASK64
    x = ((x ^ (x >> 27)) * _C2) & MASK64
    return x ^ (x >> 31)


def _unxorshift(y: int, shift: int) -> int:
    x = y
    for _ in range(64 // shift + 1):
        x = y ^ (x >> shift)
    return x


def unmix(z: int) -> int:
    """The inverse of `mix`: `unmix(mix(x)) == x & MASK64`."""
    z = _unxorshift(z & MASK64, 31)
    z = (z * _C2_INV) & MASK64
    z = _unxorshift(z, 27)
    z = (z * _C1_INV) & MASK64
    z = _unxorshift(z, 30)
    return (z - _GOLDEN) & MASK64


def stable_hash(text: str) -> int:
    """A 64-bit hash of a string that, unlike `hash()`, is the same in every process."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def derive(seed: int, salt: str) -> int:
    """An independent 64-bit key for one purpose (`salt`) of one network seed."""
    return mix(mix(seed & MASK64) ^ stable_hash(salt))


def fraction(value: int) -> float:
    """Map a 64-bit hash to [0, 1)."""
    return (value >> 11) / float(1 << 53)
