"""The signed-in person, read in one statement with what sign-in security needs.

Every request of a signed-in person needs the same things before its view runs: the person
(Django's `get_user`, one statement), the two-factor device their session was verified with
(django-otp's `OTPMiddleware`, one more), whether they have an authenticator app at all and
whether an Admin requires one for everyone (the two-factor gate, one or two more). Here
they are one statement, built once from the models' metadata:

    SELECT <the person's columns>, <the verified device's columns>,
           <has a confirmed device>, <two-factor required>
    FROM staff LEFT JOIN totp device ON <the session's device, the person's, confirmed>
    WHERE staff.id = <the session's person>

`PortalAuthenticationMiddleware` (portal/staff/middleware.py) gives the result to
`request.user` with the same rules as Django's `get_user` and django-otp's middleware
(inactive person: signed out; session hash no longer matching the password: signed out;
a device not confirmed or not the person's: not verified, and forgotten by the session).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, partial
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.base import SessionBase
from django.db import connection
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.middleware import is_verified as otp_is_verified
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.db import model_from_row, prepared_cursor, sql_column, sql_columns, sql_table
from portal.staff.models import PortalSecurity, PortalSession, Staff


@dataclass(frozen=True, slots=True)
class Principal:
    """The person, their verified device (None: not verified) and the two-factor facts."""

    staff: Staff
    device: TOTPDevice | None
    has_confirmed_device: bool
    two_factor_required: bool
    # What it was read for: the device asked about, the caller's extra scalar subquery
    # (`also`) and its value.
    asked_device: int | None = None
    also_sql: str | None = None
    also: Any = None


Also = tuple[str, list[Any]]


@cache
def _statement(vendor: str, also: str | None, by_session: bool) -> str:
    """The one statement (identifiers from the models' metadata; `vendor` keys the cache):
    by the person's primary key and a device id, or by a session key (the session's row,
    then the person and device it names); with the caller's scalar subquery `also` last."""
    staff_table, device_table = sql_table(Staff), sql_table(TOTPDevice)
    staff_pk, device_pk = sql_column(Staff, "pk"), sql_column(TOTPDevice, "pk")
    device_user = sql_column(TOTPDevice, "user")
    confirmed = sql_column(TOTPDevice, "confirmed")
    security_table, security_pk = sql_table(PortalSecurity), sql_column(PortalSecurity, "pk")
    required = sql_column(PortalSecurity, "require_two_factor")
    selected = sql_columns(Staff, "u") + sql_columns(TOTPDevice, "d")
    if by_session:
        key, expires = (
            sql_column(PortalSession, "session_key"),
            sql_column(PortalSession, "expire_date"),
        )
        session_staff = sql_column(PortalSession, "staff_id")
        session_device = sql_column(PortalSession, "otp_device_id")
        source = (
            f"FROM {sql_table(PortalSession)} ps "
            f"LEFT JOIN {staff_table} u ON u.{staff_pk} = ps.{session_staff} "
            f"LEFT JOIN {device_table} d ON d.{device_pk} = ps.{session_device} "
            f"AND d.{device_user} = u.{staff_pk} AND d.{confirmed} "
            f"WHERE ps.{key} = %s AND ps.{expires} > %s"
        )
        selected = sql_columns(PortalSession, "ps") + selected
    else:
        source = (
            f"FROM {staff_table} u LEFT JOIN {device_table} d ON d.{device_pk} = %s "
            f"AND d.{device_user} = u.{staff_pk} AND d.{confirmed} "
            f"WHERE u.{staff_pk} = %s"
        )
    # Identifiers from the models' metadata, quoted; the values are parameters.
    return (
        f"SELECT {', '.join(selected)}, "  # noqa: S608
        f"EXISTS (SELECT 1 FROM {device_table} x WHERE x.{device_user} = u.{staff_pk} "
        f"AND x.{confirmed}), "
        f"EXISTS (SELECT 1 FROM {security_table} s WHERE s.{security_pk} = %s AND s.{required})"
        f"{f', ({also})' if also else ''} {source}"
    )


def device_pk(persistent_id: object) -> int | None:
    """The TOTP device a session's `otp_device_id` names (django-otp's persistent id,
    `otp_totp.totpdevice/<pk>`), or None for anything else."""
    if not isinstance(persistent_id, str) or "/" not in persistent_id:
        return None
    label, _, pk = persistent_id.rpartition("/")
    if persistent_id.count(".") > 1:  # django-otp's older "app.models.Model/pk" spelling
        parts = label.split(".")
        label = f"{parts[0]}.{parts[-1]}"
    if label.lower() != TOTPDevice._meta.label_lower or not pk.isdigit():
        return None
    return int(pk)


