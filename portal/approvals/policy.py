"""The approval policy in force: a row per kind an Admin changed, else the built-in default."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from portal.approvals import messages
from portal.approvals.models import ApprovalPolicy, ChangeKind

# (needs approval, approvers). Changes that only remove access run at once and are
# reviewed afterwards; those that open access or move money need one approver.
DEFAULT_POLICY: dict[str, tuple[bool, int]] = {
    ChangeKind.KEY_ISSUE: (True, 1),  # the keys app asks only for keys of Trader users
    ChangeKind.ALLOWLIST_WIDEN: (True, 1),
    ChangeKind.ALLOWLIST_NARROW: (False, 1),
    ChangeKind.ROLE_ESCALATE: (True, 1),
    ChangeKind.ROLE_DEMOTE: (False, 1),
    ChangeKind.USER_ENABLE: (True, 1),
    ChangeKind.USER_DISABLE: (False, 1),
    ChangeKind.KEY_REVOKE: (False, 1),
    ChangeKind.USER_CREATE: (False, 1),
    ChangeKind.BATCH_CREATE: (False, 1),
    ChangeKind.SETTLEMENT_LEG: (True, 1),
    ChangeKind.POLICY_CHANGE: (True, 1),
}
# Kinds that can never run without at least one approver.
ALWAYS_APPROVED: dict[str, str] = {
    ChangeKind.SETTLEMENT_LEG: messages.POLICY_SETTLEMENT_MINIMUM,
    ChangeKind.POLICY_CHANGE: messages.POLICY_POLICY_MINIMUM,
}
UNLISTED_DEFAULT = (True, 1)  # a kind not in the table (a stand-in) needs one approver


@dataclass(frozen=True)
class PolicyRule:
    kind: str
    needs_approval: bool
    approvers: int
    require_step_up_every_time: bool = False

    @property
    def quorum(self) -> int:
        return self.approvers if self.needs_approval else 0

    @property
    def label(self) -> str:
        try:
            return str(ChangeKind(self.kind).label)
        except ValueError:
            return self.kind

    def as_payload(self) -> dict[str, bool | int | str]:
        return asdict(self)


def rule_validate(*, kind: str, needs_approval: bool, approvers: int) -> None:
    """Raise ValueError (plain words) for a rule the portal must never accept."""
    if approvers not in (1, 2):
        raise ValueError("Approvers must be 1 or 2.")
    if kind in ALWAYS_APPROVED and not needs_approval:
        raise ValueError(ALWAYS_APPROVED[kind])


def _default(kind: str) -> PolicyRule:
    needs, approvers = DEFAULT_POLICY.get(kind, UNLISTED_DEFAULT)
    return PolicyRule(kind=str(kind), needs_approval=needs, approvers=approvers)


def policy_for(*, kind: str) -> PolicyRule:
    """The rule in force for one kind (one query)."""
    row = ApprovalPolicy.objects.filter(kind=kind).first()
    if row is None:
        return _default(kind)
    return PolicyRule(
        kind=row.kind,
        needs_approval=row.needs_approval or row.kind in ALWAYS_APPROVED,
        approvers=row.approvers,
        require_step_up_every_time=row.require_step_up_every_time,
    )


def policy_rules() -> list[PolicyRule]:
    """Every kind's rule in force, in the order of `ChangeKind` (one query)."""
    rows = {row.kind: row for row in ApprovalPolicy.objects.all()}
    rules = []
    for kind in ChangeKind:
        row = rows.get(kind.value)
        if row is None:
            rules.append(_default(kind.value))
        else:
            rules.append(
                PolicyRule(
                    kind=row.kind,
                    needs_approval=row.needs_approval or row.kind in ALWAYS_APPROVED,
                    approvers=row.approvers,
                    require_step_up_every_time=row.require_step_up_every_time,
                )
            )
    return rules


def needs_approval(*, kind: str) -> bool:
    """Whether a change of this kind must wait for an approver (for the app deciding)."""
    return policy_for(kind=kind).needs_approval
