"""Two people, two browsers: every leg of a batch is requested in one step before Kraken
confirms the batch, approved in one step with one authenticator code, and settles by
itself once Kraken confirms; both pages follow without reloading."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.approvals.models import ChangeRequest, RequestState
from portal.settlement.models import Batch
from tests.e2e.conftest import sign_in
from tests.e2e.test_settlement import WAIT, _row, poller  # noqa: F401 - the poller fixture
from tests.settlement.conftest import TRADES
from tests.staff.otp import confirmed_device, totp_code

pytestmark = pytest.mark.django_db(transaction=True)
ASSETS = ("BTC", "ETH", "USD")
SETTLE = "SettlePrimeSettlementBatchAsset"


def test_legs_requested_and_approved_in_one_step_settle_once_kraken_confirms(
    new_page,
    live_server,
    operator,
    approver,
    prime_settings,
    poller,  # noqa: F811
):
    control = prime_settings.control
    control.add_trades(TRADES)

    # The operator creates the batch; Kraken has not confirmed it.
    op = new_page()
    sign_in(op, live_server, operator)
    op.goto(f"{live_server.url}/settlement/")
    op.select_option("#batch-create select[name=asset_kind]", "currency")
    op.click("#batch-create button[type=submit]")
    op.wait_for_url(f"{live_server.url}/settlement/B_*/")
    batch = Batch.objects.get()
    op.evaluate("window.__sameDocument = true")
    expect(op.locator("[data-confirmed]")).to_have_text("Not confirmed yet")

    # Every settleable leg in one step: each its own request, nothing sent to Kraken.
    op.get_by_role("button", name="Request all settleable legs (3)").click()
    for asset in ASSETS:
        expect(_row(op, asset)).to_have_attribute("data-request-state", "pending")
    assert ChangeRequest.objects.filter(state=RequestState.PENDING).count() == 3
    assert control.calls(SETTLE, executed=None) == []

    # The approver sees the count in the navigation, opens the batch and approves all
    # three with one code (the sign-in used this step's code: the next one confirms).
    device = confirmed_device(approver)
    ap = new_page()
    sign_in(ap, live_server, approver, device=device)
    expect(ap.locator(".nav-count .badge")).to_have_text("3", timeout=WAIT)
    ap.goto(f"{live_server.url}/settlement/{batch.prime_batch_id}/")
    ap.evaluate("window.__sameDocument = true")
    for asset in ASSETS:
        _row(ap, asset).locator("input[data-approve-choice]").check()
    ap.fill("#approve-code", totp_code(device, steps_ahead=1))
    ap.get_by_role("button", name="Approve selected").click()

    # Approved, but held back: Kraken has not confirmed the batch.
    for page in (ap, op):
        for asset in ASSETS:
            row = _row(page, asset)
            expect(row).to_have_attribute("data-request-state", "approved", timeout=WAIT)
            expect(row).to_have_attribute("data-waiting", "true")
            expect(row).to_contain_text("will be sent when Kraken confirms the batch")
    # The timeline follows the live state on the other person's page too.
    expect(op.locator("[data-timeline]")).to_contain_text("Change approved", timeout=WAIT)
    assert control.calls(SETTLE, executed=None) == []

    # Kraken confirms: the poller sees it and sends each leg once, by itself.
    control.confirm_batch(batch.prime_batch_id)
    for page in (op, ap):
        expect(page.locator("[data-confirmed]")).to_have_text("Confirmed by Kraken", timeout=WAIT)
        for asset in ASSETS:
            row = _row(page, asset)
            expect(row).to_have_attribute("data-request-state", "done", timeout=WAIT)
            expect(row).to_have_attribute("data-leg-status", "settling")

    # Kraken completes the transfers; both see every leg settled, without a reload.
    control.complete_pending_transfers()
    for page in (op, ap):
        for asset in ASSETS:
            expect(_row(page, asset)).to_have_attribute("data-leg-status", "settled", timeout=WAIT)
        expect(page.locator("[data-timeline]")).to_contain_text("Leg sent to Kraken")
        assert page.evaluate("window.__sameDocument") is True  # never reloaded
    assert len(control.calls(SETTLE, executed=True)) == 3
    assert len(control.calls(SETTLE, executed=None)) == 3
    assert poller.cycles > 0
