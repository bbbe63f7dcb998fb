"""The approvals pages: inbox, request page, vote with step-up, policy, count, evidence."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from portal.approvals import messages, services
from portal.approvals.models import ChangeKind, ChangeRequest, RequestState, StepUpMethod, Vote
from portal.approvals.services.stepup import SESSION_KEY
from portal.connection.door import get_prime_client
from tests.approvals.conftest import RENAME, executed_writes, kraken_name
from tests.staff.otp import totp_code, verified_login, wrong_code

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rename_kind")]


def _request(prime_user, operator, name="Desk 4 renamed"):
    return services.change_request_create(
        kind=RENAME,
        target_id=prime_user,
        payload={"name": name},
        actor=operator,
        reason="tidy names",
        summary=f"rename to {name}",
    ).change


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_the_inbox_lists_what_waits_for_me_with_the_diff(client, prime_user, operator, approver):
    change = _request(prime_user, operator)
    client.force_login(approver)

    page = client.get(reverse("approvals:inbox"))
    fragment = client.get(reverse("approvals:inbox"), headers={"HX-Request": "true"})

    assert page.status_code == 200
    body = page.content.decode()
    assert "<html" in body and "Waiting for your vote" in body
    assert f"#{change.pk}" in body and "&quot;Desk 4 renamed&quot;" in body
    assert "otto.operator" in body
    assert fragment.status_code == 200
    assert "<html" not in fragment.content.decode()
    assert 'id="inbox"' in fragment.content.decode()
    assert "HX-Request" in fragment.headers["Vary"]


def test_the_requester_sees_their_request_but_not_as_waiting(client, prime_user, operator):
    change = _request(prime_user, operator)
    client.force_login(operator)
    response = client.get(reverse("approvals:inbox"))
    assert [c for c, _ in response.context["waiting"]] == []
    assert change in response.context["mine"]


def test_the_navigation_count_is_polled_from_the_portals_database(
    client, prime_user, operator, approver
):
    _request(prime_user, operator)
    _request(prime_user, operator, name="Second name")
    client.force_login(approver)

    home = client.get(reverse("approvals:inbox")).content.decode()
    count = client.get(reverse("approvals:count"), headers={"HX-Request": "true"})

    assert reverse("approvals:count") in home  # the nav item polls the count
    assert count.status_code == 200
    assert ">2<" in count.content.decode()
    assert 'data-approvals-count="/approvals/count/"' in count.content.decode()
    assert "nav_count.js" in home and "nav_count.js" not in count.content.decode()
    assert count.headers["Cache-Control"] == "no-store"
    client.force_login(operator)
    assert ">2<" not in client.get(reverse("approvals:count")).content.decode()


def test_approving_asks_for_the_code_then_trusts_it_for_a_few_minutes(
    client, prime_user, operator, approver, prime_settings
):
    first = _request(prime_user, operator)
    other_user = get_prime_client().create_api_user("Desk 5 bot", "Viewer").id
    second = _request(other_user, operator, name="Desk 5 renamed")
    device = verified_login(client, approver)
    vote = reverse("approvals:vote", kwargs={"pk": first.pk})

    page = client.get(reverse("approvals:detail", kwargs={"pk": first.pk}))
    assert 'autocomplete="one-time-code"' in page.content.decode()
    missing = client.post(vote, {"decision": "approve"}, follow=True)
    assert messages.STEP_UP_NEEDED in _messages(missing)
    wrong = client.post(vote, {"decision": "approve", "code": wrong_code(device)}, follow=True)
    assert messages.STEP_UP_WRONG in _messages(wrong)
    throttled = client.post(vote, {"decision": "approve", "code": totp_code(device)}, follow=True)
    assert messages.STEP_UP_THROTTLED in _messages(throttled)  # django-otp's back-off
    assert executed_writes(prime_settings) == []
    device.refresh_from_db()
    device.throttle_reset()  # as if the back-off second had passed (no sleeping in tests)

    ok = client.post(vote, {"decision": "approve", "code": totp_code(device)}, follow=True)

    assert messages.APPROVED_AND_DONE in _messages(ok)
    assert Vote.objects.get(change=first).step_up == StepUpMethod.TOTP
    assert kraken_name(prime_user) == "Desk 4 renamed"
    assert SESSION_KEY in client.session
    # Within the window the next approval needs no code, and says so.
    page = client.get(reverse("approvals:detail", kwargs={"pk": second.pk}))
    assert 'autocomplete="one-time-code"' not in page.content.decode()
    client.post(reverse("approvals:vote", kwargs={"pk": second.pk}), {"decision": "approve"})
    assert Vote.objects.get(change=second).step_up == StepUpMethod.RECENT
    assert len(executed_writes(prime_settings)) == 2
    assert kraken_name(other_user) == "Desk 5 renamed"


def test_a_policy_requiring_the_code_every_time_refuses_a_reused_code(
    client, prime_user, operator, approver, prime_settings
):
    first = _request(prime_user, operator)
    second = _request(prime_user, operator, name="Desk 4 again")
    ChangeRequest.objects.update(step_up_every_time=True)
    device = verified_login(client, approver)
    code = totp_code(device)

    client.post(
        reverse("approvals:vote", kwargs={"pk": first.pk}), {"decision": "approve", "code": code}
    )
    reused = client.post(
        reverse("approvals:vote", kwargs={"pk": second.pk}),
        {"decision": "approve", "code": code},
        follow=True,
    )
    no_code = client.post(
        reverse("approvals:vote", kwargs={"pk": second.pk}), {"decision": "approve"}, follow=True
    )

    assert Vote.objects.get(change=first).step_up == StepUpMethod.TOTP
    assert messages.STEP_UP_WRONG in _messages(reused)  # a TOTP code works once per time step
    assert messages.STEP_UP_NEEDED in _messages(no_code)
    assert not Vote.objects.filter(change=second).exists()
    assert len(executed_writes(prime_settings)) == 1


def test_an_approver_without_an_authenticator_app_is_told_to_set_one_up(
    client, prime_user, operator, approver
):
    change = _request(prime_user, operator)
    client.force_login(approver)
    response = client.post(
        reverse("approvals:vote", kwargs={"pk": change.pk}),
        {"decision": "approve", "code": "123456"},
        follow=True,
    )
    assert messages.STEP_UP_NO_DEVICE in _messages(response)
    assert not Vote.objects.exists()


def test_the_requester_gets_403_when_voting_on_their_own_request(client, prime_user, operator):
    change = _request(prime_user, operator)
    client.force_login(operator)
    response = client.post(
        reverse("approvals:vote", kwargs={"pk": change.pk}), {"decision": "approve"}
    )
    assert response.status_code == 403


def test_an_htmx_vote_rerenders_only_the_request_panel(client, prime_user, operator, approver):
    change = _request(prime_user, operator)
    client.force_login(approver)
    response = client.post(
        reverse("approvals:vote", kwargs={"pk": change.pk}),
        {"decision": "reject", "comment": "not this one"},
        headers={"HX-Request": "true"},
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="change-panel"')
    assert messages.REJECTED in body  # the message arrives out of band
    change.refresh_from_db()
    assert change.state == RequestState.REJECTED


def test_bad_vote_input_is_not_a_500(client, prime_user, operator, approver):
    change = _request(prime_user, operator)
    client.force_login(approver)
    url = reverse("approvals:vote", kwargs={"pk": change.pk})
    for data in ({}, {"decision": "maybe"}, {"decision": "approve", "code": "x" * 50}):
        assert client.post(url, data).status_code < 500
    assert client.get(reverse("approvals:detail", kwargs={"pk": 999999})).status_code == 404


def test_the_request_page_shows_the_timeline_and_its_evidence_verifies(
    client, prime_user, operator, approver, tmp_path, capsys
):
    change = _request(prime_user, operator)
    device = verified_login(client, approver)
    client.post(
        reverse("approvals:vote", kwargs={"pk": change.pk}),
        {"decision": "approve", "code": totp_code(device)},
    )

    page = client.get(reverse("approvals:detail", kwargs={"pk": change.pk})).content.decode()
    assert "Change requested" in page and "Change approved (vote)" in page
    assert "Change executed" in page and "Desk 4 renamed" in page

    response = client.get(reverse("approvals:evidence", kwargs={"pk": change.pk}))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    path = tmp_path / "evidence.jsonl"
    path.write_bytes(b"".join(response.streaming_content))
    lines = path.read_text().splitlines()
    assert len(lines) == 4  # requested, approved, executed + the proof trailer
    assert '"audit_export_proof"' in lines[-1]

    call_command("verify_audit", "--export", str(path), "--no-progress")
    assert "OK: 3 rows" in capsys.readouterr().out

    path.write_text(path.read_text().replace("Desk 4 renamed", "Desk 4 tampered"))
    with pytest.raises(CommandError):
        call_command("verify_audit", "--export", str(path), "--no-progress")


def test_the_policy_page_shows_every_kind_and_a_change_becomes_a_request(client, admin):
    client.force_login(admin)
    page = client.get(reverse("approvals:policy"))
    fragment = client.get(reverse("approvals:policy"), headers={"HX-Request": "true"})
    assert page.status_code == 200
    for kind in ChangeKind:
        assert str(kind.label).replace(">", "&gt;") in page.content.decode()
    assert "<html" not in fragment.content.decode()

    response = client.post(
        reverse("approvals:policy-request"),
        {"kind": "key_revoke", "needs_approval": "on", "approvers": "1", "reason": "review"},
    )
    change = ChangeRequest.objects.get(kind=ChangeKind.POLICY_CHANGE)
    assert response.status_code == 302
    assert response.headers["Location"] == reverse("approvals:detail", kwargs={"pk": change.pk})
    assert change.state == RequestState.PENDING


def test_the_policy_page_refuses_settlement_without_approval(client, admin):
    client.force_login(admin)
    response = client.post(
        reverse("approvals:policy-request"), {"kind": "settlement_leg", "approvers": "1"}
    )
    assert response.status_code == 422
    assert messages.POLICY_SETTLEMENT_MINIMUM in response.content.decode()
    assert not ChangeRequest.objects.exists()
    bad = client.post(reverse("approvals:policy-request"), {"kind": "nope", "approvers": "7"})
    assert bad.status_code == 422


def test_the_policy_page_is_for_admins_only(client, approver):
    client.force_login(approver)
    assert client.get(reverse("approvals:policy")).status_code == 403
