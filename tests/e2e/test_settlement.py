"""Two people, two browsers: an operator creates a batch and requests a leg, an approver
approves it (with an authenticator code), and both watch the leg reach settled without
reloading."""

from __future__ import annotations

import threading

import pytest
from django.core.management import call_command
from django.db import connection
from playwright.sync_api import expect

from portal.settlement.models import Batch
from tests.e2e.conftest import sign_in
from tests.settlement.conftest import TRADES
from tests.staff.otp import confirmed_device, totp_code

pytestmark = pytest.mark.django_db(transaction=True)
WAIT = 20_000  # ms: the page polls every 3 s, the poller below every 0.5 s


class PollerThread(threading.Thread):
    """`manage.py prime_poll --once` in a loop, as the real process would run it."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.cycles = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                call_command("prime_poll", "--once", "--budget-per-minute", "600", stdout=None)
                self.cycles += 1
                self.stop.wait(0.5)
        except BaseException as exc:  # reported by the test
            self.failure = exc
        finally:
            connection.close()


@pytest.fixture
def poller():
    thread = PollerThread()
    thread.start()
    yield thread
    thread.stop.set()
    thread.join(30)
    assert thread.failure is None, thread.failure


def _row(page, asset: str):
    return page.locator(f'#batch-live tr[data-asset="{asset}"]')


def test_operator_and_approver_watch_a_leg_settle_without_reloading(
    new_page, live_server, operator, approver, prime_settings, poller
):
    control = prime_settings.control
    control.add_trades(TRADES)

    # The operator creates the batch.
    op = new_page()
    sign_in(op, live_server, operator)
    op.goto(f"{live_server.url}/settlement/")
    op.select_option("#batch-create select[name=asset_kind]", "currency")
    op.click("#batch-create button[type=submit]")
    op.wait_for_url(f"{live_server.url}/settlement/B_*/")
    batch = Batch.objects.get()
    expect(op.locator("[data-confirmed]")).to_have_text("Not confirmed yet")

    # Kraken confirms it; the poller notices and the operator's page follows by itself.
    control.confirm_batch(batch.prime_batch_id)
    op.evaluate("window.__sameDocument = true")
    expect(op.locator("[data-confirmed]")).to_have_text("Confirmed by Kraken", timeout=WAIT)

    # The approver opens the same batch before anything is requested.
    device = confirmed_device(approver)
    ap = new_page()
    sign_in(ap, live_server, approver, device=device)
    ap.goto(f"{live_server.url}/settlement/{batch.prime_batch_id}/")
    ap.evaluate("window.__sameDocument = true")
    expect(_row(ap, "BTC")).to_have_attribute("data-request-state", "")

    # The operator requests the BTC leg; the words sit beside the leg until the next poll.
    with op.expect_response(lambda r: "/legs/BTC/request/" in r.url) as answer:
        _row(op, "BTC").get_by_role("button", name="Request settlement").click()
    assert "data-action-message" in answer.value.text()
    assert "requested" in answer.value.text()
    expect(_row(op, "BTC")).to_have_attribute("data-request-state", "pending")
    # The next poll renders the live state: the words do not stay after the moment.
    expect(_row(op, "BTC").locator("[data-action-message]")).to_have_count(0, timeout=WAIT)
    expect(_row(op, "BTC").get_by_label("Approve incoming 1.50000000 BTC")).to_have_count(0)

    # The approver's page shows the request by polling; the approver ticks it and
    # confirms with the next authenticator code (the sign-in used this one).
    choice = _row(ap, "BTC").get_by_label("Approve incoming 1.50000000 BTC")
    expect(choice).to_be_visible(timeout=WAIT)
    choice.check()
    ap.fill("#approve-code", totp_code(device, steps_ahead=1))
    ap.get_by_role("button", name="Approve selected").click()
    expect(_row(ap, "BTC")).to_have_attribute("data-request-state", "done")
    expect(_row(ap, "BTC")).to_contain_text(f"Approved by {approver.username}")
    expect(_row(op, "BTC")).to_have_attribute("data-request-state", "done", timeout=WAIT)
    expect(_row(op, "BTC")).to_have_attribute("data-leg-status", "settling")

    # Kraken completes the transfer; both people see the leg settle without reloading.
    control.complete_pending_transfers()
    for page in (op, ap):
        expect(_row(page, "BTC")).to_have_attribute("data-leg-status", "settled", timeout=WAIT)
        expect(_row(page, "BTC")).to_have_attribute("data-request-state", "done")
        expect(_row(page, "BTC")).to_contain_text("completed")
        assert page.evaluate("window.__sameDocument") is True  # never reloaded
    assert len(control.calls("SettlePrimeSettlementBatchAsset")) == 1
    assert poller.cycles > 0
