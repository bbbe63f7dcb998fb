"""The progress reporter: a redrawn bar on a terminal, plain lines when piped."""

from __future__ import annotations

import io

from portal.progress import progress


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_piped_output_gets_plain_periodic_lines_and_a_summary():
    stream, clock = io.StringIO(), FakeClock()
    with progress(1000, label="verify", stream=stream, unit="events", every=5, clock=clock) as bar:
        for _ in range(10):
            clock.t += 1
            bar.advance(100)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "verify: 500/1,000 events   50.0%  100/s  5s left",
        "verify: 1,000/1,000 events  100.0%  100/s",
        "verify: done 1,000 events in 10s (100/s)",
    ]
    assert "\r" not in stream.getvalue()


def test_a_terminal_gets_a_redrawn_bar():
    stream, clock = Terminal(), FakeClock()
    with progress(200, label="seed", stream=stream, clock=clock) as bar:
        clock.t += 1
        bar.advance(50)
    text = stream.getvalue()
    assert text.startswith("\r\x1b[Kseed [")
    assert "50/200" in text and " 25.0%" in text and "50/s" in text and "3s left" in text
    assert "#" in text and "." in text
    assert text.endswith("seed: done 50 in 1s (50/s)\n")


def test_an_unknown_total_shows_count_and_rate_only():
    stream, clock = io.StringIO(), FakeClock()
    with progress(None, label="export", stream=stream, every=1, clock=clock) as bar:
        clock.t += 2
        bar.advance(10)
    assert stream.getvalue().splitlines()[0] == "export: 10  5/s"


def test_disabled_progress_writes_nothing_but_still_counts():
    stream = io.StringIO()
    with progress(10, label="quiet", stream=stream, enabled=False) as bar:
        bar.advance(3)
    assert bar.done == 3
    assert stream.getvalue() == ""


def test_the_total_can_arrive_later():
    stream, clock = io.StringIO(), FakeClock()
    with progress(label="x", stream=stream, every=1, clock=clock) as bar:
        bar.set_total(4)
        clock.t += 1
        bar.advance(2)
    assert "2/4" in stream.getvalue()
