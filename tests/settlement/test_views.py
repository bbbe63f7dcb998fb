"""Settlement pages: what each role sees and may do, fragments, and fixed query counts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.approvals.models import ChangeRequest, RequestState, StepUpMethod
from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.settlement import messages, services
from portal.settlement.models import Batch, Leg
from tests.conftest import make_staff
from tests.settlement.conftest import TRADES, mirror_batch, open_request, request_leg, said
from tests.staff.otp import totp_code, verified_login

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


def _detail(batch) -> str:
    return reverse("settlement:batch-detail", args=[batch.prime_batch_id])


def _live(batch) -> str:
    return reverse("settlement:batch-live", args=[batch.prime_batch_id])


# --- list -------------------------------------------------------------------------------


def test_the_list_shows_batches_newest_first_with_progress(client, viewer):
    now = timezone.now()
    old = mirror_batch(prime_batch_id="B_OLD00001", created_at=now - timedelta(days=2))
    new = mirror_batch(prime_batch_id="B_NEW00001", created_at=now)
    Leg.objects.filter(batch=new, asset="BTC").update(status="settled")
    client.force_login(viewer)
    body = client.get(reverse("settlement:batch-list")).content.decode()
    assert body.index(new.prime_batch_id) < body.index(old.prime_batch_id)
    assert 'aria-valuenow="1"' in body and "1 / 2" in body
    assert "New batch" not in body  # viewers cannot create


def test_the_list_filters_by_status_and_time(client, viewer):
    now = timezone.now()
    mirror_batch(prime_batch_id="B_DONE0001", status="completed", created_at=now)
    mirror_batch(prime_batch_id="B_OPEN0001", created_at=now)
    mirror_batch(prime_batch_id="B_OLD00001", created_at=now - timedelta(days=40))
    client.force_login(viewer)
    url = reverse("settlement:batch-list")
    body = client.get(url, {"status": "completed"}).content.decode()
    assert "B_DONE0001" in body and "B_OPEN0001" not in body
    since = (now - timedelta(days=1)).date().isoformat()
    body = client.get(url, {"created_from": since}).content.decode()
    assert "B_OLD00001" not in body and "B_OPEN0001" in body
    until = (now - timedelta(days=30)).date().isoformat()
    body = client.get(url, {"created_until": until}).content.decode()
    assert "B_OLD00001" in body and "B_OPEN0001" not in body


def test_the_list_filter_answers_with_only_the_table_for_htmx(client, viewer):
    mirror_batch(prime_batch_id="B_OPEN0001")
    client.force_login(viewer)
    response = client.get(reverse("settlement:batch-list"), {"status": ""}, headers=HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="batch-table">')
    assert "<html" not in body and "B_OPEN0001" in body


def test_nonsense_filters_do_not_break_the_list(client, viewer):
    client.force_login(viewer)
    response = client.get(
        reverse("settlement:batch-list"),
        {"status": "nope", "created_from": "yesterday", "page": "x"},
    )
    assert response.status_code == 200


def _count_queries(client, url, **kwargs) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **kwargs)
    assert response.status_code in (200, 286)
    return len(queries)


def test_the_list_costs_the_same_queries_for_few_and_many_batches(client, viewer):
    client.force_login(viewer)
    url = reverse("settlement:batch-list")
    for _ in range(2):
        mirror_batch()
    client.get(url)  # warm the session and permission caches
    few = _count_queries(client, url)
    for _ in range(30):
        mirror_batch(
            legs=[("BTC", "incoming", "1"), ("ETH", "outgoing", "2"), ("X", "incoming", "3")]
        )
    assert _count_queries(client, url) == few


# --- batch page -----------------------------------------------------------------------------


def test_the_batch_page_shows_trades_legs_chart_timeline_and_audit_link(client, viewer, operator):
    batch = mirror_batch()
    leg = Leg.objects.get(batch=batch, asset="BTC")
    request_leg(Leg.objects.select_related("batch").get(pk=leg.pk), operator)
    client.force_login(viewer)
    body = client.get(_detail(batch)).content.decode()
    assert "2 trades" in body and batch.trade_ids[0] in body
    assert "Confirmed by Kraken" in body
    # Amounts with digit grouping and the asset's own precision.
    assert 'data-asset="BTC"' in body and "1.50000000" in body and "45,000.00" in body
    assert "requested by otto.operator" in body
    assert '<svg class="net-chart"' in body
    assert 'class="bar incoming" data-asset="BTC"' in body
    assert 'class="bar outgoing" data-asset="USD"' in body
    assert "Change requested" in body  # the timeline
    assert 'hx-trigger="every 3s' in body
    # Viewers see no buttons.
    assert "Request settlement</button>" not in body and "Approve" not in body


def test_the_batch_page_links_to_its_audit_history(client, viewer):
    from django.urls import NoReverseMatch

    batch = mirror_batch()
    client.force_login(viewer)
    body = client.get(_detail(batch)).content.decode()
    try:
        audit = reverse("audit:list")
    except NoReverseMatch:  # the audit explorer is not mounted in this build
        assert "Audit history" not in body
    else:
        assert f"{audit}?target_type=batch&amp;target_id={batch.prime_batch_id}" in body


def test_buttons_follow_the_role_and_the_requester(client, operator, approver):
    batch = mirror_batch()
    client.force_login(operator)
    body = client.get(_detail(batch)).content.decode()
    assert body.count("Request settlement</button>") == 2
    assert "Check with Kraken now" in body
    change = open_request(_leg(batch), operator)
    body = client.get(_detail(batch)).content.decode()
    assert body.count("Request settlement</button>") == 1
    assert "Request all settleable legs (1)" in body
    assert reverse("settlement:legs-approve", args=[batch.prime_batch_id]) not in body
    client.force_login(approver)
    body = client.get(_detail(batch)).content.decode()
    assert reverse("settlement:legs-approve", args=[batch.prime_batch_id]) in body
    assert f'name="change" value="{change.pk}"' in body
    assert reverse("settlement:request-reject", args=[change.pk]) in body
    assert "Request settlement</button>" not in body


def test_an_approver_who_requested_sees_no_approve_button(client):
    both = make_staff("olga.both", "Operator", "Approver")
    batch = mirror_batch()
    change = open_request(_leg(batch), both)
    client.force_login(both)
    body = client.get(_detail(batch)).content.decode()
    assert f'name="change" value="{change.pk}"' not in body
    assert "another Approver must decide" in body


def test_the_batch_page_costs_the_same_queries_for_few_and_many_legs(client, operator):
    client.force_login(operator)
    few = mirror_batch(legs=[("BTC", "incoming", "1")])
    open_request(_leg(few, "BTC"), operator)
    client.get(_detail(few))
    few_count = _count_queries(client, _detail(few))
    many = mirror_batch(
        legs=[(f"A{i}", "incoming" if i % 2 else "outgoing", str(i + 1)) for i in range(40)]
    )
    for leg in Leg.objects.select_related("batch").filter(batch=many)[:20]:
        open_request(leg, operator, state=RequestState.EXPIRED)
        open_request(leg, operator)
    assert _count_queries(client, _detail(many)) == few_count
    assert _count_queries(client, _live(many), headers=HTMX) == _count_queries(
        client, _live(few), headers=HTMX
    )


def test_an_unknown_batch_is_404(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("settlement:batch-detail", args=["B_NOPE"])).status_code == 404
    assert (
        client.get(reverse("settlement:batch-live", args=["B_NOPE"]), headers=HTMX).status_code
        == 404
    )


# --- the polled fragment --------------------------------------------------------------------


def test_the_poll_returns_only_the_live_fragment_from_the_database(client, viewer, monkeypatch):
    import portal.connection.clients

    def no_kraken():
        raise AssertionError("the polled fragment must not call Kraken")

    monkeypatch.setattr(portal.connection.clients, "get_prime_client", no_kraken)
    batch = mirror_batch()
    client.force_login(viewer)
    response = client.get(_live(batch), headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="batch-live"')
    assert "<html" not in body and "net-chart" not in body
    assert 'hx-trigger="every 3s' in body
    assert "as of 0s ago" in body


def test_the_poll_stops_when_the_batch_is_final(client, viewer):
    batch = mirror_batch(status="completed")
    client.force_login(viewer)
    response = client.get(_live(batch), headers=HTMX)
    assert response.status_code == 286  # htmx: stop polling
    assert "hx-trigger" not in response.content.decode()
    assert "hx-trigger" not in client.get(_detail(batch)).content.decode()


def test_the_poll_without_htmx_goes_to_the_page(client, viewer):
    batch = mirror_batch()
    client.force_login(viewer)
    response = client.get(_live(batch))
    assert response.status_code == 302 and response.headers["Location"] == _detail(batch)


def test_a_stale_mirror_shows_a_banner(client, viewer, settings):
    settings.PRIME_POLL_INTERVAL_SECONDS = 5
    batch = mirror_batch()
    Batch.objects.filter(pk=batch.pk).update(
        last_refreshed_at=timezone.now() - timedelta(seconds=16)
    )
    client.force_login(viewer)
    body = client.get(_live(batch), headers=HTMX).content.decode()
    assert "has not refreshed this batch" in body and "as of 16s ago" in body
    Batch.objects.filter(pk=batch.pk).update(
        last_refreshed_at=timezone.now() - timedelta(seconds=14)
    )
    assert "has not refreshed" not in client.get(_live(batch), headers=HTMX).content.decode()


def test_viewing_the_page_never_writes_not_even_to_expire_a_stale_request(client, viewer, operator):
    batch = mirror_batch()
    change = open_request(_leg(batch), operator, expires_at=timezone.now() - timedelta(seconds=1))
    client.force_login(viewer)
    events = AuditEvent.objects.count()
    assert client.get(_detail(batch)).status_code == 200
    assert client.get(_live(batch), headers=HTMX).status_code == 200
    change.refresh_from_db()
    assert change.state == RequestState.PENDING  # the poller expires it (test_poller)
    assert AuditEvent.objects.count() == events


# --- actions --------------------------------------------------------------------------------


def test_an_operator_requests_a_leg_through_htmx(client, operator):
    batch = mirror_batch()
    client.force_login(operator)
    url = reverse("settlement:leg-request", args=[batch.prime_batch_id, "BTC"])
    response = client.post(url, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="batch-live"')
    assert 'data-request-state="pending"' in body
    # The words sit beside the leg in the live fragment (not in #messages): the next
    # poll renders the live state without them.
    assert re.search(said(messages.REQUESTED_FOR_APPROVAL, html=True), body)
    assert "data-action-message" in body and 'id="messages"' not in body
    polled = client.get(_live(batch), headers=HTMX).content.decode()
    assert "data-action-message" not in polled and 'data-request-state="pending"' in polled
    response = client.post(url, headers=HTMX)
    assert response.status_code == 409
    assert re.search(said(messages.LEG_HAS_OPEN_INTENT, html=True), response.content.decode())


def test_an_operator_requests_a_leg_without_javascript(client, operator):
    batch = mirror_batch()
    client.force_login(operator)
    url = reverse("settlement:leg-request", args=[batch.prime_batch_id, "BTC"])
    response = client.post(url)
    assert response.status_code == 302 and response.headers["Location"] == _detail(batch)
    assert ChangeRequest.objects.filter(state=RequestState.PENDING).count() == 1


def _approve_url(batch) -> str:
    return reverse("settlement:legs-approve", args=[batch.prime_batch_id])


def test_self_approval_is_refused_by_the_view_with_403(client):
    both = make_staff("olga.both", "Operator", "Approver")
    batch = mirror_batch()
    change = open_request(_leg(batch), both)
    device = verified_login(client, both)
    response = client.post(
        _approve_url(batch), {"change": [change.pk], "code": totp_code(device)}, headers=HTMX
    )
    assert response.status_code == 403
    assert re.search(said(messages.OWN_INTENT, html=True), response.content.decode())
    change.refresh_from_db()
    assert change.state == RequestState.PENDING
    refused = AuditEvent.objects.get(action=AuditAction.LEG_APPROVED)
    assert refused.outcome == Outcome.REFUSED


def test_an_operator_cannot_post_an_approval(client, operator):
    batch = mirror_batch()
    change = open_request(_leg(batch), operator)
    client.force_login(operator)
    response = client.post(_approve_url(batch), {"change": [change.pk]})
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action=AuditAction.PERMISSION_REFUSED).count() == 1


def test_approving_needs_a_choice_and_the_code(client, operator, approver):
    batch = mirror_batch()
    change = open_request(_leg(batch), operator)
    device = verified_login(client, approver)
    response = client.post(_approve_url(batch), {"code": totp_code(device)}, headers=HTMX)
    assert response.status_code == 422
    assert messages.CHOOSE_LEGS in response.content.decode()
    response = client.post(_approve_url(batch), {"change": ["nonsense"]}, headers=HTMX)
    assert response.status_code == 422
    response = client.post(_approve_url(batch), {"change": [change.pk], "code": ""}, headers=HTMX)
    assert response.status_code == 422
    assert "code from your authenticator" in response.content.decode()
    change.refresh_from_db()
    assert change.state == RequestState.PENDING


def test_a_rejection_needs_a_reason(client, operator, approver):
    batch = mirror_batch()
    change = open_request(_leg(batch), operator)
    client.force_login(approver)
    url = reverse("settlement:request-reject", args=[change.pk])
    response = client.post(url, {"reason": ""}, headers=HTMX)
    assert response.status_code == 422
    assert messages.REASON_REQUIRED in response.content.decode()
    response = client.post(url, {"reason": "x" * 5000}, headers=HTMX)
    assert response.status_code == 422
    response = client.post(url, {"reason": "Not ours"}, headers=HTMX)
    assert response.status_code == 200
    change.refresh_from_db()
    assert change.state == RequestState.REJECTED
    assert change.votes.get().comment == "Not ours"
    assert f"Rejected by {approver.username}: Not ours" in response.content.decode()


def test_actions_on_unknown_rows_are_404(client, operator, approver):
    client.force_login(operator)
    assert client.post(reverse("settlement:leg-request", args=["B_NOPE", "BTC"])).status_code == 404
    assert client.post(reverse("settlement:legs-request-all", args=["B_NOPE"])).status_code == 404
    client.force_login(approver)
    assert client.post(reverse("settlement:legs-approve", args=["B_NOPE"])).status_code == 404
    assert client.post(reverse("settlement:request-reject", args=[999999])).status_code == 404


def test_create_form_page_and_bad_input(client, operator):
    client.force_login(operator)
    url = reverse("settlement:batch-create")
    assert client.get(url).status_code == 200
    response = client.post(url, {"asset_kind": "gold bars"}, headers=HTMX)
    assert response.status_code == 422
    assert response.content.decode().lstrip().startswith('<form id="batch-create"')


def test_creating_a_batch_through_the_page(client, operator, prime_settings):
    prime_settings.control.add_trades(TRADES)
    client.force_login(operator)
    response = client.post(
        reverse("settlement:batch-create"), {"asset_kind": "currency"}, headers=HTMX
    )
    batch = Batch.objects.get()
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == _detail(batch)


def test_an_active_batch_is_linked_from_the_create_form(client, operator, prime_settings):
    prime_settings.control.add_trades(TRADES)
    client.force_login(operator)
    url = reverse("settlement:batch-create")
    client.post(url, {"asset_kind": "currency"}, headers=HTMX)
    prime_settings.control.add_trades(TRADES)
    response = client.post(url, {"asset_kind": "currency"}, headers=HTMX)
    batch = Batch.objects.get()
    body = response.content.decode()
    assert response.status_code == 409
    assert re.search(said(messages.ACTIVE_BATCH_EXISTS, html=True), body)
    assert f'href="{_detail(batch)}"' in body


def test_kraken_being_down_on_create_is_said_next_to_the_form(client, operator, prime_settings):
    prime_settings.control.add_trades(TRADES)
    prime_settings.control.inject_fault("unavailable", "CreatePrimeSettlementBatch")
    client.force_login(operator)
    response = client.post(
        reverse("settlement:batch-create"), {"asset_kind": "currency"}, headers=HTMX
    )
    assert response.status_code == 409
    assert "unavailable" in response.content.decode()
    assert not Batch.objects.exists()


def test_check_with_kraken_reports_what_it_found(client, operator, kraken_batch, prime_settings):
    client.force_login(operator)
    url = reverse("settlement:batch-refresh", args=[kraken_batch.prime_batch_id])
    response = client.post(url, headers=HTMX)
    assert response.status_code == 200
    assert "Checked with Kraken" in response.content.decode()
    prime_settings.control.inject_fault("http_500", "GetPrimeSettlementBatch", count=10)
    response = client.post(url, headers=HTMX)
    assert response.status_code == 409
    assert messages.CHECK_FAILED in response.content.decode()


def test_approving_through_the_page_sends_and_shows_the_transfer(
    client, operator, approver, kraken_batch, prime_settings
):
    change = request_leg(_leg(kraken_batch), operator)
    device = verified_login(client, approver)
    response = client.post(
        _approve_url(kraken_batch), {"change": [change.pk], "code": totp_code(device)}, headers=HTMX
    )
    body = response.content.decode()
    assert response.status_code == 200
    change.refresh_from_db()
    assert change.state == RequestState.DONE
    assert change.votes.get().step_up == StepUpMethod.TOTP
    assert f"#{change.result['transfer_id']}" in body
    assert f"Approved by {approver.username}" in body
    assert 'data-request-state="done"' in body
    assert "data-action-message" in body


def test_all_legs_requested_in_one_step_and_approved_with_one_code(
    client, operator, approver, kraken_batch, prime_settings
):
    client.force_login(operator)
    response = client.post(
        reverse("settlement:legs-request-all", args=[kraken_batch.prime_batch_id]), headers=HTMX
    )
    assert response.status_code == 200
    assert response.content.decode().count('data-request-state="pending"') == 3
    assert prime_settings.control.calls(services.SETTLE, executed=None) == []
    again = client.post(
        reverse("settlement:legs-request-all", args=[kraken_batch.prime_batch_id]), headers=HTMX
    )
    assert again.status_code == 409
    assert messages.NOTHING_TO_REQUEST in again.content.decode()

    device = verified_login(client, approver)
    ids = list(ChangeRequest.objects.values_list("pk", flat=True))
    response = client.post(
        _approve_url(kraken_batch), {"change": ids, "code": totp_code(device)}, headers=HTMX
    )
    assert response.status_code == 200
    assert response.content.decode().count('data-request-state="done"') == 3
    methods = set(
        ChangeRequest.objects.values_list("votes__step_up", flat=True)
    )  # one code for the selection
    assert methods == {StepUpMethod.TOTP}
    assert len(prime_settings.control.calls(services.SETTLE, executed=True)) == 3


def _leg(batch, asset="BTC") -> Leg:
    return Leg.objects.select_related("batch").get(batch=batch, asset=asset)
