"""prime_sync: reconcile the mirror with what Kraken lists, recording every difference."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from portal.actors import SystemActor
from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.keys import services
from portal.keys.models import ApiKey
from portal.keys.services import key_issue
from portal.users import services as user_services
from portal.users.models import PrimeUser

pytestmark = pytest.mark.django_db


def sync_events():
    return list(AuditEvent.objects.filter(action=AuditAction.SYNC_DIFFERENCE).order_by("seq"))


def test_sync_adds_users_and_keys_created_outside_the_portal(operator, admin_client):
    services.prime_sync(actor=operator)  # the installation's first sync: the baseline
    outside = admin_client.create_api_user("Made at Kraken", "Trader")
    key = admin_client.create_api_user_key(outside.id)
    report = services.prime_sync(actor=operator)
    user = PrimeUser.objects.get(prime_id=outside.id)
    assert (user.name, user.role, user.status) == ("Made at Kraken", "Trader", "Enabled")
    assert user.changed_outside_at is not None
    mirrored = ApiKey.objects.get(prime_key_id=key.id)
    assert mirrored.user == user
    assert mirrored.public_key == key.api_key
    assert mirrored.issued_by is None
    assert mirrored.changed_outside_at is not None
    assert (report.users_seen, report.keys_seen, len(report.differences)) == (1, 1, 2)
    targets = {(e.target_type, e.target_id) for e in sync_events()}
    assert targets == {("prime_user", outside.id), ("key", key.id)}
    assert all(e.outcome == Outcome.SUCCEEDED for e in sync_events())


def test_sync_records_changes_made_outside_the_portal(operator, prime_user, admin_client):
    issued = key_issue(user=prime_user, actor=operator)
    admin_client.update_api_user(prime_user.prime_id, name="Renamed at Kraken", status="Disabled")
    admin_client.update_api_user_roles(prime_user.prime_id, "Trader")
    admin_client.update_api_user_key(prime_user.prime_id, issued.key.prime_key_id, ["10.0.0.0/8"])

    services.prime_sync(actor=operator)

    prime_user.refresh_from_db()
    assert (prime_user.name, prime_user.role, prime_user.status) == (
        "Renamed at Kraken",
        "Trader",
        "Disabled",
    )
    assert prime_user.changed_outside_at is not None
    assert any("role Viewer → Trader" in c for c in prime_user.changed_outside)
    key = ApiKey.objects.get(pk=issued.key.pk)
    assert key.whitelisted_ips == ["10.0.0.0/8"]
    assert "write::orders" in key.permissions
    user_event = next(e for e in sync_events() if e.target_type == "prime_user")
    assert user_event.before["name"] == "Alice Trading Bot"
    assert user_event.after["name"] == "Renamed at Kraken"
    key_event = next(e for e in sync_events() if e.target_type == "key")
    assert key_event.before["whitelisted_ips"] == []
    assert key_event.after["whitelisted_ips"] == ["10.0.0.0/8"]


def test_a_second_sync_with_nothing_changed_records_nothing(operator, prime_user, admin_client):
    key_issue(user=prime_user, actor=operator, whitelisted_ips=["192.0.2.1"])
    admin_client.create_api_user("Outside", "Viewer")
    services.prime_sync(actor=operator)
    before = len(sync_events())
    report = services.prime_sync(actor=operator)
    assert not report.changed
    assert len(sync_events()) == before


def test_portal_writes_leave_nothing_for_sync_to_find(operator, prime_user):
    issued = key_issue(user=prime_user, actor=operator, whitelisted_ips=["192.0.2.0/24"])
    services.prime_user_change_role(
        user=prime_user, actor=operator, role="Trader", expected_role="Viewer"
    )
    user_services.prime_user_rename(user=prime_user, actor=operator, name="Still mine")
    from portal.keys.services import key_revoke

    second = key_issue(user=prime_user, actor=operator)
    key_revoke(key=second.key, actor=operator, reason="rotated")
    report = services.prime_sync(actor=operator)
    assert report.differences == []
    assert ApiKey.objects.get(pk=issued.key.pk).changed_outside_at is None


def test_sync_marks_what_disappeared_at_kraken(operator, prime_user, admin_client, control):
    issued = key_issue(user=prime_user, actor=operator)
    other = key_issue(user=prime_user, actor=operator)
    admin_client.delete_api_user_key(prime_user.prime_id, issued.key.prime_key_id)
    services.prime_sync(actor=operator)
    assert ApiKey.objects.get(pk=issued.key.pk).missing_upstream_at is not None
    assert ApiKey.objects.get(pk=other.key.pk).missing_upstream_at is None

    # The whole account disappears (the sandbox is reset): the user is marked missing.
    control.reset()
    services.prime_sync(actor=operator)
    prime_user.refresh_from_db()
    assert prime_user.missing_upstream_at is not None
    assert ApiKey.objects.get(pk=other.key.pk).missing_upstream_at is not None
    messages = [e.message for e in sync_events()]
    assert any("no longer listed by Kraken" in m for m in messages)


def test_resync_of_one_user_kraken_does_not_know_marks_it_missing(operator, prime_user, control):
    control.reset()
    report = services.prime_sync(actor=operator, user=prime_user)
    prime_user.refresh_from_db()
    assert prime_user.missing_upstream_at is not None
    assert len(report.differences) == 1


def test_a_failed_sync_changes_nothing_and_is_audited(operator, prime_user, admin_client, control):
    admin_client.create_api_user("Outside", "Viewer")
    control.inject_fault("rate_limit", "ListPrimeApiUsers")
    with pytest.raises(services.PrimeActionFailed) as failure:
        services.prime_sync(actor=operator)
    assert "rate-limiting" in failure.value.message
    assert PrimeUser.objects.count() == 1
    (event,) = sync_events()
    assert event.outcome == Outcome.FAILED


def test_the_users_page_shows_changed_outside_the_portal(op_client, prime_user, admin_client):
    admin_client.update_api_user(prime_user.prime_id, name="Changed elsewhere")
    page = op_client.get(reverse("users:list")).content.decode()
    assert "changed outside the portal" not in page
    services.prime_sync(actor=SystemActor.COMMAND_LINE)
    page = op_client.get(reverse("users:list")).content.decode()
    assert "Changed elsewhere" in page
    assert "changed outside the portal" in page


def test_the_command_syncs_with_a_progress_bar(prime, admin_client):
    services.prime_sync(actor=SystemActor.SYNC)  # the installation's first sync: the baseline
    for n in range(3):
        admin_client.create_api_user(f"Bot {n}", "Viewer")
    out, err = io.StringIO(), io.StringIO()
    call_command("prime_sync", stdout=out, stderr=err)
    assert PrimeUser.objects.count() == 3
    assert "done 3 users" in err.getvalue()
    assert "3 difference(s)" in out.getvalue()
    event = sync_events()[0]
    assert event.actor_label == "system:prime_sync"


def test_the_command_fails_loudly_when_kraken_refuses(prime, control):
    from django.core.management.base import CommandError

    control.inject_fault("rate_limit", "ListPrimeApiUsers")
    with pytest.raises(CommandError, match="rate-limiting"):
        call_command("prime_sync", stdout=io.StringIO(), stderr=io.StringIO())


def test_the_first_sync_is_the_baseline_and_only_later_differences_need_review(
    operator, admin_client, op_client
):
    """A new installation's first sync imports what Kraken holds without flagging it."""
    existing = admin_client.create_api_user("Desk bot", "Trader")
    key = admin_client.create_api_user_key(existing.id)
    report = services.prime_sync(actor=operator)
    assert report.baseline and report.differences == []
    user = PrimeUser.objects.get(prime_id=existing.id)
    assert user.changed_outside_at is None and user.changed_outside == []
    assert ApiKey.objects.get(prime_key_id=key.id).changed_outside_at is None
    assert sync_events() == []
    page = op_client.get(reverse("users:list")).content.decode()
    assert "Desk bot" in page and "changed outside the portal" not in page

    # Later differences do need review.
    later = admin_client.create_api_user("Made later", "Viewer")
    admin_client.update_api_user(existing.id, name="Desk bot renamed")
    report = services.prime_sync(actor=operator)
    assert not report.baseline and len(report.differences) == 2
    assert PrimeUser.objects.get(prime_id=later.id).changed_outside_at is not None
    assert PrimeUser.objects.get(prime_id=existing.id).changed_outside_at is not None
    page = op_client.get(reverse("users:list")).content.decode()
    assert "changed outside the portal" in page


def test_a_sync_of_one_user_is_never_the_baseline(operator, prime_user, admin_client):
    admin_client.create_api_user_key(prime_user.prime_id)
    report = services.prime_sync(actor=operator, user=prime_user)
    assert not report.baseline and len(report.differences) == 1


def test_the_command_says_the_first_sync_is_the_baseline(prime, admin_client):
    admin_client.create_api_user("Bot", "Viewer")
    out = io.StringIO()
    call_command("prime_sync", "--quiet-progress", stdout=out, stderr=io.StringIO())
    assert "imported as the baseline" in out.getvalue()
    assert "0 difference(s)" in out.getvalue()


def test_after_a_failed_first_sync_the_next_one_is_still_the_baseline(
    operator, admin_client, control
):
    admin_client.create_api_user("Desk bot", "Viewer")
    control.inject_fault("rate_limit", "ListPrimeApiUsers")
    with pytest.raises(services.PrimeActionFailed):
        services.prime_sync(actor=operator)
    assert services.prime_sync(actor=operator).baseline
    assert PrimeUser.objects.get().changed_outside_at is None
