"""Property: whatever is typed into any users form, the portal never answers 500, and
input the form refuses never reaches Kraken (the sandbox logs no write)."""

from __future__ import annotations

import pytest
from django.http import QueryDict
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.users.forms import PrimeUserCreateForm, RenameForm, RoleForm, StatusForm
from portal.users.models import PrimeUser
from tests.users.strategies import form_data, post, values

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _bound(form_class, data):
    query = QueryDict(mutable=True)
    for name, value in data.items():
        query.setlist(name, value if isinstance(value, list) else [value])
    return form_class(query)


def _role_may_write(data, user) -> bool:
    form = _bound(RoleForm, data)
    return (
        form.is_valid()
        and form.cleaned_data["role"] != user.role
        and form.cleaned_data["expected_role"] == user.role
    )


# (url name, takes the user id, fields, may this input change Kraken?)
USER_FORMS = [
    (
        "users:create",
        False,
        ("name", "role", "owner_label", "desk_label", "notes"),
        lambda data, user: _bound(PrimeUserCreateForm, data).is_valid(),
    ),
    ("users:rename", True, ("name",), lambda data, user: _bound(RenameForm, data).is_valid()),
    ("users:status", True, ("status",), lambda data, user: _bound(StatusForm, data).is_valid()),
    ("keys:user-role-preview", True, ("role",), lambda data, user: False),
    ("keys:user-role", True, ("role", "expected_role"), _role_may_write),
    ("users:labels", True, ("owner_label", "desk_label", "notes"), lambda data, user: False),
    ("keys:user-detail-resync", True, (), lambda data, user: False),
    ("keys:sync", False, (), lambda data, user: False),
]


@pytest.mark.parametrize(
    ("url_name", "per_user", "fields", "may_write"), USER_FORMS, ids=[f[0] for f in USER_FORMS]
)
@FUZZ
@given(st.data())
def test_users_forms_never_fail_and_refused_input_never_reaches_kraken(
    op_client, prime_user, write_log, url_name, per_user, fields, may_write, data
):
    user = PrimeUser.objects.get(pk=prime_user.pk)
    payload = data.draw(form_data(fields), label="payload")
    htmx = data.draw(st.booleans(), label="htmx")
    urlencoded = data.draw(st.booleans(), label="urlencoded")
    url = reverse(url_name, args=[user.prime_id]) if per_user else reverse(url_name)
    write_log.mark()
    allowed = may_write(payload, user)
    response = post(op_client, url, payload, htmx=htmx, urlencoded=urlencoded)
    assert response.status_code < 500, response.content[:300]
    if not allowed:
        assert write_log.writes() == []


@FUZZ
@given(q=values, role=values, status=values, after=values, before=values, htmx=st.booleans())
def test_the_users_list_never_fails_whatever_the_query(
    viewer_client, prime, q, role, status, after, before, htmx
):
    params = {"q": q, "role": role, "status": status, "after": after, "before": before}
    params = {k: v for k, v in params.items() if not (isinstance(v, str) and len(v) > 4000)}
    headers = {"HX-Request": "true"} if htmx else {}
    response = viewer_client.get(reverse("users:list"), params, headers=headers)
    assert response.status_code < 500


def test_a_body_over_the_upload_limit_is_refused_not_a_crash(op_client, prime_user, write_log):
    response = op_client.post(
        reverse("users:rename", args=[prime_user.prime_id]), {"name": "A" * 3_000_000}
    )
    assert response.status_code == 400
    assert write_log.writes() == []
