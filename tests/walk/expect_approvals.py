from tests.walk.cases import ALL_ROLES, Case

ADMIN = frozenset({"Admin"})
NOBODY = frozenset()  # only the requester, who is none of the walk's personas


def _policy_request(sandbox) -> dict:
    """A pending policy change asked for by an Admin who is not one of the walk's personas."""
    from portal.approvals.services import policy_change_request
    from tests.conftest import make_staff

    requester = make_staff("walk-requesting-admin", "Admin")
    outcome = policy_change_request(
        kind="key_revoke",
        needs_approval=True,
        approvers=1,
        require_step_up_every_time=False,
        actor=requester,
        reason="walk",
    )
    return {"pk": outcome.change.pk}


CASES = [
    Case("approvals:inbox", allowed=ALL_ROLES),
    Case("approvals:inbox", allowed=ALL_ROLES, htmx=True),
    Case("approvals:count", allowed=ALL_ROLES, htmx=True),
    Case("approvals:approve-selected", allowed=ALL_ROLES, method="POST", data={"change": "1"}),
    Case("approvals:policy", allowed=ADMIN),
    Case(
        "approvals:policy-request",
        allowed=ADMIN,
        method="POST",
        data={"kind": "user_create", "needs_approval": "on", "approvers": "1"},
    ),
    Case("approvals:detail", allowed=ALL_ROLES, kwargs=_policy_request),
    Case("approvals:detail", allowed=ALL_ROLES, kwargs=_policy_request, htmx=True),
    Case("approvals:evidence", allowed=ALL_ROLES, kwargs=_policy_request),
    Case(
        "approvals:vote",
        allowed=ADMIN,
        method="POST",
        kwargs=_policy_request,
        data={"decision": "reject", "comment": "walk"},
    ),
    Case("approvals:withdraw", allowed=NOBODY, method="POST", kwargs=_policy_request),
    Case("approvals:execute", allowed=NOBODY, method="POST", kwargs=_policy_request),
    Case("approvals:reconcile", allowed=ADMIN, method="POST", kwargs=_policy_request),
]
