"""A small progress reporter for long management commands.

    with progress(total=n, label="verify", stream=sys.stderr) as bar:
        for chunk in chunks:
            ...
            bar.advance(len(chunk))

On a terminal it redraws one line (bar, count, percent, rate, time left) at most
ten times a second; when the stream is piped or a file it prints a plain line
every `every` seconds instead (default 5), and always a final summary line.
`total` may be None (unknown) or changed later with `bar.set_total(n)`.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


def _count(n: float) -> str:
    return f"{int(n):,}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Counts work done and draws it; use through `progress(...)`."""

    def __init__(
        self,
        total: int | None,
        *,
        label: str,
        stream: TextIO | None,
        unit: str = "",
        every: float = 5.0,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.label = label
        self.stream = stream
        self.unit = f" {unit}" if unit else ""
        self.every = every
        self.clock = clock
        self.done = 0
        self.started = clock()
        self._last_draw = self.started
        self._closed = False
        if tty is None:
            isatty = getattr(stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty

    def set_total(self, total: int | None) -> None:
        """Change the expected total (e.g. once it is known)."""
        self.total = total

    def advance(self, n: int = 1) -> None:
        """Record `n` more items done; redraws when it is time to."""
        self.done += n
        if self.stream is None:
            return
        now = self.clock()
        if now - self._last_draw >= (0.1 if self.tty else self.every):
            self._last_draw = now
            self._draw(now)

    @property
    def elapsed(self) -> float:
        return max(self.clock() - self.started, 0.0)

    @property
    def rate(self) -> float:
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0

    def _numbers(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        parts = [
            f"{_count(self.done)}/{_count(self.total)}{self.unit}"
            if self.total
            else f"{_count(self.done)}{self.unit}"
        ]
        if self.total:
            parts.append(f"{min(100.0, 100.0 * self.done / self.total):5.1f}%")
        parts.append(f"{_count(rate)}/s")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"{_duration((self.total - self.done) / rate)} left")
        return "  ".join(parts)

    def _draw(self, now: float) -> None:
        numbers = self._numbers(now)
        if not self.tty:
            self.stream.write(f"{self.label}: {numbers}\n")
            self.stream.flush()
            return
        width = shutil.get_terminal_size((100, 20)).columns
        room = width - len(self.label) - len(numbers) - 6
        bar = ""
        if self.total and room >= 10:
            room = min(room, 40)
            filled = int(room * min(self.done, self.total) / self.total)
            bar = f"[{'#' * filled}{'.' * (room - filled)}] "
        self.stream.write(f"\r\x1b[K{self.label} {bar}{numbers}")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final line."""
        if self._closed or self.stream is None:
            self._closed = True
            return
        self._closed = True
        now = self.clock()
        if self.tty:
            self._draw(now)
            self.stream.write("\n")
        elapsed = max(now - self.started, 1e-9)
        self.stream.write(
            f"{self.label}: done {_count(self.done)}{self.unit} in {_duration(elapsed)}"
            f" ({_count(self.done / elapsed)}/s)\n"
        )
        self.stream.flush()


@contextmanager
def progress(
    total: int | None = None,
    *,
    label: str = "",
    stream: TextIO | None = sys.stderr,
    unit: str = "",
    every: float = 5.0,
    enabled: bool = True,
    tty: bool | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Progress]:
    """A `Progress` that draws on `stream` (nothing when `enabled` is false or stream is None)."""
    bar = Progress(
        total,
        label=label,
        stream=stream if enabled else None,
        unit=unit,
        every=every,
        tty=tty,
        clock=clock,
    )
    try:
        yield bar
    finally:
        bar.close()


def command_stream(command) -> TextIO:
    """The raw stderr behind a Django management command's OutputWrapper."""
    return getattr(command.stderr, "_out", command.stderr)
