"""Key services against the real sandbox: issue, allow-list, revoke, and their failures."""

from __future__ import annotations

import pytest

from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.keys import services
from portal.keys.models import ApiKey
from primeapi import PermissionDeniedError, PrimeClient

pytestmark = pytest.mark.django_db


def events(action):
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def test_the_mirror_has_no_column_for_a_secret():
    names = [f.name for f in ApiKey._meta.get_fields()]
    assert not [n for n in names if "secret" in n.lower()]


def test_issue_mirrors_the_key_audits_it_and_returns_a_working_secret(
    operator, prime_user, admin_client, prime
):
    issued = services.key_issue(user=prime_user, actor=operator, label="pricing")
    key = ApiKey.objects.get(pk=issued.key.pk)
    (upstream,) = admin_client.list_api_user_keys(prime_user.prime_id)
    assert (key.prime_key_id, key.public_key) == (upstream.id, upstream.api_key)
    assert key.permissions == ["read::marketdata", "read::orders"]
    assert (key.label, key.issued_by, key.no_allowlist_warning) == ("pricing", operator, False)
    assert issued.secret not in repr(issued) and issued.secret not in str(issued)
    # The secret is the real one: the new key signs a settlement read.
    with PrimeClient(prime.url, key.public_key, issued.secret) as as_bot:
        assert as_bot.list_settlement_batches().batches == ()
        with pytest.raises(PermissionDeniedError):
            as_bot.list_api_users()
    (event,) = events(AuditAction.KEY_ISSUED)
    assert event.outcome == Outcome.SUCCEEDED
    assert event.target_id == key.prime_key_id
    assert event.after["public_key"] == key.public_key


def test_issue_with_an_allow_list_sets_it_at_once_and_audits_both(
    operator, prime_user, admin_client
):
    issued = services.key_issue(
        user=prime_user, actor=operator, whitelisted_ips=["10.1.2.3/8", "2001:db8::1"]
    )
    assert issued.allowlist_error == ""
    (upstream,) = admin_client.list_api_user_keys(prime_user.prime_id)
    assert upstream.whitelisted_ips == ("10.0.0.0/8", "2001:db8::1")
    key = ApiKey.objects.get(pk=issued.key.pk)
    assert key.whitelisted_ips == ["10.0.0.0/8", "2001:db8::1"]
    assert key.no_allowlist_warning is False
    assert len(events(AuditAction.KEY_ISSUED)) == 1
    (changed,) = events(AuditAction.KEY_ALLOWLIST_CHANGED)
    assert (changed.outcome, changed.before["whitelisted_ips"]) == (Outcome.SUCCEEDED, [])
    assert changed.after["whitelisted_ips"] == ["10.0.0.0/8", "2001:db8::1"]


@pytest.mark.parametrize(
    ("fault", "unknown"), [("unavailable", False), ("timeout_after_execute", True)]
)
def test_issue_when_the_allow_list_call_fails_keeps_the_key_marked_no_allow_list(
    operator, prime_user, control, admin_client, settings, fault, unknown
):
    settings.PRIME_TIMEOUT_SECONDS = 1
    control.inject_fault(fault, "UpdatePrimeApiUserKey", seconds=2 if unknown else None)
    issued = services.key_issue(user=prime_user, actor=operator, whitelisted_ips=["192.0.2.7"])
    assert issued.secret
    assert issued.allowlist_error
    assert issued.allowlist_outcome_unknown is unknown
    key = ApiKey.objects.get(pk=issued.key.pk)
    assert key.no_allowlist_warning is True
    assert key.whitelisted_ips == []
    assert events(AuditAction.KEY_ISSUED)[0].outcome == Outcome.SUCCEEDED
    (allowlist,) = events(AuditAction.KEY_ALLOWLIST_CHANGED)
    assert allowlist.outcome == (Outcome.UNKNOWN if unknown else Outcome.FAILED)
    assert allowlist.after["whitelisted_ips"] == ["192.0.2.7"]
    if not unknown:
        assert admin_client.list_api_user_keys(prime_user.prime_id)[0].whitelisted_ips == ()
    # Saving an allow-list later clears the mark.
    services.key_update_allowlist(
        key=key, actor=operator, previewed_against=key.whitelisted_ips, entries=["192.0.2.7"]
    )
    key.refresh_from_db()
    assert key.no_allowlist_warning is False


