"""audit_record: one hash-chained, gapless, append-only event per call, in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.db import connection, transaction

from portal.actors import SystemActor
from portal.audit import context
from portal.audit.chain import GENESIS_HASH, event_hash, fields_of, json_text
from portal.audit.models import AuditAction, AuditChainHead, AuditEvent, Outcome, TargetType
from portal.audit.services import audit_record
from tests.audit.conftest import record, tamper


def test_each_event_links_to_the_one_before_with_a_gapless_seq(db):
    first = record()
    second = record()
    third = record()
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    head = AuditChainHead.objects.get()
    assert (head.seq, head.hash) == (3, third.hash)


def test_the_stored_event_hashes_to_its_hash(db):
    event = record(before={"amount": Decimal("1.50"), "nested": {"b": [1, 2.5, None]}})
    stored = AuditEvent.objects.get(seq=event.seq)
    assert stored.hash == event.hash
    assert event_hash(fields_of(stored)) == stored.hash
    assert stored.before == {"amount": "1.50", "nested": {"b": [1, 2.5, None]}}


def test_a_staff_actor_and_a_system_actor_are_named(db, operator):
    by_person = audit_record(
        actor=operator, action=AuditAction.KEY_ISSUED, target_type=TargetType.KEY
    )
    by_process = audit_record(
        actor=SystemActor.POLLER, action=AuditAction.LEG_STATUS_CHANGED, target_type=TargetType.LEG
    )
    assert (by_person.actor_id, by_person.actor_label) == (operator.pk, "otto.operator")
    assert (by_process.actor_id, by_process.actor_label) == (None, "system:prime_poll")


def test_the_request_context_is_recorded(db):
    ctx = context.RequestContext(
        client_ip="::ffff:10.1.2.3", user_agent="Firefox", request_id="req-1"
    )
    event = record(ctx=ctx)
    assert (event.client_ip, event.user_agent, event.request_id) == ("10.1.2.3", "Firefox", "req-1")
    stored = AuditEvent.objects.get(seq=event.seq)
    assert stored.recomputed_hash() == stored.hash


def test_an_unparseable_client_address_is_left_out(db):
    event = record(ctx=context.RequestContext(client_ip="not an address"))
    assert event.client_ip == ""


def test_time_never_goes_backwards_along_the_chain(db, clock):
    first = record()
    clock.advance(minutes=-5)  # the server clock jumps back
    second = record()
    assert second.occurred_at >= first.occurred_at


def test_text_the_database_cannot_store_is_cleaned_not_refused(db):
    event = record(message="nul\x00here", target_id="x" * 500, after={"k": "lone \ud800"})
    stored = AuditEvent.objects.get(seq=event.seq)
    assert "\x00" not in stored.message
    assert len(stored.target_id) == 128
    assert stored.recomputed_hash() == stored.hash


@dataclass(frozen=True)
class _Issued:
    api_key: str
    api_secret: str = field(repr=False)


def test_dataclasses_are_recorded_without_their_hidden_fields(db):
    event = record(prime_response=_Issued(api_key="PUBLIC", api_secret="S" * 40))
    assert event.prime_response == {"api_key": "PUBLIC"}


def test_json_is_stored_as_canonical_text(db):
    event = record(after={"b": 1, "a": {"d": 2, "c": 3}})
    with connection.cursor() as cursor:
        cursor.execute("SELECT after FROM audit_auditevent WHERE seq = %s", [event.seq])
        (text,) = cursor.fetchone()
    assert text == '{"a":{"c":3,"d":2},"b":1}' == json_text(event.after)


def test_the_event_rolls_back_with_the_callers_transaction(db):
    kept = record()

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        record(message="rolled back")
        raise Boom
    assert list(AuditEvent.objects.values_list("seq", flat=True)) == [kept.seq]
    assert AuditChainHead.objects.get().seq == kept.seq
    after = record()
    assert after.seq == kept.seq + 1
    assert after.prev_hash == kept.hash


def test_it_starts_from_the_last_event_if_the_head_row_is_missing(db):
    first = record()
    tamper("DELETE FROM audit_auditchainhead")
    second = record()
    assert (second.seq, second.prev_hash) == (first.seq + 1, first.hash)


def test_outcomes_other_than_success_are_recorded(db):
    event = record(outcome=Outcome.UNKNOWN, prime_endpoint="SettlePrimeSettlementBatchAsset")
    assert event.outcome == "unknown"
