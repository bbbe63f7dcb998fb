"""The batch page's parts come from the shared cache, keyed by what they show: a change shows
on the next request, and what depends on the person looking stays theirs."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from django.middleware.csrf import _unmask_cipher_token
from django.urls import reverse

from portal.approvals.models import RequestState
from portal.audit.models import AuditAction, TargetType
from portal.audit.services import audit_record
from portal.settlement import selectors
from portal.settlement.models import Leg
from portal.settlement.templatetags.batch_parts import CACHE_SECONDS
from tests.conftest import make_staff
from tests.settlement.conftest import mirror_batch, open_request

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}
CSRF_VALUE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def _detail(batch) -> str:
    return reverse("settlement:batch-detail", args=[batch.prime_batch_id])


def _page(client, batch, **headers) -> str:
    response = client.get(_detail(batch), headers=headers)
    assert response.status_code == 200
    return response.content.decode()


def _without_tokens(body: str) -> str:
    body = CSRF_VALUE.sub('name="csrfmiddlewaretoken" value=""', body)
    return re.sub(r'"X-CSRFToken": "[^"]+"', '"X-CSRFToken": ""', body)


def test_a_cached_page_is_the_page_drawn_afresh(client, approver, operator):
    batch = mirror_batch(legs=[("BTC", "incoming", "1.5"), ("ETH", "outgoing", "10")])
    open_request(Leg.objects.get(batch=batch, asset="BTC"), operator)
    audit_record(
        actor=operator,
        action=AuditAction.LEG_REQUESTED,
        target_type=TargetType.LEG,
        target_id=f"{batch.prime_batch_id}:ETH",
        message="<b>not markup</b>",
    )
    client.force_login(approver)
    drawn = _page(client, batch)
    assert "&lt;b&gt;not markup&lt;/b&gt;" in drawn
    assert _without_tokens(_page(client, batch)) == _without_tokens(drawn)  # from the cache
    cache.clear()
    assert _without_tokens(_page(client, batch)) == _without_tokens(drawn)


def test_a_legs_new_state_shows_on_the_next_request(client, viewer):
    batch = mirror_batch()
    client.force_login(viewer)
    assert 'data-asset="BTC" data-leg-status="unsettled"' in _page(client, batch)
    Leg.objects.filter(batch=batch, asset="BTC").update(status="settled", transfer_id="T-77")
    body = _page(client, batch)
    assert 'data-asset="BTC" data-leg-status="settled"' in body
    assert "#T-77" in body


def test_a_new_timeline_event_shows_on_the_next_request(client, viewer, operator):
    batch = mirror_batch()
    client.force_login(viewer)
    assert "Nothing recorded yet." in _page(client, batch)
    audit_record(
        actor=operator,
        action=AuditAction.LEG_REQUESTED,
        target_type=TargetType.LEG,
        target_id=f"{batch.prime_batch_id}:USD",
        message="first word",
    )
    assert "first word" in _page(client, batch)
    audit_record(
        actor=operator,
        action=AuditAction.LEG_REQUESTED,
        target_type=TargetType.LEG,
        target_id=f"{batch.prime_batch_id}:BTC",
        message="second word",
    )
    body = _page(client, batch, **HTMX)
    assert "first word" in body and "second word" in body


def test_what_the_person_may_do_is_their_own(client, viewer, operator, approver):
    batch = mirror_batch()
    change = open_request(Leg.objects.get(batch=batch, asset="BTC"), operator)
    choice = f'name="change" value="{change.pk}"'
    client.force_login(viewer)
    assert choice not in _page(client, batch)  # drawn and cached for a viewer
    client.force_login(approver)
    assert choice in _page(client, batch)  # another person, other permissions
    client.force_login(operator)
    body = _page(client, batch)
    assert choice not in body  # the requester may not decide
    client.force_login(viewer)
    assert choice not in _page(client, batch)


def test_the_rows_forms_carry_the_persons_own_token(client, operator):
    batch = mirror_batch()  # its legs can be requested: each row has a form
    other = make_staff("oona.second.operator", "Operator")
    tokens = []
    for person in (operator, other):
        client.logout()
        client.force_login(person)
        body = _page(client, batch)
        values = CSRF_VALUE.findall(body)
        assert len(values) >= 3  # refresh, request-all and one per leg
        secret = client.cookies["csrftoken"].value
        assert {_unmask_cipher_token(value) for value in values} == {secret}
        tokens.append(secret)
    assert tokens[0] != tokens[1]


def test_a_requests_events_name_their_leg(operator):
    batch = mirror_batch()
    change = open_request(Leg.objects.get(batch=batch, asset="USD"), operator)
    audit_record(
        actor=operator,
        action=AuditAction.CHANGE_VOTE_APPROVED,
        target_type=TargetType.CHANGE_REQUEST,
        target_id=str(change.pk),
    )
    audit_record(
        actor=operator,
        action=AuditAction.LEG_REQUESTED,
        target_type=TargetType.BATCH,
        target_id=batch.prime_batch_id,
    )
    timeline = selectors.live_batch(prime_batch_id=batch.prime_batch_id).timeline
    assert [(event.target_type, event.leg_asset) for event in timeline] == [
        (TargetType.CHANGE_REQUEST, "USD"),
        (TargetType.BATCH, ""),
    ]


def test_an_expired_request_is_not_shown_as_pending(client, viewer, operator):
    batch = mirror_batch()
    change = open_request(Leg.objects.get(batch=batch, asset="BTC"), operator)
    client.force_login(viewer)
    assert "(expires " in _page(client, batch)
    type(change).objects.filter(pk=change.pk).update(state=RequestState.EXPIRED)
    assert "(expires " not in _page(client, batch)


def test_entries_expire(settings):
    assert 0 < CACHE_SECONDS <= 60 * 60
