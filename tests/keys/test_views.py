"""Key pages, with and without HX-Request, against the sandbox."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.keys import services, views
from portal.keys.models import ApiKey
from portal.keys.services import key_issue
from tests.users.conftest import HX

pytestmark = pytest.mark.django_db


def is_fragment(response) -> bool:
    body = response.content.decode()
    return "<html" not in body and "<header" not in body


def issue_form_data(client, user, **fields) -> dict:
    page = client.get(reverse("keys:list", args=[user.prime_id])).content.decode()
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    return {"token": token, "label": "", "whitelisted_ips": "", **fields}


@pytest.fixture
def key(prime_user, operator):
    return key_issue(user=prime_user, actor=operator, label="pricing").key


# --- the list --------------------------------------------------------------------------------


def test_a_users_keys_page_shows_every_column(viewer_client, prime_user, operator):
    key = key_issue(
        user=prime_user, actor=operator, label="pricing", whitelisted_ips=["192.0.2.0/24"]
    ).key
    response = viewer_client.get(reverse("keys:list", args=[prime_user.prime_id]))
    body = response.content.decode()
    for text in (
        key.prime_key_id,
        key.public_key.replace("+", "&#x2B;") if False else key.public_key,
        "read::marketdata",
        "192.0.2.0/24",
        "pricing",
        operator.username,
        key.created_at.strftime("%Y-%m-%d"),
    ):
        assert text in body
    assert "Issue a key" not in body  # a Viewer cannot issue
    assert f"target_type=key&amp;target_id={key.prime_key_id}" in body
    response = viewer_client.get(reverse("keys:list", args=[prime_user.prime_id]), headers=HX)
    assert is_fragment(response) and 'id="keys-page"' in response.content.decode()


# --- issue -----------------------------------------------------------------------------------


def test_issue_shows_the_secret_once_on_a_no_store_page(op_client, prime_user, write_log):
    data = issue_form_data(op_client, prime_user, label="bot")
    url = reverse("keys:issue", args=[prime_user.prime_id])
    response = op_client.post(url, data)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    assert 'hx-history="false"' in body
    secret = re.search(r'id="secret-value">([^<]+)<', body).group(1)
    assert len(secret) == 88  # base64 of 64 bytes
    assert "I have stored it" in body and "Copy secret" in body
    assert len(write_log.writes()) == 1

    # Opening the URL again shows nothing secret.
    again = op_client.get(url)
    assert again.status_code == 200
    assert "no-store" in again["Cache-Control"]
    assert secret not in again.content.decode()
    assert "not shown again" in again.content.decode()
    # Resubmitting the same form (reload after POST) issues nothing and shows nothing.
    resubmitted = op_client.post(url, data)
    assert secret not in resubmitted.content.decode()
    assert "not shown again" in resubmitted.content.decode()
    assert len(write_log.writes()) == 1
    assert ApiKey.objects.count() == 1
    # The keys page never shows it either.
    assert (
        secret
        not in op_client.get(reverse("keys:list", args=[prime_user.prime_id])).content.decode()
    )


def test_issue_over_htmx_returns_only_the_secret_panel(op_client, prime_user):
    data = issue_form_data(op_client, prime_user)
    response = op_client.post(reverse("keys:issue", args=[prime_user.prime_id]), data, headers=HX)
    assert response.status_code == 200
    assert is_fragment(response)
    body = response.content.decode()
    assert '<section id="issue-panel" class="panel secret-panel" hx-history="false">' in body
    assert "no-store" in response["Cache-Control"]
    assert 'id="secret-value"' in body


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_issue_with_bad_allow_list_names_the_entry_and_sends_nothing(
    op_client, prime_user, write_log, headers
):
    data = issue_form_data(op_client, prime_user, whitelisted_ips="10.0.0.1\nnot-an-ip\n0.0.0.0/0")
    response = op_client.post(
        reverse("keys:issue", args=[prime_user.prime_id]), data, headers=headers
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "not-an-ip" in body and "0.0.0.0/0" in body
    assert "secret-value" not in body
    assert write_log.writes() == []


def test_issue_with_a_forged_or_foreign_token_is_refused(op_client, make_prime_user, write_log):
    alice, bob = make_prime_user(name="Alice"), make_prime_user(name="Bob")
    write_log.mark()
    foreign = issue_form_data(op_client, bob)
    for token in ("forged", foreign["token"]):
        response = op_client.post(
            reverse("keys:issue", args=[alice.prime_id]), {"token": token}, headers=HX
        )
        assert response.status_code == 422
        assert "expired" in response.content.decode()
    assert write_log.writes() == []


def test_issue_with_allow_list_that_fails_says_so_plainly(op_client, prime_user, control):
    control.inject_fault("unavailable", "UpdatePrimeApiUserKey")
    data = issue_form_data(op_client, prime_user, whitelisted_ips="192.0.2.1")
    response = op_client.post(reverse("keys:issue", args=[prime_user.prime_id]), data, headers=HX)
    body = response.content.decode()
    assert "The key was issued, but its allow-list was not set." in body
    assert 'id="secret-value"' in body  # the secret is still shown: the key exists
    key = ApiKey.objects.get()
    assert key.no_allowlist_warning
    page = op_client.get(reverse("keys:list", args=[prime_user.prime_id])).content.decode()
    assert "no allow-list" in page


@pytest.mark.parametrize(
    ("fault", "words"),
    [("rate_limit", "rate-limiting"), ("unavailable", "unavailable")],
)
def test_issue_refused_by_kraken_shows_why_and_keeps_nothing(
    op_client, prime_user, control, fault, words
):
    control.inject_fault(fault, "CreatePrimeApiUserKey")
    data = issue_form_data(op_client, prime_user)
    response = op_client.post(reverse("keys:issue", args=[prime_user.prime_id]), data, headers=HX)
    body = response.content.decode()
    assert words in body and 'id="issue-panel"' in body
    assert not ApiKey.objects.exists()


def test_issue_with_unknown_outcome_offers_resync(op_client, prime_user, control, settings):
    settings.PRIME_TIMEOUT_SECONDS = 1
    control.inject_fault("timeout_after_execute", "CreatePrimeApiUserKey", seconds=2)
    data = issue_form_data(op_client, prime_user)
    response = op_client.post(reverse("keys:issue", args=[prime_user.prime_id]), data, headers=HX)
    body = response.content.decode()
    assert "Outcome unknown — resync" in body
    assert not ApiKey.objects.exists()
    assert AuditEvent.objects.get(action=AuditAction.KEY_ISSUED).outcome == Outcome.UNKNOWN
    response = op_client.post(reverse("keys:user-resync", args=[prime_user.prime_id]), headers=HX)
    assert response.status_code == 200
    key = ApiKey.objects.get()
    assert key.prime_key_id in response.content.decode()
    assert views.USER_KEYS_RESYNCED.format(count=1) in response.content.decode()


# --- allow-list editor -----------------------------------------------------------------------


def test_the_editor_opens_in_place(op_client, key):
    response = op_client.get(reverse("keys:allowlist", args=[key.prime_key_id]), headers=HX)
    body = response.content.decode()
    assert is_fragment(response)
    assert body.strip().startswith(f'<tbody id="key-{key.prime_key_id}"')
    assert "<textarea" in body
    full = op_client.get(reverse("keys:allowlist", args=[key.prime_key_id]))
    assert not is_fragment(full) and "<textarea" in full.content.decode()


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_allow_list_preview_then_save(op_client, key, admin_client, write_log, headers):
    write_log.mark()
    preview = op_client.post(
        reverse("keys:allowlist-preview", args=[key.prime_key_id]),
        {"entries": "192.0.2.9\n10.9.9.9/8\n192.0.2.9"},
        headers=headers,
    )
    assert preview.status_code == 200
    body = preview.content.decode()
    assert '<li class="diff-add">+ <code>192.0.2.9</code></li>' in body
    assert '<li class="diff-add">+ <code>10.0.0.0/8</code></li>' in body
    assert "host bits set" in body
    assert write_log.writes() == []
    entries = re.search(r'<textarea name="entries" hidden readonly>([^<]*)<', body).group(1)
    saved = op_client.post(
        reverse("keys:allowlist", args=[key.prime_key_id]),
        {"entries": entries, "base": ""},
        headers=headers,
    )
    assert saved.status_code == (200 if headers else 302)
    assert [c["endpoint"] for c in write_log.writes()] == ["UpdatePrimeApiUserKey"]
    (upstream,) = admin_client.list_api_user_keys(key.user.prime_id)
    assert upstream.whitelisted_ips == ("192.0.2.9", "10.0.0.0/8")
    key.refresh_from_db()
    assert key.whitelisted_ips == ["192.0.2.9", "10.0.0.0/8"]

    # Removing one shows it as removed.
    body = op_client.post(
        reverse("keys:allowlist-preview", args=[key.prime_key_id]),
        {"entries": "192.0.2.9"},
        headers=HX,
    ).content.decode()
    assert '<li class="diff-del">\u2212 <code>10.0.0.0/8</code></li>' in body


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
@pytest.mark.parametrize(
    ("entries", "named"),
    [
        ("192.0.2.1\nbogus\n10.0.0.300", ["bogus", "10.0.0.300"]),
        ("0.0.0.0/0", ["0.0.0.0/0"]),
        ("::/0", ["::/0"]),
        ("\n".join(f"10.1.{i // 200}.{i % 200}" for i in range(101)), ["at most 100"]),
    ],
)
def test_bad_allow_lists_are_refused_naming_each_problem(
    op_client, key, write_log, headers, entries, named
):
    write_log.mark()
    for url in ("keys:allowlist-preview", "keys:allowlist"):
        response = op_client.post(
            reverse(url, args=[key.prime_key_id]), {"entries": entries}, headers=headers
        )
        assert response.status_code == 422
        body = response.content.decode()
        for text in named:
            assert text in body
    assert write_log.writes() == []


def test_saving_an_empty_list_needs_the_anywhere_confirmation(
    op_client, prime_user, operator, approve
):
    key = key_issue(user=prime_user, actor=operator, whitelisted_ips=["192.0.2.1"]).key
    preview = op_client.post(
        reverse("keys:allowlist-preview", args=[key.prime_key_id]), {"entries": ""}, headers=HX
    ).content.decode()
    assert "usable from <strong>any address</strong>" in preview
    assert 'name="confirm_anywhere"' in preview
    url = reverse("keys:allowlist", args=[key.prime_key_id])
    refused = op_client.post(url, {"entries": "", "base": "192.0.2.1"}, headers=HX)
    assert refused.status_code == 422
    assert "tick the box" in refused.content.decode()
    assert services.EMPTY_ALLOWLIST_NOT_CONFIRMED in refused.content.decode()
    key.refresh_from_db()
    assert key.whitelisted_ips == ["192.0.2.1"]
    done = op_client.post(
        url, {"entries": "", "base": "192.0.2.1", "confirm_anywhere": "on"}, headers=HX
    )
    assert done.status_code == 200
    # Emptying the list widens it to anywhere: it waits for an approver (issue 11).
    assert "Sent for approval" in done.content.decode()
    key.refresh_from_db()
    assert key.whitelisted_ips == ["192.0.2.1"]
    approve()
    key.refresh_from_db()
    assert key.whitelisted_ips == []
    row = op_client.get(reverse("keys:row", args=[key.prime_key_id]), headers=HX)
    assert "anywhere" in row.content.decode()


def test_saving_over_a_changed_allow_list_previews_again(op_client, key, write_log):
    write_log.mark()
    response = op_client.post(
        reverse("keys:allowlist", args=[key.prime_key_id]),
        {"entries": "192.0.2.1", "base": "198.51.100.1"},
        headers=HX,
    )
    assert response.status_code == 409
    assert "changed since your preview" in response.content.decode()
    assert services.ALLOWLIST_CHANGED_SINCE_PREVIEW in response.content.decode()
    assert write_log.writes() == []


def test_unchanged_allow_list_has_nothing_to_save(op_client, key):
    response = op_client.post(
        reverse("keys:allowlist-preview", args=[key.prime_key_id]), {"entries": ""}, headers=HX
    )
    assert "nothing to save" in response.content.decode()
    assert views.ALLOWLIST_UNCHANGED in response.content.decode()


@pytest.mark.parametrize(
    ("fault", "words"),
    [("rate_limit", "rate-limiting"), ("unavailable", "unavailable")],
)
def test_allow_list_refused_by_kraken_shows_why_in_the_row(op_client, key, control, fault, words):
    control.inject_fault(fault, "UpdatePrimeApiUserKey")
    response = op_client.post(
        reverse("keys:allowlist", args=[key.prime_key_id]),
        {"entries": "192.0.2.1", "base": ""},
        headers=HX,
    )
    body = response.content.decode()
    assert body.strip().startswith(f'<tbody id="key-{key.prime_key_id}"')
    assert words in body
    key.refresh_from_db()
    assert key.whitelisted_ips == []
    assert AuditEvent.objects.get(action=AuditAction.KEY_ALLOWLIST_CHANGED).outcome == "failed"


def test_allow_list_invalid_arguments_from_kraken(op_client, key, admin_client):
    admin_client.delete_api_user_key(key.user.prime_id, key.prime_key_id)
    response = op_client.post(
        reverse("keys:allowlist", args=[key.prime_key_id]),
        {"entries": "192.0.2.1", "base": ""},
        headers=HX,
    )
    assert "Kraken refused the request as invalid: Unknown key" in response.content.decode()


def test_allow_list_permission_denied_from_kraken(op_client, key, admin_client, settings):
    from portal.connection import door as portal_prime

    other = admin_client.create_api_user_key(key.user.prime_id)
    settings.PRIME_API_KEY, settings.PRIME_API_SECRET = other.api_key, other.api_secret
    portal_prime.forget_clients()
    response = op_client.post(
        reverse("keys:allowlist", args=[key.prime_key_id]),
        {"entries": "192.0.2.1", "base": ""},
        headers=HX,
    )
    assert "lacks the permission" in response.content.decode()
    key.refresh_from_db()
    assert key.whitelisted_ips == []


def test_allow_list_timeout_offers_resync_in_the_row(op_client, key, control, settings):
    settings.PRIME_TIMEOUT_SECONDS = 1
    control.inject_fault("timeout_after_execute", "UpdatePrimeApiUserKey", seconds=2)
    response = op_client.post(
        reverse("keys:allowlist", args=[key.prime_key_id]),
        {"entries": "192.0.2.1", "base": ""},
        headers=HX,
    )
    body = response.content.decode()
    assert "Outcome unknown — resync" in body
    assert reverse("keys:resync", args=[key.prime_key_id]) in body
    key.refresh_from_db()
    assert key.whitelisted_ips == []
    resynced = op_client.post(reverse("keys:resync", args=[key.prime_key_id]), headers=HX)
    assert "192.0.2.1" in resynced.content.decode()
    key.refresh_from_db()
    assert key.whitelisted_ips == ["192.0.2.1"]


# --- revoke ----------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_revoke_needs_the_public_key_typed_and_a_reason(
    op_client, prime_user, operator, admin_client, write_log, headers
):
    doomed = key_issue(user=prime_user, actor=operator).key
    kept = key_issue(user=prime_user, actor=operator).key
    write_log.mark()
    url = reverse("keys:revoke", args=[doomed.prime_key_id])
    form = op_client.get(url, headers=headers)
    assert "Type the key" in form.content.decode()
    wrong = op_client.post(url, {"public_key": kept.public_key, "reason": "x"}, headers=headers)
    assert wrong.status_code == 422
    assert "not this key" in wrong.content.decode()
    no_reason = op_client.post(
        url, {"public_key": doomed.public_key, "reason": "  "}, headers=headers
    )
    assert no_reason.status_code == 422
    assert write_log.writes() == []
    done = op_client.post(
        url, {"public_key": f"  {doomed.public_key} ", "reason": "leaked"}, headers=headers
    )
    if headers:
        assert done.status_code == 200
        body = done.content.decode()
        assert body.strip().startswith(f'<tbody id="key-{doomed.prime_key_id}"')
        assert "revoked" in body and "leaked" in body
    else:
        assert done.status_code == 302
    assert [k.id for k in admin_client.list_api_user_keys(prime_user.prime_id)] == [
        kept.prime_key_id
    ]
    event = AuditEvent.objects.get(action=AuditAction.KEY_REVOKED)
    assert (event.actor_label, event.message) == (operator.username, "leaked")


def test_revoke_refused_by_kraken_keeps_the_key(op_client, key, control):
    control.inject_fault("unavailable", "DeletePrimeApiUserKey")
    response = op_client.post(
        reverse("keys:revoke", args=[key.prime_key_id]),
        {"public_key": key.public_key, "reason": "rotate"},
        headers=HX,
    )
    assert "unavailable" in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None


def test_viewers_cannot_touch_keys(viewer_client, key, write_log):
    write_log.mark()
    for name, data in (
        ("keys:allowlist", {"entries": "192.0.2.1"}),
        ("keys:allowlist-preview", {"entries": "192.0.2.1"}),
        ("keys:revoke", {"public_key": key.public_key, "reason": "x"}),
        ("keys:resync", {}),
    ):
        assert viewer_client.post(reverse(name, args=[key.prime_key_id]), data).status_code == 403
    issue = reverse("keys:issue", args=[key.user.prime_id])
    assert viewer_client.post(issue, {}).status_code == 403
    assert viewer_client.get(reverse("keys:allowlist", args=[key.prime_key_id])).status_code == 403
    assert write_log.writes() == []


def _keys_page_queries(client, user, n_keys: int) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    ApiKey.objects.filter(user=user).delete()
    ApiKey.objects.bulk_create(
        [
            ApiKey(
                prime_key_id=f"K{i:012d}",
                user=user,
                public_key=f"pub{i}",
                permissions=["read::orders"],
                whitelisted_ips=["192.0.2.1"],
                created_at=timezone.now(),
                revoked_at=timezone.now() if i % 3 == 0 else None,
            )
            for i in range(n_keys)
        ]
    )
    url = reverse("keys:list", args=[user.prime_id])
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries.captured_queries)


def test_the_keys_page_costs_the_same_queries_for_3_or_60_keys(op_client, prime_user):
    assert _keys_page_queries(op_client, prime_user, 3) == _keys_page_queries(
        op_client, prime_user, 60
    )


def test_issue_whose_allow_list_call_times_out_says_it_may_or_may_not_be_set(
    op_client, prime_user, control, settings
):
    settings.PRIME_TIMEOUT_SECONDS = 1
    control.inject_fault("timeout_after_execute", "UpdatePrimeApiUserKey", seconds=2)
    data = issue_form_data(op_client, prime_user, whitelisted_ips="192.0.2.1")
    response = op_client.post(reverse("keys:issue", args=[prime_user.prime_id]), data, headers=HX)
    body = response.content.decode()
    assert "it may or may not be set" in body
    assert 'id="secret-value"' in body
    key = ApiKey.objects.get()
    assert reverse("keys:resync", args=[key.prime_key_id]) in body
    op_client.post(reverse("keys:resync", args=[key.prime_key_id]))
    key.refresh_from_db()
    assert key.whitelisted_ips == ["192.0.2.1"] and not key.no_allowlist_warning
