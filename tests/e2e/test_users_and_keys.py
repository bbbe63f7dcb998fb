"""An operator, in a real browser: create a Prime user, issue a key and read its secret once,
edit the allow-list (a bad entry, then a good one), change the role through its preview,
revoke the key; the secret never comes back and the audit trail shows each step."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.keys.models import ApiKey
from portal.users.models import PrimeUser
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

STORAGE = """() => {
  const dump = (s) => { const o = {}; for (let i = 0; i < s.length; i++) { o[s.key(i)] = s.getItem(s.key(i)); } return o; };
  return JSON.stringify(dump(window.localStorage)) + JSON.stringify(dump(window.sessionStorage));
}"""


@pytest.fixture(autouse=True)
def _fresh_prime_clients():
    from portal.connection import door

    door.forget_clients()
    yield
    door.forget_clients()


def _approve_pending(approver) -> None:
    """An Approver approves the one pending change request (issue 11: escalation and enabling
    wait for an approver; the two-browser approval is in test_approvals_users_keys.py)."""
    from portal.approvals import services
    from portal.approvals.models import ChangeRequest, StepUpMethod, VoteDecision

    change = ChangeRequest.objects.get(state="pending")
    services.change_vote(
        change_id=change.pk,
        actor=approver,
        decision=VoteDecision.APPROVE,
        step_up=StepUpMethod.TOTP,
    )


def test_issue_read_once_allowlist_role_and_revoke(
    new_page, live_server, operator, approver, prime_settings
):
    admin = prime_settings  # the sandbox
    from primeapi import PrimeClient

    kraken = PrimeClient(admin.url, admin.admin_key, admin.admin_secret)
    page = new_page(permissions=["clipboard-read", "clipboard-write"])
    sign_in(page, live_server, operator)
    page.wait_for_url(f"{live_server.url}/")

    # Create the Prime user.
    page.click("nav >> text=Prime users")
    page.click("text=New Prime user")
    page.fill("#id_name", "E2E pricing bot")
    page.select_option("#id_role", "Viewer")
    page.fill("#id_desk_label", "FX")
    page.click("#create-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/prime-users/[A-Z0-9]{13}/$"))
    user = PrimeUser.objects.get()
    expect(page.locator("#user-panel h1")).to_have_text("E2E pricing bot")

    # Search as you type on the list (htmx, URL pushed).
    page.goto(f"{live_server.url}/prime-users/")
    page.fill("#id_q", "nothing like this")
    expect(page.locator("#user-results")).to_contain_text("No Prime user matches")
    page.fill("#id_q", "pricing")
    expect(page.locator("#user-results")).to_contain_text("E2E pricing bot")
    expect(page).to_have_url(re.compile(r"\?q=pricing"))

    # Issue a key: the secret is shown once.
    page.goto(f"{live_server.url}/keys/users/{user.prime_id}/")
    page.fill("#id_label", "pricing engine")
    page.click("#issue-panel button[type=submit]")
    expect(page.locator("#secret-value")).to_be_visible()
    secret = page.locator("#secret-value").inner_text().strip()
    assert len(secret) == 88
    key = ApiKey.objects.get()
    page.click("#copy-secret")
    expect(page.locator("#copy-secret")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    assert secret not in page.evaluate(STORAGE)

    # Reload: gone.
    page.reload()
    expect(page.locator("#keys-page h1")).to_contain_text("Keys of E2E pricing bot")
    assert secret not in page.content()
    # Go elsewhere and come back with the Back button: gone.
    page.click("#keys-page >> text=← E2E pricing bot")
    page.wait_for_url(f"{live_server.url}/prime-users/{user.prime_id}/")
    page.go_back()
    page.wait_for_url(f"{live_server.url}/keys/users/{user.prime_id}/")
    assert secret not in page.content()
    # Open the issue URL again: gone, and it says why.
    page.goto(f"{live_server.url}/keys/users/{user.prime_id}/issue/")
    expect(page.locator("#issue-panel")).to_contain_text("not shown again")
    assert secret not in page.content()
    assert secret not in page.evaluate(STORAGE)

    # The allow-list: a bad entry first, then a good list, previewed and saved in place.
    page.goto(f"{live_server.url}/keys/users/{user.prime_id}/")
    row = page.locator(f"#key-{key.prime_key_id}")
    row.locator("text=Edit allow-list").click()
    row = page.locator(f"#key-{key.prime_key_id}")
    row.locator("textarea[name=entries]").fill("192.0.2.10\nnot-an-address")
    row.locator("text=Preview changes").click()
    expect(page.locator(f"#key-{key.prime_key_id} .errorlist")).to_contain_text("not-an-address")
    row = page.locator(f"#key-{key.prime_key_id}")
    row.locator("textarea[name=entries]").fill("192.0.2.10\n10.20.30.40/8")
    row.locator("text=Preview changes").click()
    preview = page.locator(f"#key-{key.prime_key_id} .allowlist-preview")
    expect(preview).to_contain_text("+ 192.0.2.10")
    expect(preview).to_contain_text("+ 10.0.0.0/8")
    expect(preview).to_contain_text("host bits set")
    assert kraken.list_api_user_keys(user.prime_id)[0].whitelisted_ips == ()  # not yet sent
    page.evaluate("window.__sameDocument = true")
    preview.locator("text=Save allow-list at Kraken").click()
    allowlist = page.locator(f"#key-{key.prime_key_id} td.allowlist")
    expect(allowlist).to_contain_text("10.0.0.0/8")
    assert page.evaluate("window.__sameDocument") is True  # updated in place
    assert kraken.list_api_user_keys(user.prime_id)[0].whitelisted_ips == (
        "192.0.2.10",
        "10.0.0.0/8",
    )

    # The role, through its preview.
    page.click("#keys-page >> text=← E2E pricing bot")
    page.wait_for_url(f"{live_server.url}/prime-users/{user.prime_id}/")
    page.select_option("#role-action select[name=role]", "Trader")
    page.click("text=Preview role change")
    region = page.locator("[aria-label='Role change preview']")
    expect(region).to_contain_text("from Viewer to Trader")
    expect(region.locator("code.diff-add")).to_have_text("write::orders")
    expect(region).to_contain_text(key.prime_key_id)
    assert kraken.get_api_user(user.prime_id).role == "Viewer"  # not yet sent
    page.evaluate("window.__sameDocument = true")
    region.locator("text=Send the role change to Kraken").click()
    # Viewer -> Trader waits for an approver (issue 11); the panel says so in place.
    expect(page.locator("#user-panel .sent-for-approval")).to_contain_text("Sent for approval")
    assert page.evaluate("window.__sameDocument") is True  # the panel updated in place
    assert kraken.get_api_user(user.prime_id).role == "Viewer"
    _approve_pending(approver)
    page.reload()
    expect(page.locator("#user-panel td.role-cell")).to_have_text("Trader")
    assert kraken.get_api_user(user.prime_id).role == "Trader"

    # Revoke, typing the public key.
    page.click("#user-panel >> text=1 active key")
    page.wait_for_url(f"{live_server.url}/keys/users/{user.prime_id}/")
    row = page.locator(f"#key-{key.prime_key_id}")
    row.locator("text=Revoke").click()
    row = page.locator(f"#key-{key.prime_key_id}")
    row.locator("input[name=public_key]").fill(key.public_key)
    row.locator("textarea[name=reason]").fill("end of the e2e test")
    row.locator("button.danger").click()
    expect(page.locator(f"#key-{key.prime_key_id} .badge.bad")).to_have_text("revoked")
    assert kraken.list_api_user_keys(user.prime_id) == ()

    # The audit trail shows each step, in order, and the user's history page lists them.
    steps = [
        (e.action, e.outcome)
        for e in AuditEvent.objects.filter(
            action__in=[
                AuditAction.PRIME_USER_CREATED,
                AuditAction.KEY_ISSUED,
                AuditAction.KEY_ALLOWLIST_CHANGED,
                AuditAction.PRIME_USER_ROLE_CHANGED,
                AuditAction.KEY_REVOKED,
            ]
        ).order_by("seq")
    ]
    assert steps == [
        (AuditAction.PRIME_USER_CREATED, Outcome.SUCCEEDED),
        (AuditAction.KEY_ISSUED, Outcome.SUCCEEDED),
        (AuditAction.KEY_ALLOWLIST_CHANGED, Outcome.SUCCEEDED),
        (AuditAction.PRIME_USER_ROLE_CHANGED, Outcome.SUCCEEDED),
        (AuditAction.KEY_REVOKED, Outcome.SUCCEEDED),
    ]
    by_operator = [s[0] for s in steps if s[0] != AuditAction.PRIME_USER_ROLE_CHANGED]
    assert all(
        e.actor_label == operator.username
        for e in AuditEvent.objects.filter(action__in=by_operator)
    )
    # The approved escalation was executed by the approver's vote.
    role_event = AuditEvent.objects.get(action=AuditAction.PRIME_USER_ROLE_CHANGED)
    assert role_event.actor_label == approver.username
    page.goto(f"{live_server.url}/prime-users/{user.prime_id}/")
    page.click("text=Audit history of this user")
    expect(page.locator("main")).to_contain_text("role changed")
    assert secret not in page.content()
    kraken.close()


def test_rename_disable_enable_label_and_filter_in_place(
    new_page, live_server, operator, approver, prime_settings
):
    from portal.users.services import prime_user_create
    from primeapi import PrimeClient

    user = prime_user_create(actor=operator, name="Desk bot", role="Viewer")
    prime_user_create(actor=operator, name="Other bot", role="Trader")
    kraken = PrimeClient(prime_settings.url, prime_settings.admin_key, prime_settings.admin_secret)
    page = new_page()
    sign_in(page, live_server, operator)
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/prime-users/{user.prime_id}/")
    page.evaluate("window.__sameDocument = true")

    page.fill("#rename-action input[name=name]", "Desk bot (FX)")
    page.click("text=Rename at Kraken")
    expect(page.locator("#user-panel h1")).to_have_text("Desk bot (FX)")
    page.click("text=Disable (its keys stop working)")
    expect(page.locator("#user-panel td.status-cell")).to_have_text("Disabled")
    assert kraken.get_api_user(user.prime_id).status == "Disabled"
    page.click("#status-action >> text=Enable")
    # Enabling waits for an approver (issue 11).
    expect(page.locator("#user-panel .sent-for-approval")).to_contain_text("Sent for approval")
    assert kraken.get_api_user(user.prime_id).status == "Disabled"
    _approve_pending(approver)
    page.reload()
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#user-panel td.status-cell")).to_have_text("Enabled")
    page.fill("#labels-action input[name=owner_label]", "Ann Smith")
    page.fill("#labels-action textarea[name=notes]", "Quotes EURUSD overnight")
    page.click("text=Save labels")
    expect(page.locator("#user-panel td.notes")).to_have_text("Quotes EURUSD overnight")
    assert page.evaluate("window.__sameDocument") is True
    assert kraken.get_api_user(user.prime_id).name == "Desk bot (FX)"

    # The list filters as the person types and chooses.
    page.goto(f"{live_server.url}/prime-users/")
    page.select_option("#id_role", "Trader")
    expect(page.locator("#user-results")).not_to_contain_text("Desk bot")
    expect(page.locator("#user-results")).to_contain_text("Other bot")
    page.select_option("#id_role", "")
    page.fill("#id_q", "ann smi")
    expect(page.locator("#user-results")).to_contain_text("Desk bot (FX)")
    expect(page.locator("#user-results")).not_to_contain_text("Other bot")
    kraken.close()
