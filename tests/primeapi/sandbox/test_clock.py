"""The sandbox's injectable clock: tests move time forward instead of sleeping."""

from __future__ import annotations

import pytest

from primeapi.sandbox import SandboxControlError, SandboxServer
from primeapi.sandbox.clock import ManualClock, SystemClock
from tests.primeapi.sandbox.conftest import BUY_BTC


def test_a_manual_clock_moves_only_when_advanced():
    clock = ManualClock(start=1_000.0)
    assert clock.time() == clock.time() == 1_000.0
    clock.advance(2.5)
    assert clock.time() == 1_002.5
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_the_system_clock_follows_real_time_plus_what_was_skipped():
    clock = SystemClock()
    before = clock.time()
    clock.advance(3600)
    assert clock.time() >= before + 3600
    with pytest.raises(ValueError):
        clock.advance(-0.1)


def test_the_control_api_reads_and_advances_the_clock(sandbox: SandboxServer):
    now = sandbox.control.clock()
    assert sandbox.control.advance_clock(90) == now + 90_000
    assert sandbox.control.clock() == now + 90_000


@pytest.mark.parametrize("body", [{"advance": -1}, {"advance": "soon"}, {}, {"advance": 1, "x": 2}])
def test_the_clock_refuses_to_go_back_or_a_bad_body(sandbox: SandboxServer, body):
    with pytest.raises(SandboxControlError) as refused:
        sandbox.control._request("POST", "clock", body)
    assert refused.value.status == 400


def test_calls_and_batches_are_stamped_with_the_sandbox_clock(sandbox: SandboxServer, admin):
    sandbox.control.advance_clock(86_400)
    now = sandbox.control.clock()
    sandbox.control.add_trades([BUY_BTC])
    batch = admin.result("CreatePrimeSettlementBatch")["batch"]
    assert batch["attributes"]["created_at"] == now
    [call] = sandbox.control.calls("CreatePrimeSettlementBatch")
    assert call["time_ms"] == now