@pytest.mark.parametrize("fault", ["rate_limit", "unavailable", "http_500"])
def test_a_refused_issue_leaves_nothing_locally_and_is_audited(
    operator, prime_user, control, fault
):
    control.inject_fault(fault, "CreatePrimeApiUserKey")
    with pytest.raises(services.PrimeActionFailed) as failure:
        services.key_issue(user=prime_user, actor=operator)
    assert not ApiKey.objects.exists()
    (event,) = events(AuditAction.KEY_ISSUED)
    assert event.outcome in (Outcome.FAILED, Outcome.UNKNOWN)
    assert event.message == failure.value.message


def test_an_issue_token_is_used_once(operator, prime_user, write_log):
    first = services.key_issue(user=prime_user, actor=operator, issue_token="tok-1")
    write_log.mark()
    with pytest.raises(services.KeyAlreadyIssued) as already:
        services.key_issue(user=prime_user, actor=operator, issue_token="tok-1")
    assert already.value.key == first.key
    assert write_log.writes() == []


def test_refused_entries_never_reach_kraken(operator, prime_user, write_log):
    key = services.key_issue(user=prime_user, actor=operator).key
    write_log.mark()
    for entries in (
        ["0.0.0.0/0"],
        ["::/0"],
        ["10.0.0.1", "nope"],
        [f"10.0.{i // 250}.{i % 250}" for i in range(101)],
    ):
        with pytest.raises(services.AllowlistRefused):
            services.key_update_allowlist(
                key=key, actor=operator, previewed_against=key.whitelisted_ips, entries=entries
            )
        with pytest.raises(services.AllowlistRefused):
            services.key_issue(user=prime_user, actor=operator, whitelisted_ips=entries)
    assert write_log.writes() == []


def test_update_allow_list_replaces_it_and_an_empty_list_clears_it(
    operator, prime_user, admin_client
):
    key = services.key_issue(user=prime_user, actor=operator, whitelisted_ips=["10.0.0.1"]).key
    services.key_update_allowlist(
        key=key,
        actor=operator,
        previewed_against=key.whitelisted_ips,
        entries=["10.0.0.2", "10.0.0.3"],
    )
    assert admin_client.list_api_user_keys(prime_user.prime_id)[0].whitelisted_ips == (
        "10.0.0.2",
        "10.0.0.3",
    )
    services.key_update_allowlist(
        key=key,
        actor=operator,
        entries=[],
        previewed_against=key.whitelisted_ips,
        confirm_anywhere=True,
    )
    assert admin_client.list_api_user_keys(prime_user.prime_id)[0].whitelisted_ips == ()
    key.refresh_from_db()
    assert key.whitelisted_ips == [] and key.usable_from_anywhere
    last = events(AuditAction.KEY_ALLOWLIST_CHANGED)[-1]
    assert (last.before["whitelisted_ips"], last.after["whitelisted_ips"]) == (
        ["10.0.0.2", "10.0.0.3"],
        [],
    )


def test_allow_list_of_a_key_deleted_outside_the_portal_is_refused_as_invalid(
    operator, prime_user, admin_client
):
    key = services.key_issue(user=prime_user, actor=operator).key
    admin_client.delete_api_user_key(prime_user.prime_id, key.prime_key_id)
    with pytest.raises(services.PrimeActionFailed) as failure:
        services.key_update_allowlist(
            key=key, actor=operator, previewed_against=key.whitelisted_ips, entries=["10.0.0.1"]
        )
    assert "Unknown key" in failure.value.message
    key.refresh_from_db()
    assert key.whitelisted_ips == []
    (event,) = events(AuditAction.KEY_ALLOWLIST_CHANGED)
    assert event.outcome == Outcome.FAILED


def test_revoke_deletes_only_that_key_and_records_who_and_why(operator, prime_user, admin_client):
    doomed = services.key_issue(user=prime_user, actor=operator).key
    kept = services.key_issue(user=prime_user, actor=operator, whitelisted_ips=["10.0.0.9"]).key
    services.key_revoke(key=doomed, actor=operator, reason="leaked in a ticket")
    assert [k.id for k in admin_client.list_api_user_keys(prime_user.prime_id)] == [
        kept.prime_key_id
    ]
    doomed.refresh_from_db()
    assert (doomed.revoked_by, doomed.revoke_reason) == (operator, "leaked in a ticket")
    assert doomed.revoked_at is not None
    kept.refresh_from_db()
    assert kept.revoked_at is None and kept.whitelisted_ips == ["10.0.0.9"]
    (event,) = events(AuditAction.KEY_REVOKED)
    assert (event.actor_label, event.message) == (operator.username, "leaked in a ticket")
    assert event.after["reason"] == "leaked in a ticket"
    assert event.target_id == doomed.prime_key_id


