"""Fixtures for the Prime users and keys tests: the sandbox, a signed-in operator, helpers."""

from __future__ import annotations

import pytest

from primeapi.client import WRITE_ENDPOINTS

HX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def _fresh_prime_clients():
    """Cached Prime clients never outlive a test (each test has its own sandbox settings)."""
    from portal.connection import door

    door.forget_clients()
    yield
    door.forget_clients()


@pytest.fixture
def prime(prime_settings):
    """The sandbox the portal talks to, reset, with its control API."""
    return prime_settings


@pytest.fixture
def control(prime):
    return prime.control


@pytest.fixture
def admin_client(prime):
    """A Prime client with the account's admin key, acting 'outside the portal'."""
    from primeapi import PrimeClient

    client = PrimeClient(prime.url, prime.admin_key, prime.admin_secret)
    yield client
    client.close()


@pytest.fixture
def op_client(client, operator):
    """The Django test client, signed in as an Operator."""
    client.force_login(operator)
    return client


@pytest.fixture
def viewer_client(db, viewer):
    """A second test client, signed in as a Viewer (independent of `op_client`)."""
    from django.test import Client

    client = Client()
    client.force_login(viewer)
    return client


@pytest.fixture
def make_prime_user(prime, operator):
    """Create a Prime API user through the portal's service."""
    from portal.users.services import prime_user_create

    def make(name: str = "Alice Trading Bot", role: str = "Viewer", **labels):
        return prime_user_create(actor=operator, name=name, role=role, **labels)

    return make


@pytest.fixture
def prime_user(make_prime_user):
    return make_prime_user()


class WriteLog:
    """The sandbox's executed write calls since the log was opened."""

    def __init__(self, control) -> None:
        self.control = control
        self.mark()

    def mark(self) -> None:
        calls = self.control.calls()
        self.since = calls[-1]["seq"] if calls else 0

    def writes(self) -> list[dict]:
        return [
            c
            for c in self.control.calls(since=self.since)
            if c["endpoint"] in WRITE_ENDPOINTS and c.get("executed")
        ]


@pytest.fixture
def write_log(control):
    return WriteLog(control)


@pytest.fixture
def approve(approver):
    """An Approver approves a pending change request (the latest, or the one given)."""
    from portal.approvals import services
    from portal.approvals.models import ChangeRequest, RequestState, StepUpMethod, VoteDecision

    def run(change=None):
        if change is None:
            change = ChangeRequest.objects.filter(state=RequestState.PENDING).latest("pk")
        return services.change_vote(
            change_id=change.pk,
            actor=approver,
            decision=VoteDecision.APPROVE,
            step_up=StepUpMethod.TOTP,
        )

    return run
