"""Property: whatever is typed into any key form, the portal never answers 500, and input
the form refuses never reaches Kraken (the sandbox logs no write)."""

from __future__ import annotations

import re

import pytest
from django.http import QueryDict
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.keys.forms import AllowlistForm, IssueForm, RevokeForm
from portal.keys.models import ApiKey
from portal.keys.services import key_issue
from tests.users.strategies import form_data, post

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _query(data) -> QueryDict:
    query = QueryDict(mutable=True)
    for name, value in data.items():
        query.setlist(name, value if isinstance(value, list) else [value])
    return query


def _issue_may_write(data, key) -> bool:
    return IssueForm(_query(data), user=key.user).is_valid()


def _allowlist_may_write(data, key) -> bool:
    form = AllowlistForm(_query(data))
    if not form.is_valid() or not key.is_active:
        return False
    if form.base_entries() != list(key.whitelisted_ips):
        return False
    return bool(form.parsed().entries) or form.cleaned_data["confirm_anywhere"]


def _revoke_may_write(data, key) -> bool:
    return key.revoked_at is None and RevokeForm(_query(data), key=key).is_valid()


KEY_FORMS = [
    ("keys:issue", "user", ("label", "whitelisted_ips", "token"), _issue_may_write),
    ("keys:allowlist-preview", "key", ("entries", "base", "confirm_anywhere"), None),
    ("keys:allowlist", "key", ("entries", "base", "confirm_anywhere"), _allowlist_may_write),
    ("keys:revoke", "key", ("public_key", "reason"), _revoke_may_write),
    ("keys:resync", "key", (), None),
    ("keys:user-resync", "user", (), None),
]


@pytest.fixture
def fuzz_key(prime_user, operator):
    return key_issue(user=prime_user, actor=operator, whitelisted_ips=["192.0.2.1"]).key


@pytest.mark.parametrize(
    ("url_name", "target", "fields", "may_write"), KEY_FORMS, ids=[f[0] for f in KEY_FORMS]
)
@FUZZ
@given(st.data())
def test_key_forms_never_fail_and_refused_input_never_reaches_kraken(
    op_client, fuzz_key, write_log, url_name, target, fields, may_write, data
):
    key = ApiKey.objects.select_related("user").get(pk=fuzz_key.pk)
    payload = data.draw(form_data(fields), label="payload")
    if url_name == "keys:issue" and data.draw(st.booleans(), label="real token"):
        # Half the time a genuine form token, so the other fields decide.
        page = op_client.get(reverse("keys:list", args=[key.user.prime_id])).content.decode()
        payload["token"] = re.search(r'name="token" value="([^"]+)"', page).group(1)
    htmx = data.draw(st.booleans(), label="htmx")
    urlencoded = data.draw(st.booleans(), label="urlencoded")
    arg = key.user.prime_id if target == "user" else key.prime_key_id
    write_log.mark()
    allowed = bool(may_write and may_write(payload, key))
    response = post(
        op_client, reverse(url_name, args=[arg]), payload, htmx=htmx, urlencoded=urlencoded
    )
    assert response.status_code < 500, response.content[:300]
    if not allowed:
        assert write_log.writes() == []


@FUZZ
@given(st.data())
def test_key_pages_never_fail_on_get_with_any_query(viewer_client, op_client, fuzz_key, data):
    params = data.draw(form_data(("entries", "base", "public_key")), label="query")
    params = {k: v for k, v in params.items() if not (isinstance(v, str) and len(v) > 4000)}
    htmx = data.draw(st.booleans(), label="htmx")
    headers = {"HX-Request": "true"} if htmx else {}
    for client, name, arg in (
        (viewer_client, "keys:list", fuzz_key.user.prime_id),
        (viewer_client, "keys:row", fuzz_key.prime_key_id),
        (op_client, "keys:allowlist", fuzz_key.prime_key_id),
        (op_client, "keys:revoke", fuzz_key.prime_key_id),
        (op_client, "keys:issue", fuzz_key.user.prime_id),
    ):
        assert client.get(reverse(name, args=[arg]), params, headers=headers).status_code < 500
