"""Progress for management commands: tqdm's bar on a terminal, one summary line always."""

from __future__ import annotations

import io

from django.core.management.base import BaseCommand

from portal.commandline import command_progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def command_writing_to(stream: io.StringIO) -> BaseCommand:
    return BaseCommand(stderr=stream)


def test_piped_output_gets_no_bar_only_the_summary_line():
    stream = io.StringIO()
    with command_progress(
        command_writing_to(stream), label="verify_audit", unit="events", total=1500
    ) as bar:
        bar.advance(1000)
        bar.advance(500)
    assert bar.done == 1500
    [line] = stream.getvalue().splitlines()
    assert line.startswith("verify_audit: done 1,500 events in 00:00 (")
    assert "\r" not in stream.getvalue()


def test_a_terminal_gets_tqdms_bar_and_the_summary():
    stream = Terminal()
    with command_progress(command_writing_to(stream), label="seed", unit="events") as bar:
        bar.set_total(200)
        bar.advance(50)
    text = stream.getvalue()
    assert "\r" in text and "seed" in text and "/200" in text
    assert text.splitlines()[-1].startswith("seed: done 50 events in ")


def test_disabled_progress_writes_nothing_but_still_counts():
    stream = Terminal()
    with command_progress(
        command_writing_to(stream), label="quiet", unit="events", enabled=False
    ) as bar:
        bar.advance(3)
    assert bar.done == 3
    assert stream.getvalue() == ""
