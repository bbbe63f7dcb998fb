"""The signed-in person read with the session in one statement (issue 13): the same
answers as Django's `get_user` and django-otp's middleware, one statement instead of three."""

from __future__ import annotations

import pytest
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY

from portal.staff.models import PortalSecurity, PortalSession, Staff
from portal.staff.principal import device_pk
from tests.staff.otp import confirmed_device, verified_login

pytestmark = pytest.mark.django_db


def _home(client):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("home"))
    return response, [q["sql"] for q in queries.captured_queries]


def test_session_person_and_two_factor_facts_are_one_statement(client, viewer):
    client.force_login(viewer)
    client.get(reverse("home"))
    response, statements = _home(client)
    assert response.status_code == 200
    assert len(statements) == 1, statements
    assert "staff_session" in statements[0] and "otp_totp_totpdevice" in statements[0]


def test_a_verified_person_is_one_statement_too_and_stays_verified(client, viewer):
    device = verified_login(client, viewer)
    client.get(reverse("home"))
    response, statements = _home(client)
    assert len(statements) == 1, statements
    assert response.context["user"].is_verified()
    assert response.context["user"].otp_device.pk == device.pk
    # The row carries the person and the device the session was verified with.
    row = PortalSession.objects.get(pk=client.session.session_key)
    assert (row.staff_id, row.otp_device_id) == (viewer.pk, device.pk)


def test_a_deactivated_person_is_signed_out_on_their_next_request(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("home")).status_code == 200
    Staff.objects.filter(pk=viewer.pk).update(is_active=False)
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("staff:login"))


def test_a_password_changed_elsewhere_ends_the_session(client, viewer):
    client.force_login(viewer)
    key = client.session.session_key
    assert client.get(reverse("home")).status_code == 200
    viewer.set_password("another long passphrase 77")
    viewer.save()
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert not PortalSession.objects.filter(pk=key).exists()  # flushed, as Django does


def test_a_session_hash_made_with_an_old_secret_is_renewed(client, viewer, settings):
    settings.SECRET_KEY_FALLBACKS = ["an older secret key, still accepted, 0123456789abcdef"]
    client.force_login(viewer)
    old_hash = viewer.get_session_auth_fallback_hash()
    session = client.session
    session[HASH_SESSION_KEY] = next(iter(old_hash))
    session.save()
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert client.session[HASH_SESSION_KEY] == viewer.get_session_auth_hash()


def test_a_removed_device_is_no_longer_verified_and_is_forgotten(client, viewer):
    device = verified_login(client, viewer)
    device.delete()  # an Admin's two-factor reset
    response = client.get(reverse("home"))
    assert response.status_code == 200  # two-factor is optional here
    assert not response.context["user"].is_verified()
    assert DEVICE_ID_SESSION_KEY not in client.session
    assert PortalSession.objects.get(pk=client.session.session_key).otp_device_id is None


def test_another_persons_device_does_not_verify(client, viewer, operator):
    verified_login(client, viewer)
    theirs = confirmed_device(operator)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = theirs.persistent_id
    session.save()
    response = client.get(reverse("home"))
    # Viewer has an app of their own and is not verified by it: the two-factor step.
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("staff:two-factor"))


def test_required_two_factor_is_read_with_the_person(client, viewer, admin):
    client.force_login(viewer)
    assert client.get(reverse("home")).status_code == 200
    PortalSecurity.objects.update_or_create(
        pk=PortalSecurity.SINGLETON_ID, defaults={"require_two_factor": True}
    )
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("staff:two-factor-setup"))


def test_a_row_that_disagrees_with_its_data_is_not_trusted(client, viewer, operator):
    client.force_login(viewer)
    # Someone (or something) changed the row's person column: the data still says viewer.
    PortalSession.objects.filter(pk=client.session.session_key).update(staff_id=operator.pk)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("home"))
    assert response.status_code == 200
    assert response.context["user"].pk == viewer.pk
    assert len(queries) == 2  # the session, then the person by the data


def test_a_session_naming_nobody_who_exists_is_anonymous(client, viewer):
    client.force_login(viewer)
    session = client.session
    session[SESSION_KEY] = "987654"  # nobody has this key (staff are never deleted)
    session.save()
    assert PortalSession.objects.get(pk=session.session_key).staff_id == 987654
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("staff:login"))


@pytest.mark.parametrize(
    ("persistent_id", "expected"),
    [
        ("otp_totp.totpdevice/12", 12),
        ("otp_totp.models.TOTPDevice/7", 7),
        ("otp_static.staticdevice/3", None),
        ("otp_totp.totpdevice/x", None),
        ("", None),
        (None, None),
        (12, None),
    ],
)
def test_the_device_a_session_names(persistent_id, expected):
    assert device_pk(persistent_id) == expected


def test_open_sessions_are_copied_by_the_migration(viewer):
    from importlib import import_module

    from django.apps import apps
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    migration = import_module("portal.staff.migrations.0003_portal_session")
    store = SessionStore()
    data = {"_auth_user_id": str(viewer.pk), "otp_device_id": "otp_totp.totpdevice/41"}
    Session.objects.create(
        session_key="k" * 32,
        session_data=store.encode(data),
        expire_date=timezone.now() + timezone.timedelta(minutes=5),
    )
    Session.objects.create(
        session_key="e" * 32,
        session_data=store.encode(data),
        expire_date=timezone.now() - timezone.timedelta(minutes=5),
    )
    migration.copy_open_sessions(apps, None)
    copied = PortalSession.objects.get(pk="k" * 32)
    assert (copied.staff_id, copied.otp_device_id) == (viewer.pk, 41)
    assert store.decode(copied.session_data) == data
    assert not PortalSession.objects.filter(pk="e" * 32).exists()


class _OwnWayBackend:
    """A backend that finds people its own way (not ModelBackend's get_user)."""

    def get_user(self, user_id):
        return Staff.objects.filter(pk=user_id, is_active=True).first()


def _session_with_backend(client, person, path):
    from django.contrib.auth import BACKEND_SESSION_KEY

    client.force_login(person)
    session = client.session
    session[BACKEND_SESSION_KEY] = path
    session.save()


def test_a_backend_of_its_own_kind_finds_the_person_and_the_facts_still_come(
    client, viewer, settings
):
    path = f"{__name__}._OwnWayBackend"
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, path]
    _session_with_backend(client, viewer, path)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert response.context["user"].pk == viewer.pk
    assert response.context["user"].is_verified() is False


def test_a_session_naming_a_backend_that_finds_nobody_is_anonymous(client, viewer):
    # django-axes' backend only guards sign-in: it has no get_user.
    _session_with_backend(client, viewer, "axes.backends.AxesStandaloneBackend")
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("staff:login"))
