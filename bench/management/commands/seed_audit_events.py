"""manage.py seed_audit_events --count N: append N realistic events as one valid chain, fast."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bench.audit_seed import seed_events
from portal.commandline import command_progress


class Command(BaseCommand):
    help = (
        "Append COUNT synthetic audit events (varied actors, actions, targets, outcomes, "
        "spread over --days) that continue the chain, for volume tests. Uses COPY on "
        "PostgreSQL. Never run it against a production database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--days", type=float, default=365.0, help="time span to spread over")
        parser.add_argument("--chunk-size", type=int, default=20_000)
        parser.add_argument("--seed", type=int, default=1, help="random seed (repeatable data)")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["count"] < 1:
            raise CommandError("--count must be at least 1")
        show = options["verbosity"] > 0 and not options["no_progress"]
        with command_progress(
            self, label="seed_audit_events", unit="events", total=options["count"], enabled=show
        ) as bar:
            last = seed_events(
                count=options["count"],
                days=options["days"],
                chunk_size=options["chunk_size"],
                seed=options["seed"],
                on_progress=bar.advance,
            )
        self.stdout.write(f"Seeded {options['count']:,} events; head is now #{last}.")
