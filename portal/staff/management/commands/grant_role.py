"""manage.py grant_role USERNAME ROLE [--revoke]."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.actors import SystemActor
from portal.staff import services
from portal.staff.roles import Role


class Command(BaseCommand):
    help = "Grant a portal role to a staff member, or take it away with --revoke."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("role", choices=Role.values)
        parser.add_argument("--revoke", action="store_true", help="Take the role away.")

    def handle(self, *args: Any, **options: Any) -> None:
        username, role, granted = options["username"], options["role"], not options["revoke"]
        staff = get_user_model().objects.filter(username=username).first()
        if staff is None:
            raise CommandError(f"No staff member called {username}.")
        try:
            services.staff_role_set(
                actor=SystemActor.GRANT_ROLE, staff=staff, role=role, granted=granted
            )
        except services.StaffRefused as exc:
            raise CommandError(str(exc)) from None
        done = "Granted" if granted else "Revoked"
        self.stdout.write(
            self.style.SUCCESS(f"{done} {role} {'to' if granted else 'from'} {username}.")
        )
