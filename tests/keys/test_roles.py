"""A user's role (the permissions each of its keys carries): preview rules and the change."""

from __future__ import annotations

import pytest

from portal.audit.models import AuditAction, AuditEvent
from portal.keys import selectors, services
from portal.keys.models import ApiKey
from portal.users.models import PrimeUser

pytestmark = pytest.mark.django_db


def test_asking_for_the_role_the_user_has_is_refused(operator, prime_user, write_log):
    with pytest.raises(services.RoleAlreadyHeld) as refused:
        services.prime_user_change_role(
            user=prime_user, actor=operator, role="Viewer", expected_role="Viewer"
        )
    assert refused.value.message == services.ROLE_ALREADY_HELD.format(
        name=prime_user.name, role="Viewer"
    )
    assert write_log.writes() == []


def test_a_role_change_against_a_stale_preview_is_refused(operator, prime_user, write_log):
    # The person previewed Trader -> Viewer, but the user is a Viewer now.
    with pytest.raises(services.RoleChangedSincePreview) as stale:
        services.prime_user_change_role(
            user=prime_user, actor=operator, role="Trader", expected_role="Trader"
        )
    assert stale.value.message == services.ROLE_CHANGED_SINCE_PREVIEW
    assert write_log.writes() == []
    assert PrimeUser.objects.get(pk=prime_user.pk).role == "Viewer"
    assert not AuditEvent.objects.filter(action=AuditAction.PRIME_USER_ROLE_CHANGED).exists()


def test_the_preview_lists_the_keys_and_the_permissions_they_gain(operator, prime_user):
    key = services.key_issue(user=prime_user, actor=operator).key
    preview = selectors.role_change_preview(user=prime_user, new_role="Trader")
    assert (preview.current_role, preview.new_role) == ("Viewer", "Trader")
    assert "write::orders" in preview.gained and not preview.lost
    assert preview.affected_keys == [ApiKey.objects.get(pk=key.pk)]


def test_role_change_updates_the_user_and_its_keys_permissions(operator, prime_user, admin_client):
    issued = services.key_issue(user=prime_user, actor=operator, label="bot")
    services.prime_user_change_role(
        user=prime_user, actor=operator, role="Trader", expected_role="Viewer"
    )
    assert admin_client.get_api_user(prime_user.prime_id).role == "Trader"
    (upstream_key,) = admin_client.list_api_user_keys(prime_user.prime_id)
    key = ApiKey.objects.get(pk=issued.key.pk)
    assert key.permissions == list(upstream_key.permissions)
    assert "write::orders" in key.permissions
    (event,) = AuditEvent.objects.filter(action=AuditAction.PRIME_USER_ROLE_CHANGED)
    assert (event.before["role"], event.after["role"]) == ("Viewer", "Trader")
    assert "write::orders" not in event.before["key_permissions"][key.prime_key_id]
    assert "write::orders" in event.after["key_permissions"][key.prime_key_id]
