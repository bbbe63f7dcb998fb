"""manage.py prime_sync: reconcile the Prime users and keys mirror with Kraken."""

from __future__ import annotations

from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from portal.actors import SystemActor
from portal.commandline import command_progress
from portal.keys.services import PrimeActionFailed, prime_sync


class Command(BaseCommand):
    help = (
        "Read every Prime API user and key from Kraken, add what was created outside the "
        "portal, mark what disappeared, update what changed, and audit each difference."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--quiet-progress", action="store_true", help="do not draw the progress bar"
        )

    def handle(self, *args: str, **options: object) -> None:
        with command_progress(
            self, label="prime_sync", unit="users", enabled=not options["quiet_progress"]
        ) as bar:

            def report(done: int, total: int, name: str) -> None:
                bar.set_total(total)
                bar.advance(done - bar.done)

            try:
                result = prime_sync(actor=SystemActor.SYNC, progress=report)
            except PrimeActionFailed as failure:
                raise CommandError(failure.message) from None
        if result.baseline:
            self.stdout.write(
                f"First sync: {result.users_seen} user(s) and {result.keys_seen} key(s) imported "
                "as the baseline (not marked as changed outside the portal)."
            )
        self.stdout.write(
            f"Checked {result.users_seen} user(s) and {result.keys_seen} key(s): "
            f"{len(result.differences)} difference(s) recorded in the audit trail."
        )
        for line in result.differences:
            self.stdout.write(f"  {line}")
