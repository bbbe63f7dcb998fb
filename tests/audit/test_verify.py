"""manage.py verify_audit: passes on an intact chain, names the first broken event otherwise."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from portal.audit.models import AuditChainHead, AuditEvent
from tests.audit.conftest import record, tamper


def verify(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("verify_audit", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def broken(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("verify_audit", *args, stdout=out, stderr=err)
    assert caught.value.returncode == 1
    return f"{caught.value}\n{err.getvalue()}"


def test_it_passes_on_a_fresh_database(db):
    out, _ = verify("--no-progress")
    assert out.startswith("OK: 0 events")


def test_it_passes_on_an_intact_chain_and_reports_a_summary(db):
    last = record(5)
    out, err = verify()
    assert "OK: 5 events intact (seq 1..5)" in out
    assert f"head 5:{last.hash}" in out
    assert "verify_audit: done 5 events" in err  # the progress reporter's plain line


def test_an_edited_event_is_named_as_content_changed(db):
    record(5)
    tamper("UPDATE audit_auditevent SET message = 'nothing to see' WHERE seq = 3")
    text = broken()
    assert "audit chain broken at event #3: content changed" in text


def test_an_edited_json_field_is_caught(db):
    record(4)
    tamper("""UPDATE audit_auditevent SET after = '{"label":"forged"}' WHERE seq = 2""")
    assert "event #2: content changed" in broken()


def test_a_deleted_event_is_named_as_a_gap(db):
    record(5)
    tamper("DELETE FROM audit_auditevent WHERE seq = 3")
    text = broken()
    assert "event #4: gap in seq: #3 missing" in text


def test_a_swapped_pair_is_named_as_reordering(db):
    record(5)
    tamper("UPDATE audit_auditevent SET seq = -1 WHERE seq = 2")
    tamper("UPDATE audit_auditevent SET seq = 2 WHERE seq = 3")
    tamper("UPDATE audit_auditevent SET seq = 3 WHERE seq = -1")
    text = broken()
    assert (
        "audit chain broken at event #2: out of place: its content was hashed as event #3" in text
    )


def test_a_rewritten_link_is_named(db):
    record(4)
    tamper("UPDATE audit_auditevent SET prev_hash = %s WHERE seq = 3", ["f" * 64])
    text = broken()
    assert "event #3" in text


def test_deleting_the_newest_events_is_caught_by_the_head(db):
    record(5)
    tamper("DELETE FROM audit_auditevent WHERE seq >= 4")
    assert "missing: the head is at #5 but the last event is #3" in broken()


def test_a_head_that_disagrees_with_the_last_event_is_caught(db):
    record(3)
    tamper("UPDATE audit_auditchainhead SET hash = %s", ["e" * 64])
    assert "head mismatch" in broken()


def test_print_head_gives_an_anchor_that_expect_head_accepts(db):
    last = record(3)
    out, _ = verify("--print-head", "--no-progress")
    assert out.strip() == f"3:{last.hash}"
    record(2)
    out, _ = verify("--expect-head", out.strip(), "--no-progress")
    assert "anchor #3 matches" in out


def test_a_chain_rewritten_consistently_is_caught_by_the_external_anchor(db):
    record(3)
    out, _ = verify("--print-head", "--no-progress")
    anchor = out.strip()
    # An attacker with the database rewrites history and recomputes every hash and the head.
    tamper("DELETE FROM audit_auditevent")
    tamper("DELETE FROM audit_auditchainhead")
    record(3, message="rewritten")
    verify("--no-progress")  # the chain alone looks fine
    assert "differs from the external anchor" in broken("--expect-head", anchor)


def test_an_anchor_beyond_the_end_of_the_chain_is_caught(db):
    last = record(2)
    assert "the chain ends at event #2" in broken("--expect-head", f"9:{last.hash}")


def test_a_malformed_anchor_is_refused(db):
    with pytest.raises(CommandError, match="expected SEQ:HASH"):
        call_command("verify_audit", "--expect-head", "nonsense")


def test_events_written_around_audit_record_are_caught(db):
    last = record(2)
    tamper(
        "INSERT INTO audit_auditevent (seq, occurred_at, actor_label, action, target_type, "
        "target_id, outcome, prime_endpoint, message, client_ip, user_agent, request_id, "
        "prev_hash, hash) SELECT 3, occurred_at, actor_label, action, target_type, target_id, "
        "outcome, prime_endpoint, message, client_ip, user_agent, request_id, hash, hash "
        "FROM audit_auditevent WHERE seq = 2"
    )
    assert AuditEvent.objects.count() == 3
    assert AuditChainHead.objects.get().seq == last.seq
    assert "events after the head (#2)" in broken()
