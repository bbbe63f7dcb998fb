"""Property: whatever is put into any GET parameter of any list page, with or without
HX-Request, the portal never answers 5xx (bad input is ignored or refused plainly)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.audit.forms import AuditFilterForm
from portal.users.models import PrimeUser

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Every list page and the GET parameters it reads.
LIST_PAGES = {
    "users:list": ("q", "role", "status", "after", "before"),
    "settlement:batch-list": ("status", "created_from", "created_until", "older", "newer", "page"),
    "audit:list": (*AuditFilterForm.base_fields, "format"),
    "audit:export": (*AuditFilterForm.base_fields, "format"),
}

# Text of every kind, lone surrogates included (a browser sends them as bytes that are not
# UTF-8; a JSON cursor can spell them as \ud800).
any_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=60)
huge_numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), 2**64, 10**40]),
).map(str)
extreme_dates = st.one_of(
    st.dates().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat(timespec="minutes")),
    st.sampled_from(
        [
            "9999-12-31",
            "0001-01-01",
            "9999-12-31T23:59",
            "0001-01-01T00:00",
            "9999-12-31 23:59",
            "10000-01-01",
            "2026-02-30",
        ]
    ),
)
json_values = st.one_of(
    any_text,
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True),
    st.none(),
    st.booleans(),
    extreme_dates,
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


base64_junk = st.one_of(
    st.binary(max_size=80).map(_b64),
    st.lists(json_values, max_size=4).map(lambda v: _b64(json.dumps(v).encode())),
    st.sampled_from(["WyJcdWQ4MDAiLCAxXQ", "WyJcdWRmZmYiLCAxXQ==", "%%%", "=" * 5]),
)
values = st.one_of(
    any_text,
    huge_numbers,
    extreme_dates,
    base64_junk,
    st.sampled_from(["", "9" * 5000, "\x00", "-1", "1e999", "nan", "csv", "jsonl"]),
)


def _query(params: dict[str, str]) -> str:
    """The query string a client could send: lone surrogates become bytes that are not UTF-8."""
    return "&".join(
        f"{quote(name)}={quote(value.encode('utf-8', 'surrogatepass'))}"
        for name, value in params.items()
    )


@pytest.fixture
def viewing(client, viewer):
    now = timezone.now()
    PrimeUser.objects.bulk_create(
        [
            PrimeUser(prime_id=f"U{i:012d}", name=f"user {i}", role="Viewer", created_at=now)
            for i in range(3)
        ]
    )
    client.force_login(viewer)
    return client


def _get(client, url_name: str, params: dict[str, str], htmx: bool):
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.get(f"{reverse(url_name)}?{_query(params)}", headers=headers)
    if response.streaming:
        b"".join(response.streaming_content)  # an export fails, if at all, while streaming
    return response


@pytest.mark.parametrize("url_name", LIST_PAGES)
@FUZZ
@given(data=st.data())
def test_no_list_page_answers_5xx_whatever_its_query(viewing, url_name, data):
    names = LIST_PAGES[url_name]
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    params = {name: data.draw(values, label=name) for name in chosen}
    htmx = data.draw(st.booleans(), label="htmx")

    response = _get(viewing, url_name, params, htmx)

    assert response.status_code < 500, (params, response.content[:300])


@pytest.mark.parametrize("param", ["after", "before"])
@pytest.mark.parametrize("htmx", [False, True])
def test_a_cursor_holding_a_lone_surrogate_shows_the_first_page(viewing, param, htmx):
    # base64 of ["\ud800", 1]: valid JSON whose string cannot be sent to the database.
    response = _get(viewing, "users:list", {param: "WyJcdWQ4MDAiLCAxXQ"}, htmx)

    assert response.status_code == 200
    assert "user 0" in response.content.decode()


@pytest.mark.parametrize("htmx", [False, True])
def test_a_batch_filter_at_the_end_of_the_calendar_is_no_bound(viewing, htmx):
    from tests.settlement.conftest import mirror_batch

    mirror_batch(prime_batch_id="B_LAST0001", created_at=datetime(2026, 1, 1, tzinfo=UTC))

    response = _get(viewing, "settlement:batch-list", {"created_until": "9999-12-31"}, htmx)

    assert response.status_code == 200
    assert "B_LAST0001" in response.content.decode()
