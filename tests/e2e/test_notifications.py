"""An Operator asks for a change; the Approver gets the email (a real SMTP server), follows
its link, approves; the Operator's notifications page shows the outcome: for a settlement
leg, and for a role escalation.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.notifications.delivery import deliver_due
from tests.conftest import PASSWORD
from tests.e2e.conftest import enter_code, sign_in
from tests.e2e.test_approvals_users_keys import unused_code
from tests.notifications.receivers import SmtpServer
from tests.staff.otp import confirmed_device

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_prime_clients():
    from portal.connection import door

    door.forget_clients()
    yield
    door.forget_clients()


@pytest.fixture
def smtp(settings):
    server = SmtpServer()
    server.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.NOTIFY_KICK_WORKER = False
    yield server
    server.stop()


def _link(message) -> str:
    text = message.get_content()
    return re.search(r"Open it in the portal: (\S+)", text).group(1)


def _the_approver_is_emailed(smtp, live_server) -> str:
    """The worker's delivery job emails the Approver; returns the link in the email."""
    assert deliver_due().sent == 1
    [mail] = smtp.box.messages
    assert mail["To"] == "approver@example.test"
    assert str(mail["Subject"]).strip().startswith("[Prime Ops] Waiting for your vote")
    link = _link(mail)
    assert re.fullmatch(rf"{re.escape(live_server.url)}/approvals/\d+/", link)
    return link


def _the_approver_follows_it_and_approves(new_page, approver, link: str) -> None:
    """Signing in first (password, then a code), then approving with the next code."""
    device = confirmed_device(approver)
    ap = new_page()
    ap.goto(link)
    ap.fill("input[name=username]", approver.get_username())
    ap.fill("input[name=password]", PASSWORD)
    ap.click("button[type=submit]")
    enter_code(ap, device)
    ap.wait_for_url(link)
    ap.fill("#change-panel input[name=code]", unused_code(device))
    ap.click("#change-panel button:has-text('Approve')")
    expect(ap.locator("#change-panel .badge").first).to_have_text(re.compile("Done|Approved"))


def _the_operator_sees_the_outcome(op, live_server, link: str) -> None:
    """The Operator's notifications page shows the outcome and leads back to the request."""
    deliver_due()
    op.click("nav >> text=Notifications")
    op.wait_for_url(f"{live_server.url}/notifications/")
    row = op.locator("#notifications tr.notification").first
    expect(row).to_contain_text("Your request was approved")
    row.locator("a").click()
    op.wait_for_url(link)


def test_a_leg_request_emails_the_approver_who_approves_and_the_operator_is_told(
    new_page, live_server, operator, approver, prime_settings, settings, smtp
):
    from portal.actors import SystemActor
    from portal.settlement import services as settlement
    from tests.e2e.test_settlement import _row
    from tests.settlement.conftest import TRADES

    settings.PORTAL_BASE_URL = live_server.url
    settings.APPROVALS_STEP_UP_WINDOW_SECONDS = 0
    approver.email = "approver@example.test"
    approver.save()
    prime_settings.control.add_trades(TRADES)
    batch = settlement.batch_create(asset_kind="currency", actor=operator)
    prime_settings.control.confirm_batch(batch.prime_batch_id)
    settlement.batch_refresh(prime_batch_id=batch.prime_batch_id, actor=SystemActor.POLLER)
    asset = batch.legs.order_by("asset").first().asset

    # The Operator requests one leg on the batch page.
    op = new_page()
    sign_in(op, live_server, operator)
    op.wait_for_url(f"{live_server.url}/")
    op.goto(f"{live_server.url}/settlement/{batch.prime_batch_id}/")
    _row(op, asset).get_by_role("button", name="Request settlement").click()
    expect(_row(op, asset)).to_have_attribute("data-request-state", "pending")

    link = _the_approver_is_emailed(smtp, live_server)

    _the_approver_follows_it_and_approves(new_page, approver, link)
    settle = prime_settings.control.calls("SettlePrimeSettlementBatchAsset", executed=True)
    assert len(settle) == 1

    _the_operator_sees_the_outcome(op, live_server, link)


def test_the_approver_follows_the_email_and_the_operator_sees_the_outcome(
    new_page, live_server, operator, approver, prime_settings, settings, smtp
):
    from portal.users.services import prime_user_create

    settings.PORTAL_BASE_URL = live_server.url
    settings.APPROVALS_STEP_UP_WINDOW_SECONDS = 0
    approver.email = "approver@example.test"
    approver.save()
    user = prime_user_create(actor=operator, name="Desk 9 bot", role="Viewer")

    # The Operator asks to promote the Viewer to Trader (under approval).
    op = new_page()
    sign_in(op, live_server, operator)
    op.wait_for_url(f"{live_server.url}/")
    op.goto(f"{live_server.url}/prime-users/{user.prime_id}/")
    op.select_option("#role-action select[name=role]", "Trader")
    op.click("text=Preview role change")
    op.click("text=Send the role change to Kraken")
    expect(op.locator("#user-panel .sent-for-approval")).to_contain_text("Sent for approval")

    link = _the_approver_is_emailed(smtp, live_server)

    _the_approver_follows_it_and_approves(new_page, approver, link)

    _the_operator_sees_the_outcome(op, live_server, link)
