"""Prime users pages, with and without HX-Request, against the sandbox."""

from __future__ import annotations

import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.keys.services import ROLE_ALREADY_HELD, ROLE_CHANGED_SINCE_PREVIEW, key_issue
from portal.users.models import PrimeUser
from tests.users.conftest import HX

pytestmark = pytest.mark.django_db


def mirror_users(n: int, **fields) -> None:
    now = timezone.now()
    PrimeUser.objects.bulk_create(
        [
            PrimeUser(
                prime_id=f"U{i:012d}",
                name=f"user {i:04d}",
                role=fields.get("role", "Viewer" if i % 2 else "Trader"),
                status=fields.get("status", "Enabled"),
                created_at=now,
                last_synced_at=now,
            )
            for i in range(n)
        ]
    )


def pager_link(response, label: str) -> str | None:
    found = re.search(r'<a href="([^"]+)"[^>]*>[^<]*' + label, response.content.decode())
    return html.unescape(found.group(1)) if found else None


def is_fragment(response) -> bool:
    body = response.content.decode()
    return "<html" not in body and "<header" not in body


# --- list ----------------------------------------------------------------------------------


def test_the_list_shows_the_mirror_with_labels_and_key_counts(
    viewer_client, make_prime_user, operator
):
    user = make_prime_user(name="FX bot", owner_label="Ann", desk_label="FX", notes="night runs")
    key_issue(user=user, actor=operator)
    response = viewer_client.get(reverse("users:list"))
    assert response.status_code == 200
    body = response.content.decode()
    for text in ("FX bot", user.prime_id, "Viewer", "Enabled", "Ann", "night runs"):
        assert text in body
    assert 'hx-trigger="input changed delay:300ms, search"' in body
    assert 'hx-push-url="true"' in body


def test_search_and_filters_answer_htmx_with_only_the_results(viewer_client, prime):
    mirror_users(6)
    PrimeUser.objects.filter(prime_id="U000000000001").update(
        name="Special desk", status="Disabled"
    )
    response = viewer_client.get(reverse("users:list"), {"q": "special"}, headers=HX)
    assert response.status_code == 200
    assert is_fragment(response)
    body = response.content.decode()
    assert 'id="user-results"' in body
    assert "Special desk" in body and "user 0002" not in body
    response = viewer_client.get(
        reverse("users:list"), {"role": "Trader", "status": "Enabled"}, headers=HX
    )
    body = response.content.decode()
    assert "user 0000" in body and "user 0002" in body and "Special desk" not in body
    assert "user 0003" not in body  # a Viewer
    response = viewer_client.get(reverse("users:list"), {"status": "Disabled"})
    assert "Special desk" in response.content.decode() and not is_fragment(response)


def test_bad_filter_values_are_ignored_not_refused(viewer_client, prime):
    mirror_users(3)
    response = viewer_client.get(
        reverse("users:list"),
        {"q": "x\x00y", "role": "Boss", "status": "??", "after": "%%%", "before": "a" * 900},
    )
    assert response.status_code == 200


def test_the_list_is_paginated_by_cursor_without_counting(viewer_client, prime):
    mirror_users(120)
    with CaptureQueriesContext(connection) as queries:
        first = viewer_client.get(reverse("users:list"))
    assert not any("COUNT(*)" in q["sql"].upper() for q in queries.captured_queries)
    body = first.content.decode()
    assert "user 0049" in body and "user 0050" not in body
    second = viewer_client.get(pager_link(first, "Next"), headers=HX)
    body = second.content.decode()
    assert "user 0050" in body and "user 0099" in body and "user 0049" not in body
    third = viewer_client.get(pager_link(second, "Next"))
    assert "user 0119" in third.content.decode()
    assert pager_link(third, "Next") is None
    back = viewer_client.get(pager_link(third, "Previous"))
    body = back.content.decode()
    assert "user 0050" in body and "user 0099" in body and "user 0100" not in body
    assert pager_link(back, "First") == reverse("users:list")


