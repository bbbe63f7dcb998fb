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


def _change(kind: str, state: str, quorum: int, target_id: str, requester_executes: bool) -> int:
    """A change request asked for by someone who is none of the walk's personas."""
    from django.utils import timezone

    from portal.approvals.models import ChangeRequest
    from portal.approvals.services import canonical_payload, payload_hash
    from tests.conftest import make_staff

    text = canonical_payload({"label": "walk", "whitelisted_ips": []})
    now = timezone.now()
    change = ChangeRequest.objects.create(
        kind=kind,
        target_type="prime_user",
        target_id=target_id,
        payload=text,
        payload_hash=payload_hash(text),
        requested_by=make_staff(f"walk-requester-{uuid.uuid4().hex[:8]}", "Operator"),
        state=state,
        quorum=quorum,
        requester_executes=requester_executes,
        created_at=now,
        expires_at=now + timezone.timedelta(hours=1),
        decided_at=now,
        execute_by=now + timezone.timedelta(minutes=30),
    )
    return change.pk


def _approved_key_issue(_sandbox) -> dict:
    """An approved Trader key issue of someone else: only its requester may carry it out."""
    return {"pk": _change("key_issue", "approved", 1, mirror_user().prime_id, True)}


def _done_at_once(_sandbox) -> dict:
    """A revocation that ran at once: an Approver reviews it afterwards."""
    return {"pk": _change("key_revoke", "done", 0, mirror_user().prime_id, False)}


APPROVER = frozenset({"Approver"})

CASES += [
    # The requester's own page to issue an approved Trader key (404 for anyone else's).
    Case("keys:issue-approved", allowed=OPERATOR, kwargs=_approved_key_issue, also_ok=(404,)),
    Case(
        "keys:issue-approved",
        allowed=OPERATOR,
        method="POST",
        kwargs=_approved_key_issue,
        also_ok=(404,),
    ),
    # Reviewing afterwards (an approvals URL the users/keys kinds need).
    Case("approvals:reviewed", allowed=APPROVER, method="POST", kwargs=_done_at_once),
    Case("approvals:reviewed", allowed=APPROVER, method="POST", kwargs=_done_at_once, htmx=True),
]
