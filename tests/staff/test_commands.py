import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from portal.audit.models import AuditAction, AuditEvent
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_staff_reads_the_password_from_a_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("a-long-file-password-9\n")

    out = _run(
        "create_staff", "nina", "--role", "Viewer", "--role", "Operator", "--password-file", secret
    )

    nina = get_user_model().objects.get(username="nina")
    assert nina.check_password("a-long-file-password-9")
    assert sorted(g.name for g in nina.groups.all()) == ["Operator", "Viewer"]
    assert "Created nina (Viewer, Operator)." in out
    assert "a-long-file-password-9" not in out
    event = AuditEvent.objects.get(action=AuditAction.STAFF_CREATED)
    assert event.actor_label == "system:create_staff"


def test_create_staff_prints_a_random_password_once(db):
    out = _run("create_staff", "nina", "--random-password", "--role", "Admin")

    password = out.split("Password (shown once): ", 1)[1].strip()
    assert get_user_model().objects.get(username="nina").check_password(password)


def test_create_staff_prompts_for_the_password_on_a_terminal(monkeypatch):
    typed = iter(["a-long-typed-password-7", "a-long-typed-password-7"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))

    _run("create_staff", "nina")

    assert get_user_model().objects.get(username="nina").check_password("a-long-typed-password-7")


def test_create_staff_without_a_terminal_or_option_fails_loudly(monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)

    with pytest.raises(CommandError, match="--password-file or --random-password"):
        _run("create_staff", "nina")


def test_create_staff_refuses_weak_passwords_unless_told(tmp_path):
    weak = tmp_path / "pw"
    weak.write_text("12345678")

    with pytest.raises(CommandError, match="password"):
        _run("create_staff", "nina", "--password-file", weak)
    _run("create_staff", "nina", "--password-file", weak, "--allow-weak-password")

    assert get_user_model().objects.filter(username="nina").exists()


def test_create_staff_if_missing_leaves_an_existing_account_alone(viewer):
    out = _run("create_staff", "vic.viewer", "--random-password", "--if-missing")

    assert "already exists" in out
    with pytest.raises(CommandError, match="already exists"):
        _run("create_staff", "vic.viewer", "--random-password")


def test_grant_role_grants_and_revokes(viewer):
    assert "Granted Approver to vic.viewer." in _run("grant_role", "vic.viewer", "Approver")
    assert viewer.groups.filter(name="Approver").exists()

    _run("grant_role", "vic.viewer", "Approver", "--revoke")

    assert not viewer.groups.filter(name="Approver").exists()
    assert AuditEvent.objects.filter(action=AuditAction.STAFF_ROLES_CHANGED).count() == 2


def test_grant_role_keeps_the_last_admin(db):
    make_staff("only.admin", "Admin")

    with pytest.raises(CommandError, match="last active Admin"):
        _run("grant_role", "only.admin", "Admin", "--revoke")


def test_grant_role_names_a_missing_person(db):
    with pytest.raises(CommandError, match="No staff member called ghost"):
        _run("grant_role", "ghost", "Viewer")
