"""The approvals engine's writes, re-exported: `from portal.approvals import services`."""

from portal.approvals.services.common import (
    ApprovalError,
    ChangeOutcome,
    canonical_payload,
    payload_hash,
)
from portal.approvals.services.execute import (
    change_execute,
    change_execute_ready,
    change_reconcile,
)
from portal.approvals.services.policy import PolicyChangeKind, policy_change_request
from portal.approvals.services.requests import (
    change_expire_due,
    change_request_create,
    change_void_for_target,
    change_vote,
    change_withdraw,
)
from portal.approvals.services.review import change_mark_reviewed
from portal.approvals.services.stepup import step_up_confirm, step_up_is_recent

__all__ = [
    "ApprovalError",
    "ChangeOutcome",
    "PolicyChangeKind",
    "canonical_payload",
    "change_execute",
    "change_execute_ready",
    "change_expire_due",
    "change_mark_reviewed",
    "change_reconcile",
    "change_request_create",
    "change_void_for_target",
    "change_vote",
    "change_withdraw",
    "payload_hash",
    "policy_change_request",
    "step_up_confirm",
    "step_up_is_recent",
]
