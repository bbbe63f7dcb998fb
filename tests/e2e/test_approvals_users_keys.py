"""Two people, two browsers: an Operator asks to promote a Viewer to Trader and to issue it a
key; an Approver sees the count in the navigation (refreshed without reloading), opens the
inbox and approves each with a TOTP code; the Operator then issues the key and sees its
secret once (reload: gone)."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from portal.approvals.models import ChangeKind, ChangeRequest, RequestState
from portal.keys.models import ApiKey
from tests.e2e.conftest import sign_in
from tests.staff.otp import confirmed_device, totp_code

pytestmark = pytest.mark.django_db(transaction=True)

NAV_REFRESH = 25_000  # the navigation's count refreshes every 20 seconds


def unused_code(device) -> str:
    """A code the device has not accepted yet: a TOTP code works once per 30-second step, and
    django-otp accepts the next step too, so this waits at most one step."""
    while True:
        device.refresh_from_db()
        now_t = int((time.time() - device.t0) // device.step)
        for ahead in (0, 1):
            if now_t + ahead > device.last_t:
                return totp_code(device, steps_ahead=ahead)
        time.sleep(1)


@pytest.fixture(autouse=True)
def _fresh_prime_clients():
    from portal.connection import door

    door.forget_clients()
    yield
    door.forget_clients()


def test_operator_requests_promotion_and_key_approver_approves_operator_reads_secret_once(
    new_page, live_server, operator, approver, prime_settings, settings
):
    from portal.users.services import prime_user_create
    from primeapi import PrimeClient

    settings.APPROVALS_STEP_UP_WINDOW_SECONDS = 0  # a code for each approval
    kraken = PrimeClient(prime_settings.url, prime_settings.admin_key, prime_settings.admin_secret)
    user = prime_user_create(actor=operator, name="Desk 7 bot", role="Viewer")

    # The Approver is signed in and looking at the start page; nothing waits.
    device = confirmed_device(approver)  # the authenticator app: sign-in and approvals
    ap = new_page()
    sign_in(ap, live_server, approver, device=device)
    ap.wait_for_url(f"{live_server.url}/")
    nav_count = ap.locator("nav .nav-count")
    expect(nav_count.locator(".badge")).to_have_count(0)

    # The Operator asks to promote the Viewer to Trader...
    op = new_page()
    sign_in(op, live_server, operator)
    op.wait_for_url(f"{live_server.url}/")
    op.goto(f"{live_server.url}/prime-users/{user.prime_id}/")
    op.select_option("#role-action select[name=role]", "Trader")
    op.click("text=Preview role change")
    op.click("text=Send the role change to Kraken")
    expect(op.locator("#user-panel .sent-for-approval")).to_contain_text("Sent for approval")
    # ...and to issue it a key (a Trader's key: it waits too).
    op.goto(f"{live_server.url}/keys/users/{user.prime_id}/")
    op.fill("#id_label", "desk 7 quoting")
    op.click("#issue-panel button[type=submit]")
    expect(op.locator("#issue-panel .sent-for-approval")).to_contain_text("Sent for approval")
    expect(op.locator("#secret-value")).to_have_count(0)
    assert kraken.get_api_user(user.prime_id).role == "Viewer"
    assert kraken.list_api_user_keys(user.prime_id) == ()
    issue = ChangeRequest.objects.get(kind=ChangeKind.KEY_ISSUE)

    # The Approver's navigation shows 2 without a reload; the inbox lists both with the diff.
    expect(nav_count.locator(".badge")).to_have_text("2", timeout=NAV_REFRESH)
    ap.click("nav >> text=Approvals")
    ap.wait_for_url(f"{live_server.url}/approvals/")
    waiting = ap.locator("section[aria-labelledby=waiting-h]")
    expect(waiting.locator("article")).to_have_count(2)
    expect(waiting).to_contain_text("Role escalation")
    expect(waiting).to_contain_text("Key issue")
    expect(waiting).to_contain_text(operator.username)

    # Approve each with a code from the authenticator app (a code works once per step).
    for kind in ("Role escalation", "Key issue"):
        ap.goto(f"{live_server.url}/approvals/")
        ap.locator("section[aria-labelledby=waiting-h] article", has_text=kind).locator(
            "h3 a"
        ).click()
        ap.wait_for_url(re.compile(r".*/approvals/\d+/$"))
        ap.fill("#change-panel input[name=code]", unused_code(device))
        ap.click("#change-panel button:has-text('Approve')")
        expect(ap.locator("#change-panel .badge").first).to_have_text(re.compile("Done|Approved"))
    assert kraken.get_api_user(user.prime_id).role == "Trader"
    assert kraken.list_api_user_keys(user.prime_id) == ()  # authorised, not issued
    issue.refresh_from_db()
    assert issue.state == RequestState.APPROVED
    ap.goto(f"{live_server.url}/approvals/")
    expect(nav_count.locator(".badge")).to_have_count(0)

    # The Operator issues the approved key from the request's page; the secret shows once.
    op.goto(f"{live_server.url}/approvals/{issue.pk}/")
    op.click("text=Carry out the approved change")
    op.wait_for_url(f"{live_server.url}/keys/approved/{issue.pk}/issue/")
    expect(op.locator("#secret-value")).to_be_visible()
    secret = op.locator("#secret-value").inner_text().strip()
    assert len(secret) == 88
    key = ApiKey.objects.get(user=user)
    assert "write::orders" in key.permissions
    assert [k.id for k in kraken.list_api_user_keys(user.prime_id)] == [key.prime_key_id]

    # Reload: gone, and nothing is issued again.
    op.reload()
    expect(op.locator("#issue-panel")).to_be_visible()
    assert secret not in op.content()
    expect(op.locator("#secret-value")).to_have_count(0)
    assert len(kraken.list_api_user_keys(user.prime_id)) == 1
    # The Approver never sees it.
    ap.goto(f"{live_server.url}/approvals/{issue.pk}/")
    assert secret not in ap.content()
    kraken.close()
