"""Create one demo account per portal role with published passwords (development only)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.actors import SystemActor
from portal.staff.roles import Role, ensure_roles
from portal.staff.services import staff_create, staff_role_set

# (username, display name, roles). Two approvers, so a settlement can be approved by
# someone other than the person who requested it.
DEMO_ACCOUNTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("viewer", "Vic Viewer", (Role.VIEWER,)),
    ("operator", "Otto Operator", (Role.OPERATOR,)),
    ("approver", "April Approver", (Role.APPROVER,)),
    ("approver2", "Brook Approver", (Role.APPROVER,)),
    ("admin", "Ada Admin", (Role.ADMIN,)),
)


def demo_password(username: str) -> str:
    """The published demo password of a demo account."""
    return f"demo-{username}-pass"


class Command(BaseCommand):
    help = "Create (or repair) the demo staff accounts, one per role, with known passwords."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quiet", action="store_true", help="do not print the logins")

    def handle(self, *args: Any, quiet: bool = False, **options: Any) -> None:
        if getattr(settings, "PRODUCTION", False):
            raise CommandError(
                "seed_demo creates accounts with published passwords; it refuses to run in "
                "production (PORTAL_ENV=production)."
            )
        ensure_roles()
        model = get_user_model()
        lines = []
        for username, display_name, roles in DEMO_ACCOUNTS:
            password = demo_password(username)
            staff = model.objects.filter(username=username).first()
            if staff is None:
                staff = staff_create(
                    actor=SystemActor.SEED_DEMO,
                    username=username,
                    display_name=display_name,
                    roles=[str(r) for r in roles],
                    password=password,
                ).staff
            else:
                for role in roles:
                    staff_role_set(
                        actor=SystemActor.SEED_DEMO, staff=staff, role=str(role), granted=True
                    )
                if not staff.check_password(password) or not staff.is_active:
                    staff.set_password(password)
                    staff.is_active = True
                    staff.save(update_fields=["password", "is_active"])
            lines.append(f"  {username:<10} {password:<22} {', '.join(str(r) for r in roles)}")
        if not quiet:
            self.stdout.write("Demo logins (development only):")
            self.stdout.write(f"  {'username':<10} {'password':<22} roles")
            for line in lines:
                self.stdout.write(line)
