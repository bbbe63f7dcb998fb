"""The sandbox's clock: every time the sandbox reads (created_at, auto-confirm, transfer
delay, lockout windows, rate-limit decay, the Throttled retry time, the call log) comes
from one injectable clock, so tests move time forward instead of sleeping.

- ``SystemClock`` (the default): real time plus an offset that only grows; the control
  API's ``POST /_sandbox/clock {"advance": seconds}`` skips ahead, also in a sandbox
  running in another process.
- ``ManualClock``: stands still until ``advance()`` is called (in-process tests that want
  every timestamp exact).

Held connections (the ``latency`` and ``timeout_after_execute`` faults) wait for real:
they stand for what a client sees on the wire, not for Kraken's own deadlines.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """What the sandbox needs from a clock."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch."""
        ...

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (never backwards)."""
        ...


def _check(seconds: float) -> float:
    if seconds < 0:
        raise ValueError("a clock only moves forward")
    return float(seconds)


class SystemClock:
    """Real time, plus however far the clock has been advanced; never goes backwards."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._last = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            # max(): a wall clock stepped back by NTP must not un-expire a deadline.
            self._last = max(self._last, time.time() + self._offset)
            return self._last

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += _check(seconds)


class ManualClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += _check(seconds)


def to_ms(seconds: float) -> int:
    """Integer milliseconds, the sandbox's unit of time on the wire."""
    return int(seconds * 1000)
