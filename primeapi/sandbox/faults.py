"""Injected faults: a queue of (endpoint or ``*``, kind, remaining calls, seconds)."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

# Faults answered without executing the request.
REJECTING_KINDS = ("http_500", "malformed", "rate_limit", "throttled", "unavailable")
# Faults that execute the request normally, then misbehave on the way back.
AFTER_EXECUTE_KINDS = ("timeout_after_execute", "drop_after_execute")
FAULT_KINDS = ("latency", *AFTER_EXECUTE_KINDS, *REJECTING_KINDS)

DEFAULT_SECONDS: dict[str, float] = {
    "latency": 1.0,
    "timeout_after_execute": 5.0,
    # throttled: how far in the future the "retry after" timestamp lies.
    "throttled": 5.0,
}


@dataclass
class Fault:
    """One injected fault."""

    id: int
    kind: str
    endpoint: str
    remaining: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """Fault as JSON."""
        return asdict(self)


class FaultBook:
    """Pending faults, consumed first-in first-out by matching calls (not thread-safe)."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(
        self, kind: str, endpoint: str = "*", count: int = 1, seconds: float | None = None
    ) -> Fault:
        """Queue a fault for the next ``count`` calls of ``endpoint`` (``*`` = any)."""
        if kind not in FAULT_KINDS:
            expected = ", ".join(FAULT_KINDS)
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {expected}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if seconds is None:
            seconds = DEFAULT_SECONDS.get(kind, 0.0)
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        fault = Fault(next(self._ids), kind, endpoint, count, float(seconds))
        self._faults.append(fault)
        return fault

    def take(self, endpoint: str) -> Fault | None:
        """Consume one use of the first fault matching ``endpoint``."""
        for fault in self._faults:
            if fault.endpoint in ("*", endpoint):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    def as_list(self) -> list[dict[str, Any]]:
        """Pending faults as JSON."""
        return [fault.as_dict() for fault in self._faults]
