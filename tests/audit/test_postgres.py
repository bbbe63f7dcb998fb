"""PostgreSQL: the triggers refuse UPDATE, DELETE and TRUNCATE; concurrent writers stay gapless."""

from __future__ import annotations

import threading

import pytest
from django.db import DatabaseError, connection, connections, transaction

from portal.audit.models import AuditChainHead, AuditEvent
from portal.audit.verify import verify_chain
from tests.audit.conftest import record

pytestmark = pytest.mark.postgres


def _refused(sql: str, params=()) -> str:
    with pytest.raises(DatabaseError) as caught, transaction.atomic(), connection.cursor() as c:
        c.execute(sql, params)
    return str(caught.value)


def test_update_of_an_event_is_refused(db):
    record(2)
    assert "append-only: UPDATE" in _refused("UPDATE audit_auditevent SET message = 'x'")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(seq=1).update(message="forged")
    assert AuditEvent.objects.get(seq=1).message == ""


def test_delete_of_an_event_is_refused(db):
    record(2)
    assert "append-only: DELETE" in _refused("DELETE FROM audit_auditevent WHERE seq = 1")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.get(seq=2).delete()
    assert AuditEvent.objects.count() == 2


def test_truncate_of_the_events_is_refused(db):
    record(2)
    assert "append-only: TRUNCATE" in _refused("TRUNCATE audit_auditevent")
    assert AuditEvent.objects.count() == 2


def test_the_chain_head_only_moves_forward(db):
    record(3)
    assert "only moves forward" in _refused("UPDATE audit_auditchainhead SET seq = 1")
    assert "only moves forward" in _refused("UPDATE audit_auditchainhead SET hash = %s", ["0" * 64])
    assert "only moves forward" in _refused("DELETE FROM audit_auditchainhead")
    assert "only moves forward" in _refused("TRUNCATE audit_auditchainhead")
    assert AuditChainHead.objects.get().seq == 3


def test_inserting_events_stays_allowed(db):
    record(3)
    assert AuditEvent.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_produce_one_gapless_chain():
    """Eight threads, each on its own connection, append at once; starting from no head row."""
    writers, each = 8, 25
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(each):
                with transaction.atomic():
                    record(message=f"writer {n} event {i}")
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, writers * each + 1))
    report = verify_chain()
    assert report.ok, report.problems
    assert report.events == writers * each
    # The teardown flush TRUNCATEs the audit table: it passes only through the
    # tests/conftest.py bypass, which this test therefore exercises too.


@pytest.mark.django_db(transaction=True)
def test_the_test_flush_bypass_does_not_open_the_table_to_the_application():
    record(1)
    assert "append-only: TRUNCATE" in _refused("TRUNCATE audit_auditevent")
