"""Two Admins removing each other at once still leave one Admin (PostgreSQL row locks)."""

import threading
import time

import pytest
from django.db import connection

from portal.staff import services
from tests.conftest import make_staff


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_admins_revoking_each_other_at_once_leave_one_admin(monkeypatch):
    first, second = make_staff("first.admin", "Admin"), make_staff("second.admin", "Admin")
    locked = threading.Event()
    real = services._locked_active_admin_ids

    def slow_lock():
        ids = real()
        if not locked.is_set():
            locked.set()
            time.sleep(0.5)  # hold the lock while the other change tries to start
        return ids

    monkeypatch.setattr(services, "_locked_active_admin_ids", slow_lock)
    outcomes: dict[str, str] = {}

    def revoke(actor, target):
        try:
            services.staff_role_set(actor=actor, staff=target, role="Admin", granted=False)
            outcomes[actor.username] = "done"
        except services.StaffRefused:
            outcomes[actor.username] = "refused"
        finally:
            connection.close()

    one = threading.Thread(target=revoke, args=(first, second))
    one.start()
    assert locked.wait(timeout=10)
    two = threading.Thread(target=revoke, args=(second, first))
    two.start()
    one.join(timeout=30)
    two.join(timeout=30)

    assert sorted(outcomes.values()) == ["done", "refused"]
    admins = {s.username for s in (first, second) if s.groups.filter(name="Admin").exists()}
    assert len(admins) == 1
