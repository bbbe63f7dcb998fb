"""Who did something: a staff member, or one of the portal's named system actors.

Every service and `audit_record` takes `actor: Actor`. A person is their `Staff`
row; everything the portal does on its own (the poller, sync, expiry, a
management command) is one member of `SystemActor`, recorded in the audit trail
as ``system:<value>``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from portal.staff.models import Staff


class SystemActor(StrEnum):
    """The portal's own processes, as the audit trail names them (``system:<value>``)."""

    POLLER = "prime_poll"
    SYNC = "prime_sync"
    EXPIRY = "expiry"
    EXPORT = "export_audit"
    CREATE_STAFF = "create_staff"
    GRANT_ROLE = "grant_role"
    ROTATE_ENCRYPTION_KEY = "rotate_encryption_key"
    SEED_DEMO = "seed_demo"
    COMMAND_LINE = "command_line"


Actor: TypeAlias = "Staff | SystemActor"


def actor_label(actor: Actor | None) -> str:
    """How the audit trail names an actor: a username, ``system:<name>`` or ``anonymous``."""
    if actor is None:
        return "anonymous"
    if isinstance(actor, SystemActor):
        return f"system:{actor.value}"
    return actor.get_username() if actor.is_authenticated else "anonymous"


def actor_staff(actor: Actor | None) -> Staff | None:
    """The staff member behind an actor, or None for a system actor."""
    if actor is None or isinstance(actor, SystemActor):
        return None
    return actor if actor.pk is not None else None
