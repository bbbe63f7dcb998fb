"""Nonce sources: strictly increasing integers per API key.

Kraken refuses a request whose nonce is not greater than the last one it
accepted for the key (``EAPI:Invalid nonce``). A source only promises that the
values it hands out for one key strictly increase; processes that share a key
must share a source (the portal plugs in one backed by its database).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["MonotonicNonce", "NonceSource"]


@runtime_checkable
class NonceSource(Protocol):
    """Anything that hands out strictly increasing nonces per API key."""

    def next_nonce(self, api_key: str) -> int:
        """Return a nonce greater than every nonce this source gave before for ``api_key``."""
        ...


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class MonotonicNonce:
    """Milliseconds since the epoch, bumped past the last value given for the key; thread-safe.

    Good for one process. If the wall clock steps back, values keep rising from
    the last one handed out instead of following the clock down.
    """

    def __init__(self, clock_ms: Callable[[], int] = _now_ms) -> None:
        self._clock_ms = clock_ms
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def next_nonce(self, api_key: str) -> int:
        """Return max(now in ms, last value for this key + 1)."""
        with self._lock:
            value = max(self._clock_ms(), self._last.get(api_key, 0) + 1)
            self._last[api_key] = value
            return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={len(self._last)})"
