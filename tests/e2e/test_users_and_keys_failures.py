"""In a real browser: Kraken's refusals appear next to what the person did, a timeout on a
write offers a resync that settles it, a failed allow-list is said plainly, and a sync shows
what changed outside the portal."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.keys.models import ApiKey
from portal.users.services import prime_user_create
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_prime_clients():
    from portal.connection import door

    door.forget_clients()
    yield
    door.forget_clients()


@pytest.fixture
def kraken(prime_settings):
    from primeapi import PrimeClient

    client = PrimeClient(prime_settings.url, prime_settings.admin_key, prime_settings.admin_secret)
    yield client
    client.close()


def test_failures_are_shown_where_they_happened(
    page, live_server, operator, prime_settings, kraken, settings
):
    control = prime_settings.control
    user = prime_user_create(actor=operator, name="Fragile bot", role="Viewer")
    sign_in(page, live_server, operator)
    page.wait_for_url(f"{live_server.url}/")

    # Issue with an allow-list whose second call fails: the key exists and the page says so.
    control.inject_fault("unavailable", "UpdatePrimeApiUserKey")
    page.goto(f"{live_server.url}/keys/users/{user.prime_id}/")
    page.fill("#id_whitelisted_ips", "192.0.2.44")
    page.click("#issue-panel button[type=submit]")
    expect(page.locator("#issue-panel")).to_contain_text(
        "The key was issued, but its allow-list was not set."
    )
    expect(page.locator("#secret-value")).to_be_visible()
    page.click("text=I have stored it")
    key = ApiKey.objects.get()
    expect(page.locator(f"#key-{key.prime_key_id} td.allowlist")).to_contain_text("no allow-list")

    # Rate limited while saving the allow-list: said in the row, nothing changed.
    control.inject_fault("rate_limit", "UpdatePrimeApiUserKey")
    row = page.locator(f"#key-{key.prime_key_id}")
    row.locator("text=Edit allow-list").click()
    page.locator(f"#key-{key.prime_key_id} textarea[name=entries]").fill("192.0.2.44")
    page.locator(f"#key-{key.prime_key_id} >> text=Preview changes").click()
    page.locator(f"#key-{key.prime_key_id} >> text=Save allow-list at Kraken").click()
    expect(page.locator(f"#key-{key.prime_key_id} [role=alert]")).to_contain_text("rate-limiting")
    assert kraken.list_api_user_keys(user.prime_id)[0].whitelisted_ips == ()

    # A role change that times out after Kraken executed it: outcome unknown, then resync.
    # (Escalation needs an approver by default since issue 11; this installation's policy
    # lets it run at once, so the Operator's own panel shows the unknown outcome.)
    from portal.approvals.models import ApprovalPolicy, ChangeKind

    ApprovalPolicy.objects.create(kind=ChangeKind.ROLE_ESCALATE, needs_approval=False, approvers=1)
    settings.PRIME_TIMEOUT_SECONDS = 1
    control.inject_fault("timeout_after_execute", "UpdatePrimeApiUserRoles", seconds=2)
    page.goto(f"{live_server.url}/prime-users/{user.prime_id}/")
    page.select_option("#role-action select[name=role]", "Trader")
    page.click("text=Preview role change")
    page.click("text=Send the role change to Kraken")
    alert = page.locator("#user-panel [role=alert]")
    expect(alert).to_contain_text("outcome is unknown")
    expect(page.locator("#user-panel td.role-cell")).to_have_text("Viewer")
    alert.locator("text=Outcome unknown — resync").click()
    expect(page.locator("#user-panel td.role-cell")).to_have_text("Trader")
    expect(page.locator("#user-panel")).to_contain_text("changed outside the portal")
    unknown = AuditEvent.objects.get(action=AuditAction.PRIME_USER_ROLE_CHANGED)
    assert unknown.outcome == Outcome.UNKNOWN

    # Changed at Kraken by someone else: a sync shows it on the users page.
    kraken.update_api_user(user.prime_id, name="Renamed at Kraken")
    kraken.create_api_user("Born at Kraken", "Viewer")
    page.goto(f"{live_server.url}/prime-users/")
    page.click("text=Sync with Kraken")
    expect(page.locator("#messages")).to_contain_text("difference(s)")
    results = page.locator("#user-results")
    expect(results).to_contain_text("Renamed at Kraken")
    expect(results).to_contain_text("Born at Kraken")
    expect(results.locator(".badge.warn")).to_have_count(2)