def _list_queries(client, n_users: int) -> int:
    PrimeUser.objects.all().delete()
    mirror_users(n_users)
    client.get(reverse("users:list"))  # warm the session and permission caches
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("users:list"))
    assert response.status_code == 200
    return len(queries.captured_queries)


def test_the_list_costs_the_same_queries_for_10_or_500_users(viewer_client, prime):
    assert _list_queries(viewer_client, 10) == _list_queries(viewer_client, 500)


def test_the_list_selector_is_one_query(prime, django_assert_num_queries):
    from portal.users.selectors import prime_user_list

    mirror_users(500)
    with django_assert_num_queries(1):
        page = prime_user_list(search="user", role="Trader")
    assert len(page.rows) == 50


# --- create ----------------------------------------------------------------------------------


def test_create_redirects_to_the_new_user(op_client, admin_client):
    response = op_client.post(
        reverse("users:create"), {"name": "New bot", "role": "Trader", "desk_label": "Rates"}
    )
    user = PrimeUser.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("users:detail", args=[user.prime_id])
    assert admin_client.get_api_user(user.prime_id).role == "Trader"
    assert user.desk_label == "Rates"


def test_create_over_htmx_redirects_the_client(op_client, prime):
    response = op_client.post(
        reverse("users:create"), {"name": "New bot", "role": "Viewer"}, headers=HX
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse(
        "users:detail", args=[PrimeUser.objects.get().prime_id]
    )


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_create_with_bad_input_names_the_problem_and_sends_nothing(op_client, write_log, headers):
    response = op_client.post(
        reverse("users:create"), {"name": "tab\there", "role": "Admin"}, headers=headers
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "printable characters" in body
    assert "Select a valid choice" in body
    assert is_fragment(response) == bool(headers)
    assert write_log.writes() == []
    assert not PrimeUser.objects.exists()


def test_create_shows_krakens_refusal_next_to_the_form(op_client, control):
    control.inject_fault("unavailable", "CreatePrimeApiUser")
    response = op_client.post(
        reverse("users:create"), {"name": "New bot", "role": "Viewer"}, headers=HX
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="create-form"' in body
    assert "Kraken is unavailable" in body
    assert not PrimeUser.objects.exists()


def test_create_with_unknown_outcome_offers_a_resync(op_client, control, settings):
    settings.PRIME_TIMEOUT_SECONDS = 1
    control.inject_fault("timeout_after_execute", "CreatePrimeApiUser", seconds=2)
    response = op_client.post(
        reverse("users:create"), {"name": "Maybe bot", "role": "Viewer"}, headers=HX
    )
    body = response.content.decode()
    assert "Outcome unknown — resync" in body
    assert reverse("keys:sync") in body
    assert not PrimeUser.objects.exists()
    response = op_client.post(reverse("keys:sync"), headers=HX)
    assert response["HX-Redirect"] == reverse("users:list")
    assert PrimeUser.objects.get().name == "Maybe bot"


# --- one user --------------------------------------------------------------------------------


def test_detail_shows_the_user_and_links_its_keys_and_history(viewer_client, prime_user):
    response = viewer_client.get(reverse("users:detail", args=[prime_user.prime_id]))
    body = response.content.decode()
    assert prime_user.name in body
    assert reverse("keys:list", args=[prime_user.prime_id]) in body
    assert f"target_type=prime_user&amp;target_id={prime_user.prime_id}" in body
    assert "Preview role change" not in body  # a Viewer sees no actions
    response = viewer_client.get(reverse("users:detail", args=[prime_user.prime_id]), headers=HX)
    assert is_fragment(response) and 'id="user-panel"' in response.content.decode()


def test_an_unknown_user_is_404(viewer_client, prime):
    assert viewer_client.get(reverse("users:detail", args=["NOPE"])).status_code == 404


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_rename_disable_enable_and_labels(op_client, prime_user, admin_client, approve, headers):
    url = lambda name: reverse(f"users:{name}", args=[prime_user.prime_id])  # noqa: E731
    response = op_client.post(url("rename"), {"name": "Bot two"}, headers=headers)
    if headers:
        assert response.status_code == 200 and is_fragment(response)
        assert "Bot two" in response.content.decode()
    else:
        assert response.status_code == 302
    op_client.post(url("status"), {"status": "Disabled"}, headers=headers)
    assert admin_client.get_api_user(prime_user.prime_id).status == "Disabled"
    # Enabling needs an approver (issue 11): the Operator's click only asks for it.
    response = op_client.post(url("status"), {"status": "Enabled"}, headers=headers)
    assert admin_client.get_api_user(prime_user.prime_id).status == "Disabled"
    assert "Sent for approval" in op_client.get(url("detail")).content.decode() or headers
    approve()
    assert admin_client.get_api_user(prime_user.prime_id).status == "Enabled"
    op_client.post(
        url("labels"), {"owner_label": "Ann", "desk_label": "FX", "notes": "x"}, headers=headers
    )
    prime_user.refresh_from_db()
    assert (prime_user.name, prime_user.status, prime_user.owner_label) == (
        "Bot two",
        "Enabled",
        "Ann",
    )


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_bad_rename_and_status_are_422_and_send_nothing(op_client, prime_user, write_log, headers):
    url = lambda name: reverse(f"users:{name}", args=[prime_user.prime_id])  # noqa: E731
    response = op_client.post(url("rename"), {"name": "x" * 65}, headers=headers)
    assert response.status_code == 422
    assert "at most 64" in response.content.decode()
    response = op_client.post(url("status"), {"status": "Deleted"}, headers=headers)
    assert response.status_code == 422
    response = op_client.post(url("labels"), {"owner_label": "o" * 101}, headers=headers)
    assert response.status_code == 422
    assert write_log.writes() == []


def test_rename_refused_by_kraken_shows_why_in_the_panel(op_client, prime_user, control):
    control.inject_fault("rate_limit", "UpdatePrimeApiUser")
    response = op_client.post(
        reverse("users:rename", args=[prime_user.prime_id]), {"name": "Bot two"}, headers=HX
    )
    body = response.content.decode()
    assert 'id="user-panel"' in body
    assert "rate-limiting" in body
    assert PrimeUser.objects.get(pk=prime_user.pk).name == "Alice Trading Bot"


def test_timeout_on_a_write_offers_resync_which_reconciles(
    op_client, prime_user, control, settings
):
    settings.PRIME_TIMEOUT_SECONDS = 1
    control.inject_fault("timeout_after_execute", "UpdatePrimeApiUser", seconds=2)
    response = op_client.post(
        reverse("users:status", args=[prime_user.prime_id]), {"status": "Disabled"}, headers=HX
    )
    body = response.content.decode()
    assert "Outcome unknown — resync" in body
    assert reverse("keys:user-detail-resync", args=[prime_user.prime_id]) in body
    assert PrimeUser.objects.get(pk=prime_user.pk).status == "Enabled"
    (event,) = AuditEvent.objects.filter(action=AuditAction.PRIME_USER_DISABLED)
    assert event.outcome == Outcome.UNKNOWN
    response = op_client.post(
        reverse("keys:user-detail-resync", args=[prime_user.prime_id]), headers=HX
    )
    assert response.status_code == 200
    assert PrimeUser.objects.get(pk=prime_user.pk).status == "Disabled"
    assert AuditEvent.objects.filter(action=AuditAction.SYNC_DIFFERENCE).count() == 1


# --- role change -----------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_role_change_previews_then_sends(
    op_client, prime_user, operator, write_log, approve, headers
):
    key = key_issue(user=prime_user, actor=operator, label="pricing").key
    write_log.mark()
    preview = op_client.post(
        reverse("keys:user-role-preview", args=[prime_user.prime_id]),
        {"role": "Trader"},
        headers=headers,
    )
    assert preview.status_code == 200
    body = preview.content.decode()
    assert "Viewer" in body and "Trader" in body
    assert "write::orders" in body  # gained
    assert key.prime_key_id in body  # affected
    assert "Send the role change to Kraken" in body
    assert write_log.writes() == []  # nothing sent by the preview
    assert is_fragment(preview) == bool(headers)

    confirm = op_client.post(
        reverse("keys:user-role", args=[prime_user.prime_id]),
        {"role": "Trader", "expected_role": "Viewer"},
        headers=headers,
    )
    # Viewer -> Trader needs an approver (issue 11): the click sends it for approval.
    prime_user.refresh_from_db()
    assert prime_user.role == "Viewer" and write_log.writes() == []
    if headers:
        assert confirm.status_code == 200 and is_fragment(confirm)
        assert 'id="user-panel"' in confirm.content.decode()
        assert "Sent for approval" in confirm.content.decode()
    else:
        assert confirm.status_code == 302
    approve()
    prime_user.refresh_from_db()
    assert prime_user.role == "Trader"
    panel = op_client.get(reverse("users:detail", args=[prime_user.prime_id]), headers=headers)
    assert '<td class="role-cell">Trader</td>' in panel.content.decode()
    assert [c["endpoint"] for c in write_log.writes()] == ["UpdatePrimeApiUserRoles"]
    event = AuditEvent.objects.get(action=AuditAction.PRIME_USER_ROLE_CHANGED)
    assert (event.before["role"], event.after["role"]) == ("Viewer", "Trader")


def test_role_preview_shows_what_keys_lose(op_client, make_prime_user, operator):
    user = make_prime_user(role="Trader")
    key_issue(user=user, actor=operator)
    body = op_client.post(
        reverse("keys:user-role-preview", args=[user.prime_id]), {"role": "Viewer"}, headers=HX
    ).content.decode()
    assert '<code class="diff-del">write::orders</code>' in body


def test_role_confirm_after_someone_else_changed_it_shows_a_new_preview(
    op_client, prime_user, admin_client, write_log
):
    # The preview said Viewer → Trader; meanwhile the role became Trader, then someone asks
    # for Viewer with the old preview's expectation: the portal previews again instead.
    PrimeUser.objects.filter(pk=prime_user.pk).update(role="Trader")
    response = op_client.post(
        reverse("keys:user-role", args=[prime_user.prime_id]),
        {"role": "Viewer", "expected_role": "Viewer"},
        headers=HX,
    )
    assert response.status_code == 409
    assert "changed since your preview" in response.content.decode()
    assert ROLE_CHANGED_SINCE_PREVIEW in response.content.decode()
    assert write_log.writes() == []


def test_role_preview_to_the_same_role_is_refused(op_client, prime_user):
    response = op_client.post(
        reverse("keys:user-role-preview", args=[prime_user.prime_id]),
        {"role": "Viewer"},
        headers=HX,
    )
    assert response.status_code == 422
    assert "already has the Viewer role" in response.content.decode()
    assert ROLE_ALREADY_HELD.format(name=prime_user.name, role="Viewer") in html.unescape(
        response.content.decode()
    )


def test_a_viewer_cannot_change_anything(viewer_client, prime_user, write_log):
    for name, data in (
        ("users:rename", {"name": "x"}),
        ("users:status", {"status": "Disabled"}),
        ("keys:user-role", {"role": "Trader", "expected_role": "Viewer"}),
        ("keys:user-role-preview", {"role": "Trader"}),
        ("users:labels", {"notes": "x"}),
        ("keys:user-detail-resync", {}),
    ):
        response = viewer_client.post(reverse(name, args=[prime_user.prime_id]), data)
        assert response.status_code == 403, name
    assert (
        viewer_client.post(reverse("users:create"), {"name": "x", "role": "Viewer"}).status_code
        == 403
    )
    assert write_log.writes() == []
