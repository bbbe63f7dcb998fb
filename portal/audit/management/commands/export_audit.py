"""manage.py export_audit: the audit trail (or a filtered part) as CSV or JSON Lines with proof."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.actors import SystemActor
from portal.audit.export import FORMATS, export_lines
from portal.audit.forms import AuditFilterForm
from portal.audit.models import AuditAction, TargetType
from portal.audit.services import audit_record
from portal.audit.verify import read_head
from portal.commandline import command_progress


class Command(BaseCommand):
    help = (
        "Export audit events matching the filters, oldest first, with a proof trailer that "
        "`verify_audit --export FILE` checks. The export itself is audited."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-o", "--output", required=True, help="file to write ('-' = stdout)")
        parser.add_argument(
            "--format",
            choices=FORMATS,
            default=None,
            help="csv or jsonl (default: from the file name, else csv)",
        )
        parser.add_argument("--actor")
        parser.add_argument("--action")
        parser.add_argument("--target-type")
        parser.add_argument("--target-id")
        parser.add_argument("--outcome")
        parser.add_argument("--since", help="ISO time, inclusive (UTC unless an offset is given)")
        parser.add_argument("--until", help="ISO time, exclusive")
        parser.add_argument("--q", help="free text over target id and actor")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        names = ("actor", "action", "target_type", "target_id", "outcome", "since", "until", "q")
        form = AuditFilterForm({n: options[n] for n in names if options.get(n)})
        if not form.is_valid():
            raise CommandError(
                "; ".join(
                    f"--{k.replace('_', '-')}: {' '.join(map(str, v))}"
                    for k, v in form.errors.items()
                )
            )
        if form.search_too_short:
            raise CommandError("--q: give 3 letters or digits in a row")
        filters = form.filters()
        output = options["output"]
        fmt = options["format"] or ("jsonl" if output.endswith((".jsonl", ".ndjson")) else "csv")
        operator = getpass.getuser()
        audit_record(
            actor=SystemActor.EXPORT,
            action=AuditAction.AUDIT_EXPORTED,
            target_type=TargetType.AUDIT,
            after={"format": fmt, "filter": filters.as_params(), "file": output},
            message=f"exported from the command line by OS user {operator}",
        )
        head = read_head()
        total = head[0] if head and filters.is_empty() else None
        show = options["verbosity"] > 0 and not options["no_progress"]
        handle = sys.stdout if output == "-" else open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115
        rows = 0
        try:
            with command_progress(
                self, label="export_audit", unit="events", total=total, enabled=show
            ) as bar:

                def advance(n: int) -> None:
                    nonlocal rows
                    rows += n
                    bar.advance(n)

                for piece in export_lines(
                    filters=filters,
                    fmt=fmt,
                    exported_by="system:export_audit",
                    on_progress=advance,
                ):
                    handle.write(piece)
        finally:
            if handle is not sys.stdout:
                handle.close()
        if output != "-":
            self.stdout.write(f"Exported {rows:,} events to {output} ({fmt}).")
