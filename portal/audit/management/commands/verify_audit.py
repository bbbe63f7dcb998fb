"""manage.py verify_audit: prove the audit chain (and optionally an export) untouched."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.audit.verify import DEFAULT_CHUNK, parse_anchor, verify_chain
from portal.commandline import command_progress


class Command(BaseCommand):
    help = (
        "Check every audit event's hash, the links between events, the gapless seq and the "
        "chain head; name the first broken event and exit 1 on any break. With --export FILE, "
        "prove an export file untouched and complete instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--print-head",
            action="store_true",
            help="after a clean check, print the head as SEQ:HASH on stdout (store it elsewhere)",
        )
        parser.add_argument(
            "--expect-head",
            metavar="SEQ:HASH",
            help="also check the chain (or the export) against a head stored outside the database",
        )
        parser.add_argument("--export", metavar="FILE", help="verify an export file")
        parser.add_argument(
            "--offline",
            action="store_true",
            help="with --export: check only the file itself, not against the database",
        )
        parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK)
        parser.add_argument("--no-progress", action="store_true", help="no progress output")

    def handle(self, *args: Any, **options: Any) -> None:
        anchor = None
        if options["expect_head"]:
            try:
                anchor = parse_anchor(options["expect_head"])
            except ValueError as exc:
                raise CommandError(f"--expect-head: {exc}") from exc
        show = options["verbosity"] > 0 and not options["no_progress"]
        if options["export"]:
            self._verify_export(options, anchor, show)
            return
        with command_progress(self, label="verify_audit", unit="events", enabled=show) as bar:
            report = verify_chain(
                chunk_size=options["chunk_size"],
                expect_head=anchor,
                on_progress=bar.advance,
                on_total=bar.set_total,
            )
        out = self.stderr if options["print_head"] else self.stdout
        if not report.ok:
            for problem in report.problems:
                self.stderr.write(f"BROKEN {problem}")
            raise CommandError(f"audit chain broken at {report.problems[0]}", returncode=1)
        head = f"{report.head_seq}:{report.head_hash}" if report.head_seq is not None else "0:-"
        out.write(
            f"OK: {report.events:,} events intact (seq {report.first_seq or 0}.."
            f"{report.last_seq}), head {head}"
            + (f", anchor #{anchor[0]} matches" if anchor else "")
            + f"; {report.elapsed:.2f}s, {report.rate:,.0f} events/s"
        )
        if options["print_head"]:
            self.stdout.write(head)

    def _verify_export(
        self, options: dict[str, Any], anchor: tuple[int, str] | None, show: bool
    ) -> None:
        from portal.audit.export import verify_export

        with command_progress(
            self, label="verify_audit --export", unit="rows", enabled=show
        ) as bar:
            result = verify_export(
                options["export"],
                against_database=not options["offline"],
                expect_head=anchor,
                on_progress=bar.advance,
            )
        for problem in result.problems:
            self.stderr.write(f"BROKEN {problem}")
        if not result.ok:
            raise CommandError(f"export not proven: {result.problems[0]}", returncode=1)
        self.stdout.write(f"OK: {result.summary()}")
