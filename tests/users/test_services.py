"""Prime user services against the real sandbox: Kraken first, then mirror + audit."""

from __future__ import annotations

import pytest

from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.keys.services import prime_sync
from portal.users import services
from portal.users.models import PrimeUser

pytestmark = pytest.mark.django_db


def events(action=None, **filters):
    qs = AuditEvent.objects.all()
    if action:
        qs = qs.filter(action=action)
    return list(qs.filter(**filters).order_by("seq"))


def test_creating_a_user_creates_it_at_kraken_mirrors_and_audits_it(operator, admin_client):
    user = services.prime_user_create(
        actor=operator, name="  Desk bot  ", role="Trader", owner_label="Ann", desk_label="FX"
    )
    upstream = admin_client.get_api_user(user.prime_id)
    assert (upstream.name, upstream.role, upstream.status) == ("Desk bot", "Trader", "Enabled")
    stored = PrimeUser.objects.get(prime_id=user.prime_id)
    assert (stored.name, stored.role, stored.owner_label, stored.desk_label) == (
        "Desk bot",
        "Trader",
        "Ann",
        "FX",
    )
    assert stored.last_synced_at is not None
    assert stored.created_by == operator
    (event,) = events(AuditAction.PRIME_USER_CREATED)
    assert event.outcome == Outcome.SUCCEEDED
    assert event.target_id == user.prime_id
    assert event.after["role"] == "Trader"
    assert event.actor_label == operator.username


def test_rename_enable_disable_are_sent_to_kraken_and_audited_with_before_and_after(
    operator, prime_user, admin_client
):
    services.prime_user_rename(user=prime_user, actor=operator, name="Renamed bot")
    services.prime_user_set_status(user=prime_user, actor=operator, status="Disabled")
    assert admin_client.get_api_user(prime_user.prime_id).status == "Disabled"
    services.prime_user_set_status(user=prime_user, actor=operator, status="Enabled")
    upstream = admin_client.get_api_user(prime_user.prime_id)
    assert (upstream.name, upstream.status) == ("Renamed bot", "Enabled")
    prime_user.refresh_from_db()
    assert (prime_user.name, prime_user.status) == ("Renamed bot", "Enabled")
    (renamed,) = events(AuditAction.PRIME_USER_RENAMED)
    assert renamed.before["name"] == "Alice Trading Bot"
    assert renamed.after["name"] == "Renamed bot"
    (disabled,) = events(AuditAction.PRIME_USER_DISABLED)
    assert (disabled.before["status"], disabled.after["status"]) == ("Enabled", "Disabled")
    assert len(events(AuditAction.PRIME_USER_ENABLED)) == 1


def test_labels_are_portal_only_and_audited(operator, prime_user, write_log):
    services.prime_user_update_labels(
        user=prime_user, actor=operator, owner_label="Bob", desk_label="Rates", notes="n1"
    )
    assert write_log.writes() == []
    (event,) = events(AuditAction.PRIME_USER_LABELS_CHANGED)
    assert event.before == {"owner": "", "desk": "", "notes": ""}
    assert event.after == {"owner": "Bob", "desk": "Rates", "notes": "n1"}
    services.prime_user_update_labels(
        user=prime_user, actor=operator, owner_label="Bob", desk_label="Rates", notes="n1"
    )
    assert len(events(AuditAction.PRIME_USER_LABELS_CHANGED)) == 1  # no change, no event


@pytest.mark.parametrize(
    ("fault", "unknown"),
    [("rate_limit", False), ("unavailable", False), ("timeout_after_execute", True)],
)
def test_a_failed_rename_changes_nothing_locally_and_is_audited(
    operator, prime_user, control, settings, fault, unknown
):
    settings.PRIME_TIMEOUT_SECONDS = 1
    control.inject_fault(fault, "UpdatePrimeApiUser", seconds=2 if unknown else None)
    with pytest.raises(services.PrimeActionFailed) as failure:
        services.prime_user_rename(user=prime_user, actor=operator, name="Never")
    assert failure.value.outcome_unknown is unknown
    assert PrimeUser.objects.get(pk=prime_user.pk).name == "Alice Trading Bot"
    (event,) = events(AuditAction.PRIME_USER_RENAMED)
    assert event.outcome == (Outcome.UNKNOWN if unknown else Outcome.FAILED)
    assert event.prime_endpoint == "UpdatePrimeApiUser"
    assert event.message == failure.value.message
    if unknown:
        assert "outcome is unknown" in failure.value.message
        # The write did reach Kraken: a resync brings the mirror up to date.
        prime_sync(actor=operator, user=prime_user)
        assert PrimeUser.objects.get(pk=prime_user.pk).name == "Never"


def test_invalid_arguments_from_kraken_are_reported_and_nothing_changes(
    operator, prime_user, admin_client
):
    # Kraken accepts a name it then refuses: 65 characters (the portal's form stops this first).
    with pytest.raises(services.PrimeActionFailed) as failure:
        services.prime_user_rename(user=prime_user, actor=operator, name="x" * 65)
    assert "invalid" in failure.value.message.lower()
    assert admin_client.get_api_user(prime_user.prime_id).name == "Alice Trading Bot"
    (event,) = events(AuditAction.PRIME_USER_RENAMED)
    assert event.outcome == Outcome.FAILED
    assert event.prime_response["error"] == "InvalidArgumentsError"


def test_permission_denied_when_the_portal_key_is_not_the_admin_key(
    operator, prime_user, admin_client, settings
):
    from portal.connection import door as portal_prime

    issued = admin_client.create_api_user_key(prime_user.prime_id)
    settings.PRIME_API_KEY = issued.api_key
    settings.PRIME_API_SECRET = issued.api_secret
    portal_prime.forget_clients()
    with pytest.raises(services.PrimeActionFailed) as failure:
        services.prime_user_set_status(user=prime_user, actor=operator, status="Disabled")
    assert "permission" in failure.value.message.lower()
    assert PrimeUser.objects.get(pk=prime_user.pk).status == "Enabled"
    (event,) = events(AuditAction.PRIME_USER_DISABLED)
    assert event.outcome == Outcome.FAILED
    assert event.prime_response["error"] == "PermissionDeniedError"


def test_create_with_unknown_outcome_is_found_by_a_full_sync(operator, control, settings):
    settings.PRIME_TIMEOUT_SECONDS = 1
    control.inject_fault("timeout_after_execute", "CreatePrimeApiUser", seconds=2)
    with pytest.raises(services.PrimeActionFailed) as failure:
        services.prime_user_create(actor=operator, name="Maybe", role="Viewer")
    assert failure.value.outcome_unknown
    assert not PrimeUser.objects.exists()
    (event,) = events(AuditAction.PRIME_USER_CREATED)
    assert event.outcome == Outcome.UNKNOWN
    assert event.after == {"name": "Maybe", "role": "Viewer"}
    report = prime_sync(actor=operator)
    assert PrimeUser.objects.get().name == "Maybe"
    assert report.changed
