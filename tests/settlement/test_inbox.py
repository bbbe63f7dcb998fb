"""Leg requests in the approvals inbox: amounts as people read them, a selection approved
with one code, each leg still its own request and its own single send."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.approvals import messages as approvals_messages
from portal.approvals.models import ChangeRequest, RequestState, StepUpMethod
from portal.settlement import services
from portal.settlement.models import Leg
from tests.settlement.conftest import mirror_batch, request_leg
from tests.staff.otp import totp_code, verified_login

pytestmark = pytest.mark.django_db


def _legs(batch):
    return list(Leg.objects.select_related("batch").filter(batch=batch).order_by("asset"))


def test_the_inbox_and_request_page_show_amounts_with_grouping_and_precision(
    client, operator, approver
):
    batch = mirror_batch(legs=(("BTC", "incoming", "1.5"), ("USD", "outgoing", "236867.32156")))
    usd = request_leg(_legs(batch)[1], operator)
    verified_login(client, approver)
    inbox = client.get(reverse("approvals:inbox")).content.decode()
    assert "outgoing 236,867.32 USD" in inbox
    assert "236867.32156" not in inbox  # never the raw decimal
    page = client.get(reverse("approvals:detail", args=[usd.pk])).content.decode()
    assert "outgoing 236,867.32 USD" in page


def test_an_approver_approves_a_selection_from_the_inbox_with_one_code(
    client, operator, approver, kraken_batch, prime_settings
):
    btc, eth, usd = (request_leg(leg, operator) for leg in _legs(kraken_batch))
    device = verified_login(client, approver)
    response = client.post(
        reverse("approvals:approve-selected"),
        {"change": [btc.pk, usd.pk], "code": totp_code(device)},
    )
    assert response.status_code == 302
    states = dict(ChangeRequest.objects.values_list("pk", "state"))
    assert states == {btc.pk: RequestState.DONE, eth.pk: RequestState.PENDING, usd.pk: "done"}
    assert set(
        ChangeRequest.objects.filter(state="done").values_list("votes__step_up", flat=True)
    ) == {StepUpMethod.TOTP}
    assert len(prime_settings.control.calls(services.SETTLE, executed=None)) == 2


def test_the_inbox_selection_needs_a_code_and_skips_what_is_not_mine_to_approve(
    client, operator, approver
):
    batch = mirror_batch()
    btc, usd = (request_leg(leg, operator) for leg in _legs(batch))
    verified_login(client, approver)
    url = reverse("approvals:approve-selected")
    response = client.post(url, {"change": [btc.pk]}, follow=True)
    assert approvals_messages.STEP_UP_NEEDED in response.content.decode()
    response = client.post(url, {"change": ["x", "99999999"]}, follow=True)
    assert approvals_messages.CHOOSE_REQUESTS in response.content.decode()
    client.force_login(operator)  # the requester: nothing of theirs waits for their vote
    response = client.post(url, {"change": [btc.pk, usd.pk], "code": "123456"}, follow=True)
    assert approvals_messages.CHOOSE_REQUESTS in response.content.decode()
    assert set(ChangeRequest.objects.values_list("state", flat=True)) == {RequestState.PENDING}