def test_a_revoke_that_times_out_is_unknown_and_resync_settles_it(
    operator, prime_user, control, settings
):
    from portal.keys.services import prime_sync

    key = services.key_issue(user=prime_user, actor=operator).key
    settings.PRIME_TIMEOUT_SECONDS = 1
    control.inject_fault("timeout_after_execute", "DeletePrimeApiUserKey", seconds=2)
    with pytest.raises(services.PrimeActionFailed) as failure:
        services.key_revoke(key=key, actor=operator, reason="rotate")
    assert failure.value.outcome_unknown
    key.refresh_from_db()
    assert key.revoked_at is None
    assert events(AuditAction.KEY_REVOKED)[0].outcome == Outcome.UNKNOWN
    prime_sync(actor=operator, user=prime_user)
    key.refresh_from_db()
    assert key.missing_upstream_at is not None and not key.is_active


def test_a_refused_issue_frees_its_form_token_and_an_unknown_one_keeps_it(
    operator, prime_user, control, settings, write_log
):
    control.inject_fault("rate_limit", "CreatePrimeApiUserKey")
    with pytest.raises(services.PrimeActionFailed):
        services.key_issue(user=prime_user, actor=operator, issue_token="tok-2")
    retried = services.key_issue(user=prime_user, actor=operator, issue_token="tok-2")
    assert retried.secret

    settings.PRIME_TIMEOUT_SECONDS = 1
    control.inject_fault("timeout_after_execute", "CreatePrimeApiUserKey", seconds=2)
    with pytest.raises(services.PrimeActionFailed):
        services.key_issue(user=prime_user, actor=operator, issue_token="tok-3")
    write_log.mark()
    with pytest.raises(services.KeyAlreadyIssued) as already:
        services.key_issue(user=prime_user, actor=operator, issue_token="tok-3")
    assert already.value.key is None
    assert write_log.writes() == []


@pytest.mark.django_db(transaction=True)
def test_a_form_sent_twice_at_once_issues_one_key(operator, prime_user, control, write_log):
    import threading

    from django.db import connection

    from portal.keys.models import KeyIssueRequest

    control.inject_fault("latency", "CreatePrimeApiUserKey", seconds=1)
    outcome = {}

    def first():
        try:
            outcome["first"] = services.key_issue(user=prime_user, actor=operator, issue_token="t")
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    # Wait until the first request holds the form's reservation (it is then at Kraken).
    while not KeyIssueRequest.objects.filter(token="t").exists():
        thread.join(0.01)
    with pytest.raises(services.KeyAlreadyIssued):
        services.key_issue(user=prime_user, actor=operator, issue_token="t")
    thread.join()
    assert outcome["first"].secret
    assert [c["endpoint"] for c in write_log.writes()] == ["CreatePrimeApiUserKey"]
    assert ApiKey.objects.count() == 1


def test_an_allow_list_changed_since_the_preview_is_refused_before_kraken(
    operator, prime_user, write_log
):
    key = services.key_issue(user=prime_user, actor=operator, whitelisted_ips=["10.0.0.1"]).key
    write_log.mark()
    with pytest.raises(services.AllowlistChangedSincePreview) as stale:
        services.key_update_allowlist(
            key=key, actor=operator, entries=["10.0.0.2"], previewed_against=[]
        )
    assert stale.value.message == services.ALLOWLIST_CHANGED_SINCE_PREVIEW
    assert write_log.writes() == []
    assert ApiKey.objects.get(pk=key.pk).whitelisted_ips == ["10.0.0.1"]


def test_an_empty_allow_list_needs_its_explicit_confirmation(operator, prime_user, write_log):
    key = services.key_issue(user=prime_user, actor=operator, whitelisted_ips=["10.0.0.1"]).key
    write_log.mark()
    with pytest.raises(services.EmptyAllowlistNotConfirmed) as unconfirmed:
        services.key_update_allowlist(
            key=key, actor=operator, entries=[], previewed_against=["10.0.0.1"]
        )
    assert unconfirmed.value.message == services.EMPTY_ALLOWLIST_NOT_CONFIRMED
    assert write_log.writes() == []
