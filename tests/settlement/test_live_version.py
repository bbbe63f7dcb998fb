"""The live fragment's version moves with every writer of what the fragment shows (issue 13).

A person watching a batch holds the poll URL the fragment carried (`?v=...`); while it is
answered 204 their page stays as it is. So for each kind of writer: after the write, that
URL is no longer answered 204 (the fragment is drawn again, with a new URL). And writes
about something else leave it at 204.

The version is moved by database triggers (portal/settlement/migrations/0004). On
PostgreSQL they run when the writer commits, so these tests commit as production does
(`transaction=True`); the clock bucket is held still so only the writes can move it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.actors import SystemActor
from portal.approvals.models import ChangeKind, ChangeRequest, RequestState, Vote
from portal.approvals.services import change_expire_due, change_withdraw
from portal.audit.models import AuditAction, TargetType
from portal.audit.services import audit_record
from portal.settlement import live_version, services
from portal.settlement.models import Batch, BatchLive, Leg, leg_audit_id
from tests.settlement.conftest import approve, mirror_batch, open_request, request_leg

pytestmark = pytest.mark.django_db(transaction=True)
HTMX = {"HTTP_HX_REQUEST": "true"}
_POLL_URL = re.compile(r'hx-get="([^"]*/live/\?v=[0-9a-f]+)"')


@pytest.fixture(autouse=True)
def _still_clock(monkeypatch):
    monkeypatch.setattr(live_version, "clock_bucket", lambda: 1)


@pytest.fixture
def watch(client, viewer):
    """Open a batch's fragment as a viewer; returns its poll URL, checked to answer 204."""
    client.force_login(viewer)

    def start(batch: Batch) -> str:
        url = reverse("settlement:batch-live", args=[batch.prime_batch_id])
        found = _POLL_URL.search(client.get(url, **HTMX).content.decode())
        assert found, "an active batch's fragment carries its version"
        assert client.get(found.group(1), **HTMX).status_code == 204
        return found.group(1)

    return start


def _redrawn(client, url: str) -> bool:
    """True when the poll URL is answered with the fragment drawn again (not 204)."""
    answer = client.get(url, **HTMX)
    assert answer.status_code in (200, 204, 286), answer.status_code
    if answer.status_code == 204:
        return False
    found = _POLL_URL.search(answer.content.decode())
    assert found is None or found.group(1) != url
    return True


def _leg(batch: Batch, asset: str = "BTC") -> Leg:
    return Leg.objects.select_related("batch").get(batch=batch, asset=asset)


def _leg_id(batch: Batch, asset: str = "BTC") -> str:
    return leg_audit_id(batch.prime_batch_id, asset)


# --- every table the fragment is drawn from, written any way (bulk updates included) ----

Write = Callable[[Batch, object], object]

WRITES: dict[str, Write] = {
    "batch row, bulk update": lambda b, _: Batch.objects.filter(pk=b.pk).update(confirmed=False),
    "batch row, save": lambda b, _: b.save(update_fields=["last_refreshed_at"]),
    "leg, bulk update": lambda b, _: Leg.objects.filter(batch=b, asset="BTC").update(
        transfer_id="T1", transfer_status="pending"
    ),
    "leg, save": lambda b, _: _leg(b).save(update_fields=["can_settle"]),
    "leg, new": lambda b, _: Leg.objects.create(
        batch=b, asset="SOL", direction="incoming", amount=Decimal("3")
    ),
    "leg, deleted": lambda b, _: Leg.objects.filter(batch=b, asset="USD").delete(),
    "leg request, new": lambda b, who: open_request(_leg(b), who),
    "leg request, bulk update": lambda b, who: ChangeRequest.objects.filter(
        pk=open_request(_leg(b), who, state=RequestState.FAILED).pk
    ).update(result_message="checked"),
    "audit event about the batch": lambda b, who: audit_record(
        actor=who,
        action=AuditAction.BATCH_STATUS_CHANGED,
        target_type=TargetType.BATCH,
        target_id=b.prime_batch_id,
    ),
    "audit event about a leg": lambda b, who: audit_record(
        actor=who,
        action=AuditAction.LEG_SETTLE_FAILED,
        target_type=TargetType.LEG,
        target_id=_leg_id(b),
    ),
}


@pytest.mark.parametrize("write", list(WRITES), ids=list(WRITES))
def test_each_write_to_what_the_fragment_shows_is_seen_on_the_next_poll(
    write, client, watch, operator
):
    batch = mirror_batch(legs=(("BTC", "incoming", "1.5"), ("USD", "outgoing", "45000")))
    url = watch(batch)
    WRITES[write](batch, operator)
    assert _redrawn(client, url)