def _principal(row: Any, asked_device: int | None, also: Also | None) -> Principal | None:
    """The Principal from the person's part of a row (None: no such person)."""
    staff_count = len(Staff._meta.concrete_fields)
    device_count = len(TOTPDevice._meta.concrete_fields)
    if row[0] is None:  # the session names nobody (or nobody who still exists)
        return None
    staff = model_from_row(Staff, row[:staff_count])
    device_values = row[staff_count : staff_count + device_count]
    found = None if device_values[0] is None else model_from_row(TOTPDevice, device_values)
    has_device, required, *extra = row[staff_count + device_count :]
    return Principal(
        staff=staff,
        device=found,
        has_confirmed_device=bool(has_device),
        two_factor_required=bool(required),
        asked_device=asked_device,
        also_sql=also[0] if also is not None else None,
        also=extra[0] if extra else None,
    )


def read(*, staff_pk: int, device: int | None, also: Also | None = None) -> Principal | None:
    """The person with this primary key (None when there is none) and the facts above;
    `also` (a scalar SELECT and its parameters) is asked in the same statement."""
    also_sql, also_params = also if also is not None else (None, [])
    with prepared_cursor() as cursor:
        cursor.execute(
            _statement(connection.vendor, also_sql, False),
            [PortalSecurity.SINGLETON_ID, *also_params, device, staff_pk],
        )
        row = cursor.fetchone()
    return None if row is None else _principal(row, device, also)


def read_with_session(
    session_key: str, *, also: Also | None = None
) -> tuple[PortalSession | None, Principal | None]:
    """An unexpired session's row and the person it names, in one statement (the portal's
    sessions, portal/staff/sessions.py, read themselves with this)."""
    also_sql, also_params = also if also is not None else (None, [])
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with prepared_cursor() as cursor:
        cursor.execute(
            _statement(connection.vendor, also_sql, True),
            [PortalSecurity.SINGLETON_ID, *also_params, session_key, now],
        )
        row = cursor.fetchone()
    if row is None:
        return None, None
    count = len(PortalSession._meta.concrete_fields)
    session = model_from_row(PortalSession, row[:count])
    return session, _principal(row[count:], session.otp_device_id, also)


# The signed-in person of a request ------------------------------------------------------


@cache
def _is_model_backend(path: str) -> bool:
    """Whether the backend at `path` finds people as ModelBackend does (one row by pk,
    active only), so the one statement above can stand in for its `get_user`."""
    return getattr(type(load_backend(path)), "get_user", None) is ModelBackend.get_user


def _mark(user: Any, device: TOTPDevice | None) -> None:
    """What django-otp's middleware gives every user: `otp_device` and `is_verified()`."""
    user.otp_device = device
    user.is_verified = partial(otp_is_verified, user)


def user_for(request: HttpRequest, *, also: tuple[str, list[Any]] | None = None) -> Any:
    """The request's person, as Django's `auth.get_user` and django-otp's `OTPMiddleware`
    would give it, in one statement: a `Staff` with `otp_device`, `is_verified()` and
    `two_factor` (the Principal, with `also` answered), or an `AnonymousUser`."""
    session = request.session
    try:
        staff_pk = Staff._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        return _anonymous()
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return _anonymous()
    persistent_id = session.get(DEVICE_ID_SESSION_KEY)
    wanted_device = device_pk(persistent_id)
    if _is_model_backend(backend_path):
        principal = _read_with_session(session, staff_pk, wanted_device, also)
        if principal is None:
            principal = read(staff_pk=staff_pk, device=wanted_device, also=also)
        user: Any = principal.staff if principal is not None else None
        if user is not None and not ModelBackend().user_can_authenticate(user):
            user = None
    else:  # another kind of backend finds the person its own way; the facts from here
        get_user = getattr(load_backend(backend_path), "get_user", None)
        user = get_user(staff_pk) if get_user is not None else None
        found = user is not None
        principal = read(staff_pk=user.pk, device=wanted_device, also=also) if found else None
    if user is None or principal is None:
        return _anonymous()
    if not _session_hash_holds(session, user):
        return _anonymous()
    _mark(user, principal.device)
    user.two_factor = principal
    if principal.device is None and persistent_id is not None:
        del session[DEVICE_ID_SESSION_KEY]  # as django-otp: a device no longer valid is forgotten
    return user


def _read_with_session(
    session: SessionBase, staff_pk: int, wanted_device: int | None, also: Also | None
) -> Principal | None:
    """The Principal the session read with itself, when it is the one wanted: the same
    person and device as the session's data names now, and the same `also`."""
    found: Principal | None = getattr(session, "principal", None)
    if found is None or found.staff.pk != staff_pk or found.asked_device != wanted_device:
        return None
    if also is not None and found.also_sql != also[0]:
        return None
    return found


def _session_hash_holds(session: SessionBase, user: Staff) -> bool:
    """Django's check that the session was made with the person's current password (a
    fallback secret's hash is renewed; anything else ends the session)."""
    session_hash = session.get(HASH_SESSION_KEY)
    if session_hash and constant_time_compare(session_hash, user.get_session_auth_hash()):
        return True
    if session_hash and any(
        constant_time_compare(session_hash, fallback)
        for fallback in user.get_session_auth_fallback_hash()
    ):
        session.cycle_key()
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        return True
    session.flush()
    return False


def _anonymous() -> AnonymousUser:
    user = AnonymousUser()
    _mark(user, None)
    return user
