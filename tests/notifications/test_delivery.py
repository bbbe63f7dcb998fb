"""Delivery over a real SMTP server and a real signed-webhook receiver, with outages."""

from __future__ import annotations

import json
from datetime import timedelta

from django.utils import timezone

from portal.notifications.delivery import _claim, deliver_due, sign, verify
from portal.notifications.models import Delivery, DeliveryState, EventType, Preference
from portal.notifications.services import notify
from tests.conftest import make_staff


def _people(webhook, n=3):
    people = []
    for i in range(n):
        person = make_staff(f"person{i}", "Operator")
        person.email = f"person{i}@example.test"
        person.save()
        Preference.objects.create(
            staff=person, event_type=EventType.CHANGE_DECIDED, email=True, webhook=webhook
        )
        people.append(person)
    return people


def _events(people, count=2):
    for i in range(count):
        notify(
            event_type=EventType.CHANGE_DECIDED,
            event_key=f"change_decided:{i}:approved",
            recipients=people,
            title=f"Your request was approved: change {i}",
            body="Decided by: approver.",
            path=f"/approvals/{i}/",
        )


def test_outages_are_retried_with_backoff_and_everything_arrives_once(
    db, smtp, hook_receiver, webhook
):
    people = _people(webhook)
    _events(people)
    assert Delivery.objects.count() == 12  # 2 events x 3 people x (email + webhook)

    smtp.stop()
    hook_receiver.stop()
    now = timezone.now()
    down = deliver_due(now=now)
    assert (down.sent, down.failed) == (0, 12)
    failed = Delivery.objects.first()
    assert failed.attempts == 1 and failed.state == DeliveryState.PENDING
    assert failed.next_attempt_at >= now + timedelta(seconds=30)
    assert "example" not in failed.last_error and "127.0.0.1" not in failed.last_error
    assert deliver_due(now=now + timedelta(seconds=5)).claimed == 0  # backing off

    smtp.start()  # both come back, on the same ports
    hook_receiver.start()
    later = now + timedelta(seconds=31)
    back = deliver_due(now=later)
    assert (back.sent, back.failed) == (12, 0)
    assert deliver_due(now=later + timedelta(hours=2)).claimed == 0  # nothing sent twice

    keys = {n.dedup_key for p in people for n in p.notifications.all()}
    assert len(keys) == 6
    assert sorted(smtp.box.keys()) == sorted(keys)
    assert sorted(hook_receiver.keys()) == sorted(keys)
    assert hook_receiver.refused == 0
    mail = smtp.box.messages[0]
    assert mail["Message-ID"].startswith("<") and mail["X-Portal-Dedup-Key"] in mail["Message-ID"]
    text = mail.get_payload()
    assert "https://portal.example.test/approvals/" in text
    body = json.loads(hook_receiver.accepted[0]["body"])
    assert body["text"].startswith("*Your request was approved")
    assert body["link"].startswith("https://portal.example.test/approvals/")
    assert body["dedup_key"] in keys


def test_a_worker_that_dies_mid_delivery_leaves_it_to_another(db, settings, smtp, webhook):
    person = make_staff("solo", "Operator")
    person.email = "solo@example.test"
    person.save()
    notify(
        event_type=EventType.CHANGE_WAITING,
        event_key="change_waiting:7",
        recipients=[person],
        title="Waiting for your vote",
        body="",
        path="/approvals/7/",
    )
    now = timezone.now()
    claimed = _claim(now, 10, "dead-worker")  # claimed, then the worker is killed
    assert len(claimed) == 1
    assert deliver_due(now=now + timedelta(seconds=10)).claimed == 0  # still claimed
    after = now + timedelta(seconds=settings.NOTIFY_CLAIM_SECONDS + 1)
    assert deliver_due(now=after).sent == 1
    assert len(smtp.box.keys()) == 1


def test_a_repeated_event_is_one_notification(db, webhook):
    people = _people(webhook, n=1)
    _events(people, count=1)
    _events(people, count=1)
    assert people[0].notifications.count() == 1


def test_a_wrong_secret_is_refused_by_the_receiver_and_retried(db, hook_receiver, webhook):
    from portal.connection.crypto import encrypt_secret

    webhook.secret_token = encrypt_secret("not-the-receivers-secret")
    webhook.save()
    person = make_staff("hooked", "Operator")
    Preference.objects.create(staff=person, event_type=EventType.LEG_FAILED, webhook=webhook)
    notify(
        event_type=EventType.LEG_FAILED,
        event_key="leg_failed:x",
        recipients=[person],
        title="Leg failed",
        body="",
        path="/settlement/",
    )
    report = deliver_due()
    assert report.failed == 1 and hook_receiver.refused == 1
    assert Delivery.objects.get().last_error == "the webhook answered HTTP 401"


def test_signatures_cover_timestamp_and_body_and_expire():
    sig = sign("s3cret-s3cret-s3cret", "1000", b"{}")
    assert verify("s3cret-s3cret-s3cret", "1000", b"{}", sig, now=1100)
    assert not verify("s3cret-s3cret-s3cret", "1000", b"{ }", sig, now=1100)
    assert not verify("s3cret-s3cret-s3cret", "1001", b"{}", sig, now=1100)
    assert not verify("s3cret-s3cret-s3cret", "1000", b"{}", sig, now=1000 + 301)  # replay
