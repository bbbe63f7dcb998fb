"""manage.py seed_demo: one demo account per role, idempotent, development only."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from portal.connection.management.commands.seed_demo import DEMO_ACCOUNTS, demo_password

pytestmark = pytest.mark.django_db


def _accounts():
    model = get_user_model()
    return {
        user.username: sorted(g.name for g in user.groups.all())
        for user in model.objects.prefetch_related("groups")
    }


def test_it_creates_one_account_per_role_with_the_published_passwords(capsys):
    call_command("seed_demo")
    accounts = _accounts()
    assert accounts == {
        "viewer": ["Viewer"],
        "operator": ["Operator"],
        "approver": ["Approver"],
        "approver2": ["Approver"],
        "admin": ["Admin"],
    }
    model = get_user_model()
    for username, _, _ in DEMO_ACCOUNTS:
        assert model.objects.get(username=username).check_password(demo_password(username))
    out = capsys.readouterr().out
    assert "admin" in out and demo_password("admin") in out


def test_running_it_again_repairs_without_duplicating():
    call_command("seed_demo", quiet=True)
    model = get_user_model()
    operator = model.objects.get(username="operator")
    operator.set_password("changed-by-someone")
    operator.is_active = False
    operator.save()
    operator.groups.clear()
    call_command("seed_demo", quiet=True)
    assert model.objects.count() == len(DEMO_ACCOUNTS)
    operator.refresh_from_db()
    assert operator.is_active
    assert operator.check_password(demo_password("operator"))
    assert _accounts()["operator"] == ["Operator"]


def test_it_refuses_to_run_in_production(settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="refuses to run in production"):
        call_command("seed_demo")
    assert not get_user_model().objects.exists()
