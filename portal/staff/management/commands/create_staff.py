"""manage.py create_staff USERNAME [--role R ...] [--password-file F | --random-password]."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.actors import SystemActor
from portal.staff import services
from portal.staff.forms import StaffCreateForm
from portal.staff.roles import Role


class Command(BaseCommand):
    help = (
        "Create a portal staff member with the given roles. The password comes from "
        "--password-file, is generated with --random-password (printed once), or is typed "
        "at a prompt."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--role",
            action="append",
            default=[],
            choices=Role.values,
            help="A portal role; repeat for several.",
        )
        parser.add_argument("--display-name", default="")
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--password-file", help="Read the password from this file.")
        source.add_argument(
            "--random-password",
            action="store_true",
            help="Generate a password and print it once.",
        )
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="Do nothing (and succeed) if the username already exists.",
        )
        parser.add_argument(
            "--allow-weak-password",
            action="store_true",
            help="Skip the password-strength checks (demo data only).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        if options["if_missing"] and (
            get_user_model().objects.filter(username__iexact=username).exists()
        ):
            self.stdout.write(f"{username} already exists; nothing to do.")
            return
        password = self._password(options)
        form = StaffCreateForm(
            {
                "username": username,
                "display_name": options["display_name"],
                "roles": options["role"],
                "password": password or "",
            },
            check_password=not options["allow_weak_password"],
        )
        if not form.is_valid():
            problems = "; ".join(
                f"{name}: {' '.join(str(e) for e in errors)}"
                for name, errors in form.errors.items()
            )
            raise CommandError(problems)
        try:
            created = services.staff_create(
                actor=SystemActor.CREATE_STAFF,
                username=form.cleaned_data["username"],
                display_name=form.cleaned_data["display_name"],
                roles=form.cleaned_data["roles"],
                password=password,
            )
        except services.StaffRefused as exc:
            raise CommandError(str(exc)) from None
        roles = ", ".join(form.cleaned_data["roles"]) or "no role"
        self.stdout.write(self.style.SUCCESS(f"Created {created.staff.username} ({roles})."))
        if created.generated_password:
            self.stdout.write(f"Password (shown once): {created.generated_password}")

    def _password(self, options: dict[str, Any]) -> str | None:
        if options["random_password"]:
            return None
        if options["password_file"]:
            path = Path(options["password_file"])
            if not path.is_file():
                raise CommandError(f"{path} is not a file.")
            password = path.read_text(encoding="utf-8").rstrip("\r\n")
            if not password:
                raise CommandError(f"{path} is empty.")
            return password
        if not sys.stdin.isatty():
            raise CommandError(
                "No terminal to type a password: use --password-file or --random-password."
            )
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("The passwords do not match.")
        if not first:
            raise CommandError("The password is empty.")
        return first
