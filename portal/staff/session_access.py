"""A signed-in person's roles and permissions, read once per session and kept in it.

Every page checks permissions (navigation, the view's own gate) and shows the person's
roles. Read from the database that costs three statements per request (the person's own
permissions, their groups' permissions, their roles); here they are read once, stored in
the session, and put where Django's ModelBackend looks for them (`_perm_cache` and
friends), so `user.has_perm()` answers without a query.

Whenever something that decides them changes (a role granted or revoked, a group's
permissions, a person's own permissions, `is_active` / `is_superuser`), the stored copy is
dropped from every session of the people concerned, in the database, after the change
commits, so the change takes effect on their next request, in every web process.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.utils import timezone

from portal.staff.models import PortalSession, Staff
from portal.staff.roles import Role
from portal.staff.sessions import SessionStore

SESSION_KEY = "_portal_access"

# The session of the request being handled, so a change made by this very request also
# drops the copy it holds in memory (it would otherwise be saved back at the end).
_current: ContextVar[tuple[int, SessionBase] | None] = ContextVar("portal_access", default=None)


def _read(user: Staff) -> dict[str, list[str]]:
    backend = ModelBackend()
    held = set(user.groups.values_list("name", flat=True))
    return {
        "user": sorted(backend.get_user_permissions(user)),
        "group": sorted(backend.get_group_permissions(user)),
        "roles": [role.value for role in Role if role.value in held],
    }


def apply(user: Staff, session: SessionBase) -> None:
    """Give `user` its roles and permissions from the session (read them the first time)."""
    stored = session.get(SESSION_KEY)
    if not isinstance(stored, dict) or stored.get("pk") != user.pk:
        stored = {"pk": user.pk, **_read(user)}
        session[SESSION_KEY] = stored
    user_perms = set(stored["user"])
    group_perms = set(stored["group"])
    # Where ModelBackend keeps what it read (django/contrib/auth/backends.py).
    user._user_perm_cache = user_perms  # type: ignore[attr-defined]
    user._group_perm_cache = group_perms  # type: ignore[attr-defined]
    user._perm_cache = user_perms | group_perms  # type: ignore[attr-defined]
    user.role_names = list(stored["roles"])


def bind(user_pk: int, session: SessionBase) -> object:
    """Remember the request's session (see `forget`); returns the token for `unbind`."""
    return _current.set((user_pk, session))


def unbind(token: Any) -> None:
    _current.reset(token)


def _drop(user_pks: set[int] | None) -> None:
    """Remove the stored copy from the sessions of these people (None: everybody)."""
    store = SessionStore()
    sessions = PortalSession.objects.filter(expire_date__gt=timezone.now())
    if user_pks is not None:
        # The person is a column of the portal's sessions: only theirs are read.
        sessions = sessions.filter(staff_id__in=user_pks)
    wanted = None if user_pks is None else {str(pk) for pk in user_pks}
    for row in sessions.iterator():
        data = store.decode(row.session_data)
        if SESSION_KEY not in data:
            continue
        if wanted is not None and str(data.get("_auth_user_id")) not in wanted:
            continue
        data.pop(SESSION_KEY)
        PortalSession.objects.filter(pk=row.pk).update(session_data=store.encode(data))


def forget(user_pks: set[int] | None) -> None:
    """Drop the stored roles and permissions of these people (None: everybody), once the
    change that makes them stale has committed."""
    current = _current.get()
    if current is not None and (user_pks is None or current[0] in user_pks):
        current[1].pop(SESSION_KEY, None)
    _drop(user_pks)
    if transaction.get_connection().in_atomic_block:
        # Again once committed: a request of theirs that read the old roles meanwhile may
        # have saved them back into its session.
        transaction.on_commit(lambda: _drop(user_pks))


# Signal receivers (connected in apps.py) ------------------------------------------------


def on_logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Read them as the person signs in, so their pages never have to (and warm the cached
    two-factor requirement their next request asks about)."""
    from portal.staff.selectors import two_factor_required

    session = getattr(request, "session", None)
    if session is not None and isinstance(user, Staff):
        apply(user, session)
    two_factor_required()


def on_groups_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any
) -> None:
    """Staff.groups changed, from either side."""
    if action not in ("post_add", "post_remove", "post_clear", "pre_clear"):
        return
    if not reverse:
        forget({instance.pk})
    elif action in ("pre_clear", "post_clear") or pk_set is None:
        forget(None)
    else:
        forget(set(pk_set))


def on_user_permissions_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any
) -> None:
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    forget(None if reverse else {instance.pk})


def on_group_permissions_changed(sender: Any, action: str, **kwargs: Any) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        forget(None)


def on_staff_saved(
    sender: Any, instance: Staff, created: bool, update_fields: Any = None, **kwargs: Any
) -> None:
    # Signing in only stamps last_login; is_active / is_superuser may change the rest.
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return
    forget({instance.pk})


def on_group_deleted(sender: Any, **kwargs: Any) -> None:
    forget(None)
