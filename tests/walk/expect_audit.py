from portal.actors import SystemActor
from tests.walk.cases import ALL_ROLES, Case


def _one_event(sandbox) -> dict:
    from portal.audit.models import AuditAction, TargetType
    from portal.audit.services import audit_record

    event = audit_record(
        actor=SystemActor.COMMAND_LINE,
        action=AuditAction.KEY_LABEL_CHANGED,
        target_type=TargetType.KEY,
        target_id="WALKKEY",
        before={"label": "a"},
        after={"label": "b"},
    )
    return {"seq": event.seq}


CASES = [
    Case("audit:list", allowed=ALL_ROLES),
    Case("audit:list", allowed=ALL_ROLES, htmx=True),
    Case("audit:detail", allowed=ALL_ROLES, kwargs=_one_event),
    Case("audit:export", allowed=ALL_ROLES),
]
