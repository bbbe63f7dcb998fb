"""Shared fixtures: named personas, the real sandbox on a loopback port, a Prime client."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop in e2e tests

PASSWORD = "correct horse battery staple 42"


def make_staff(username: str, *roles: str):
    """A staff member holding the given portal roles (Viewer, Operator, Approver, Admin)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from portal.staff.roles import ensure_roles

    ensure_roles()
    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    for role in roles:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def admin(db, django_user_model):
    return make_staff("ada.admin", "Admin")


@pytest.fixture
def operator(db, django_user_model):
    return make_staff("otto.operator", "Operator")


@pytest.fixture
def approver(db, django_user_model):
    return make_staff("april.approver", "Approver")


@pytest.fixture
def second_approver(db, django_user_model):
    return make_staff("brook.approver", "Approver")


@pytest.fixture
def viewer(db, django_user_model):
    return make_staff("vic.viewer", "Viewer")


@pytest.fixture
def outsider(db, django_user_model):
    """Signed in, but holds no portal role."""
    return make_staff("oscar.outsider")


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Every test starts with an empty cache (the two-factor requirement and the status strip
    are cached for a few seconds; a rolled-back test must not leave them to the next)."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(scope="session")
def sandbox():
    """The real Prime sandbox, serving HTTP on a free loopback port for the whole session."""
    from primeapi.sandbox import SandboxServer

    server = SandboxServer(host="127.0.0.1", port=0, rate_limit="off")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_sandbox(sandbox):
    """The session sandbox, reset to an empty account (same admin key) before the test."""
    sandbox.control.reset()
    yield sandbox
    sandbox.control.clear_faults()


@pytest.fixture
def prime_settings(settings, fresh_sandbox):
    """Point the portal at the sandbox through the PRIME_* settings."""
    settings.PRIME_API_URL = fresh_sandbox.url
    settings.PRIME_API_KEY = fresh_sandbox.admin_key
    settings.PRIME_API_SECRET = fresh_sandbox.admin_secret
    return fresh_sandbox


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """One test database per test run, which child processes of the run can find.

    SQLite: a file in this run's pytest temporary folder (not ``:memory:``), so live
    servers and spawned processes share it. PostgreSQL: ``test_portal_<pid>``, as
    several runs may share one server. Tests hand it to their child processes through
    ``DATABASE_URL`` (see ``child_environment`` in tests/settlement/conftest.py).
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        name = str(tmp_path_factory.getbasetemp() / "test-portal.sqlite3")
    else:
        name = f"test_portal_{os.getpid()}"
    database.setdefault("TEST", {})["NAME"] = name


def _on_postgres() -> bool:
    from django.conf import settings

    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` need real row locks/triggers: deselect them on SQLite.

    They are not skipped: CI runs the suite a second time on PostgreSQL, where they run.
    """
    if _on_postgres():
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("postgres") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# --- Audit trail: emptying tables past the append-only triggers (owned by the audit helper) ---


@pytest.fixture(scope="session", autouse=True)
def _flush_past_audit_triggers():
    """Let Django's test flush empty the audit tables on PostgreSQL, for tests only.

    `TransactionTestCase` (``django_db(transaction=True)``) and ``live_server``
    empty every table after each test with one ``TRUNCATE``, and the audit
    table's trigger (portal/audit/migrations/0004) refuses TRUNCATE. We wrap the
    PostgreSQL backend's ``sql_flush`` so the flush runs with
    ``SET LOCAL session_replication_role = replica``: triggers do not fire in
    that mode, and the setting lasts only for the flush's own transaction.
    Only a superuser may set it -- the tests connect as ``postgres``; the
    application's role in production cannot, so the guard is not weakened there
    (where the role should also lack UPDATE/DELETE/TRUNCATE, see docs/audit.md).
    """
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush
    if getattr(original, "audit_bypass", False):
        yield
        return

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = original(
            self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
        if statements:
            statements = ["SET LOCAL session_replication_role = replica", *statements]
        return statements

    sql_flush.audit_bypass = True
    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.sql_flush = original


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2's deliberate slowness only slows the suite; tests hash with MD5."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
