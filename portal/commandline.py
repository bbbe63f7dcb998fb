"""Progress for long management commands: tqdm's bar on a terminal, one summary line always.

    with command_progress(self, label="verify_audit", unit="events", enabled=show) as bar:
        verify_chain(on_progress=bar.advance, on_total=bar.set_total)

On a terminal tqdm redraws one line (count, percent, rate, time left); piped or
redirected output (cron, CI, a log file) gets no bar, only the final line
``verify_audit: done 1,234 events in 00:02 (617/s)``. Nothing at all when not enabled.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn, TextIO

from django.core.management.base import BaseCommand
from tqdm import tqdm


class CommandProgress:
    """Counts work done and feeds the bar; use through `command_progress(...)`."""

    def __init__(self, bar: tqdm[NoReturn]) -> None:
        self.bar = bar
        self.done = 0

    def advance(self, n: int = 1) -> None:
        """Record `n` more items done."""
        self.done += n
        self.bar.update(n)

    def set_total(self, total: int | None) -> None:
        """Change the expected total (e.g. once it is known)."""
        self.bar.total = total
        self.bar.refresh()


def command_stream(command: BaseCommand) -> TextIO:
    """The raw stderr behind a management command's OutputWrapper (tqdm draws with \\r)."""
    # OutputWrapper is a TextIOBase proxy around the real stream it was given.
    stream: TextIO = command.stderr._out  # type: ignore[assignment]
    return stream


@contextmanager
def command_progress(
    command: BaseCommand,
    *,
    label: str,
    unit: str,
    total: int | None = None,
    enabled: bool = True,
) -> Iterator[CommandProgress]:
    """A progress bar on the command's stderr, then a summary line (nothing if not enabled)."""
    stream = command_stream(command)
    started = time.monotonic()
    # disable=None: tqdm draws only on a terminal.
    bar = tqdm(
        total=total,
        desc=label,
        unit=f" {unit}",
        file=stream,
        disable=None if enabled else True,
        leave=False,
        dynamic_ncols=True,
    )
    progress = CommandProgress(bar)
    try:
        yield progress
    finally:
        bar.close()
        if enabled:
            elapsed = time.monotonic() - started
            rate = progress.done / elapsed if elapsed > 0 else 0.0
            stream.write(
                f"{label}: done {progress.done:,} {unit} in {tqdm.format_interval(elapsed)}"
                f" ({rate:,.0f}/s)\n"
            )
            stream.flush()
