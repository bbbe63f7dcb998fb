"""Permission walk entries for the key pages."""

from __future__ import annotations

import uuid

from tests.walk.cases import ALL_ROLES, Case
from tests.walk.expect_users import mirror_user

OPERATOR = frozenset({"Operator"})


def _user(_sandbox) -> dict:
    return {"prime_id": mirror_user().prime_id}


def _key(_sandbox) -> dict:
    """A key in the mirror only."""
    from django.utils import timezone

    from portal.keys.models import ApiKey

    key = ApiKey.objects.create(
        prime_key_id=uuid.uuid4().hex[:13].upper(),
        user=mirror_user(),
        public_key="walk" + uuid.uuid4().hex,
        permissions=["read::marketdata", "read::orders"],
        created_at=timezone.now(),
    )
    return {"prime_key_id": key.prime_key_id}


CASES = [
    Case("keys:list", allowed=ALL_ROLES, kwargs=_user),
    Case("keys:list", allowed=ALL_ROLES, kwargs=_user, htmx=True),
    Case("keys:issue", allowed=OPERATOR, kwargs=_user),
    Case("keys:issue", allowed=OPERATOR, method="POST", kwargs=_user),
    Case("keys:issue", allowed=OPERATOR, method="POST", kwargs=_user, htmx=True),
    Case("keys:user-resync", allowed=OPERATOR, method="POST", kwargs=_user),
    Case("keys:row", allowed=ALL_ROLES, kwargs=_key),
    Case("keys:row", allowed=ALL_ROLES, kwargs=_key, htmx=True),
    Case("keys:allowlist", allowed=OPERATOR, kwargs=_key),
    Case("keys:allowlist", allowed=OPERATOR, kwargs=_key, htmx=True),
    Case("keys:allowlist", allowed=OPERATOR, method="POST", kwargs=_key),
    Case("keys:allowlist", allowed=OPERATOR, method="POST", kwargs=_key, htmx=True),
    Case("keys:allowlist-preview", allowed=OPERATOR, method="POST", kwargs=_key),
    Case("keys:allowlist-preview", allowed=OPERATOR, method="POST", kwargs=_key, htmx=True),
    Case("keys:label", allowed=OPERATOR, kwargs=_key),
    Case("keys:label", allowed=OPERATOR, kwargs=_key, htmx=True),
    Case("keys:label", allowed=OPERATOR, method="POST", kwargs=_key, data={"label": "walk"}),
    Case("keys:label", allowed=OPERATOR, method="POST", kwargs=_key, htmx=True),
    Case("keys:revoke", allowed=OPERATOR, kwargs=_key),
    Case("keys:revoke", allowed=OPERATOR, kwargs=_key, htmx=True),
    Case("keys:revoke", allowed=OPERATOR, method="POST", kwargs=_key),
    Case("keys:revoke", allowed=OPERATOR, method="POST", kwargs=_key, htmx=True),
    Case("keys:resync", allowed=OPERATOR, method="POST", kwargs=_key),
    # The user's panel and the users list: the buttons that reach a user's keys too.
    Case("keys:sync", allowed=OPERATOR, method="POST"),
]
for _name in ("user-role-preview", "user-role", "user-detail-resync"):
    CASES.append(Case(f"keys:{_name}", allowed=OPERATOR, method="POST", kwargs=_user))
    CASES.append(Case(f"keys:{_name}", allowed=OPERATOR, method="POST", kwargs=_user, htmx=True))