def test_a_leg_requests_own_writes_are_seen(client, watch, operator, approver):
    batch = mirror_batch()
    change = open_request(_leg(batch), operator)
    url = watch(batch)
    Vote.objects.create(
        change=change, voter=approver, decision="approve", step_up="totp", voted_at=timezone.now()
    )
    assert _redrawn(client, url)

    url = watch(batch)
    Vote.objects.filter(change=change).delete()
    assert _redrawn(client, url)

    url = watch(batch)
    audit_record(
        actor=approver,
        action=AuditAction.CHANGE_VOTE_APPROVED,
        target_type=TargetType.CHANGE_REQUEST,
        target_id=str(change.pk),
    )
    assert _redrawn(client, url)

    url = watch(batch)
    ChangeRequest.objects.filter(pk=change.pk).delete()
    assert _redrawn(client, url)


def test_writes_about_something_else_leave_the_poll_at_204(client, watch, operator):
    batch = mirror_batch()
    other = mirror_batch(prime_batch_id=f"{batch.prime_batch_id}X")
    url = watch(batch)

    Leg.objects.filter(batch=other).update(transfer_id="T9")
    Batch.objects.filter(pk=other.pk).update(confirmed=False)
    open_request(_leg(other), operator)
    audit_record(
        actor=operator,
        action=AuditAction.LEG_SETTLE_FAILED,
        target_type=TargetType.LEG,
        target_id=_leg_id(other),
    )
    # A request of another kind whose target happens to look like this batch's leg.
    ChangeRequest.objects.create(
        kind=ChangeKind.KEY_REVOKE,
        target_type="key",
        target_id=_leg_id(batch),
        payload="{}",
        payload_hash="0" * 64,
        requested_by=operator,
        created_at=timezone.now(),
        expires_at=timezone.now() + timedelta(hours=1),
    )
    audit_record(
        actor=operator, action=AuditAction.KEY_REVOKED, target_type=TargetType.KEY, target_id="K1"
    )
    assert client.get(url, **HTMX).status_code == 204


def test_a_batch_without_a_version_row_is_always_drawn(client, watch):
    batch = mirror_batch()
    url = watch(batch)
    BatchLive.objects.filter(batch=batch).delete()  # e.g. written with triggers switched off
    assert _redrawn(client, url)
    assert client.get(url, **HTMX).status_code == 200


# --- the services that write, as people and the poller use them (the sandbox as Kraken) --


def test_a_refresh_from_kraken_is_seen(client, watch, kraken_batch):
    url = watch(kraken_batch)
    services.batch_refresh(
        prime_batch_id=kraken_batch.prime_batch_id, actor=SystemActor.COMMAND_LINE
    )
    assert _redrawn(client, url)


def test_a_leg_request_its_approval_and_the_send_are_seen(
    client, watch, kraken_batch, operator, approver
):
    url = watch(kraken_batch)
    change = request_leg(_leg(kraken_batch), operator)
    assert _redrawn(client, url)

    url = watch(kraken_batch)
    (result,) = approve([change.pk], approver)  # the quorum's vote sends it to Kraken
    assert _redrawn(client, url)
    change.refresh_from_db()
    assert change.state == RequestState.DONE, result


def test_the_poller_seeing_a_transfer_complete_is_seen(
    client, watch, kraken_batch, operator, approver, prime_settings
):
    change = request_leg(_leg(kraken_batch), operator)
    approve([change.pk], approver)
    url = watch(kraken_batch)
    prime_settings.control.complete_pending_transfers()
    services.batch_refresh(prime_batch_id=kraken_batch.prime_batch_id, actor=SystemActor.POLLER)
    assert _redrawn(client, url)
    assert _leg(kraken_batch).transfer_status == "completed"


def test_a_rejection_a_withdrawal_and_an_expiry_are_seen(client, watch, operator, approver):
    batch = mirror_batch()
    rejected = open_request(_leg(batch, "BTC"), operator)
    url = watch(batch)
    services.leg_reject(change_id=rejected.pk, actor=approver, reason="not today")
    assert _redrawn(client, url)

    withdrawn = open_request(_leg(batch, "BTC"), operator)
    url = watch(batch)
    change_withdraw(change_id=withdrawn.pk, actor=operator)
    assert _redrawn(client, url)

    open_request(_leg(batch, "USD"), operator)
    url = watch(batch)
    assert change_expire_due(now=timezone.now() + timedelta(days=2)) == 1
    assert _redrawn(client, url)
