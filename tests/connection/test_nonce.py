"""The shared nonce counter: one atomic statement, keyed by the key's fingerprint, gated."""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections, transaction

from portal.connection import nonce as shared
from portal.connection.models import NonceCounter

# On PostgreSQL the counter commits on its own connection even inside a test's
# transaction (and would wait for rows the test wrote in it), so these tests run in
# autocommit, and each uses keys of its own.
KEY = ""


@pytest.fixture(autouse=True)
def _fresh_key(monkeypatch):
    monkeypatch.setattr(f"{__name__}.KEY", secrets.token_urlsafe(42))


@pytest.fixture
def source():
    source = shared.SharedNonce(gate_timeout=5)
    yield source
    source.release()


def _take(source, key=None) -> int:
    try:
        return source.next_nonce(key or KEY)
    finally:
        source.release()


@pytest.mark.django_db(transaction=True)
def test_nonces_strictly_increase_and_follow_the_clock(source):
    before = time.time_ns() // 1_000_000
    values = [_take(source) for _ in range(200)]
    assert values[0] >= before
    assert all(a < b for a, b in itertools.pairwise(values))


@pytest.mark.django_db(transaction=True)
def test_the_counter_is_keyed_by_the_keys_sha256_never_the_key(source):
    _take(source)
    fingerprint = hashlib.sha256(KEY.encode()).hexdigest()
    assert NonceCounter.objects.filter(pk=fingerprint).exists()
    rows = list(NonceCounter.objects.values_list("key_fingerprint", "value"))
    assert all(KEY not in str(field) for row in rows for field in row)


@pytest.mark.django_db(transaction=True)
def test_a_counter_ahead_of_the_clock_keeps_counting_up(source):
    ahead = time.time_ns() // 1_000_000 + 10_000_000
    NonceCounter.objects.update_or_create(
        key_fingerprint=shared.key_fingerprint(KEY), defaults={"value": ahead}
    )
    assert _take(source) == ahead + 1
    assert _take(source) == ahead + 2


@pytest.mark.django_db(transaction=True)
def test_another_process_moving_the_counter_is_respected(source):
    first = _take(source)
    NonceCounter.objects.filter(pk=shared.key_fingerprint(KEY)).update(value=first + 5000)
    assert _take(source) == first + 5001


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_counter_never_repeats_a_nonce_in_this_process(source):
    ahead = time.time_ns() // 1_000_000 + 10_000_000
    NonceCounter.objects.update_or_create(
        key_fingerprint=shared.key_fingerprint(KEY), defaults={"value": ahead}
    )
    with pytest.raises(RuntimeError), transaction.atomic():
        taken = _take(source)
        NonceCounter.objects.filter(pk=shared.key_fingerprint(KEY)).update(value=ahead)
        raise RuntimeError("roll back")
    assert _take(source) > taken


@pytest.mark.django_db(transaction=True)
def test_keys_have_separate_counters(source):
    other = secrets.token_urlsafe(42)
    a = _take(source)
    ahead = time.time_ns() // 1_000_000 + 10_000_000
    NonceCounter.objects.filter(pk=shared.key_fingerprint(KEY)).update(value=ahead)
    assert _take(source, other) < ahead
    assert _take(source) == ahead + 1
    assert a < ahead


def _file_gate_held() -> bool:
    import fcntl

    name = f"prime-nonce-{shared.key_fingerprint(KEY)[:16]}.lock"
    fd = os.open(Path(settings.VAR_DIR) / "locks" / name, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing also drops a lock this probe took
    return False


def _advisory_gate_held() -> bool:
    side = shared.new_side_connection()
    try:
        with side.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s",
                [shared._ADVISORY_CLASS],
            )
            return cursor.fetchone()[0] > 0
    finally:
        side.close()


@pytest.mark.django_db(transaction=True)
def test_the_gate_is_held_from_taking_a_nonce_until_release(source):
    # PostgreSQL: an advisory lock other sessions can see; SQLite: a flock on a file.
    held = _advisory_gate_held if connection.vendor == "postgresql" else _file_gate_held
    source.next_nonce(KEY)
    assert held()
    source.release()
    assert not held()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_inside_an_atomic_block_the_counter_is_neither_locked_nor_rolled_back(source):
    taken: list[int] = []

    def other_thread() -> None:
        try:
            taken.append(_take(shared.SharedNonce(gate_timeout=5)))
        finally:
            connections.close_all()

    with pytest.raises(RuntimeError), transaction.atomic():
        first = _take(source)
        # With the counter updated inside this transaction, the other thread would wait
        # for its row lock until this block ends; on the side connection it does not.
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join(timeout=5)
        assert not worker.is_alive()
        raise RuntimeError("roll back the caller's transaction")
    assert taken[0] > first
    stored = NonceCounter.objects.get(pk=shared.key_fingerprint(KEY)).value
    assert stored == taken[0]
