"""`manage.py prime_poll`: keep the settlement mirror fresh from Kraken, within a budget."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from portal.settlement.poller import Poller

logger = logging.getLogger("portal.settlement.poller")


class Command(BaseCommand):
    help = (
        "Refresh active settlement batches and in-flight transfers from Kraken within a "
        "request budget; expire overdue requests; send approved legs that no longer wait; "
        "reconcile unknown outcomes. Runs until "
        "SIGINT/SIGTERM (or one cycle with --once)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Run one cycle and exit.")
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="Seconds between cycles (default: PRIME_POLL_INTERVAL_SECONDS).",
        )
        parser.add_argument(
            "--budget-per-minute",
            type=float,
            default=None,
            help="Most Kraken requests a minute (default: PRIME_POLL_BUDGET_PER_MINUTE).",
        )

    def handle(self, *args: object, **options: Any) -> None:
        interval = options["interval"] or settings.PRIME_POLL_INTERVAL_SECONDS
        budget = options["budget_per_minute"] or settings.PRIME_POLL_BUDGET_PER_MINUTE
        poller = Poller(interval=interval, budget_per_minute=budget)
        if options["once"]:
            report = poller.run_cycle()
            line = report.line(poller.bucket.available, report.backoff or interval)
            logger.info(line)
            self.stdout.write(line)
            return
        stop = threading.Event()

        def ask_to_stop(signum: int, frame: FrameType | None) -> None:
            logger.info("prime_poll stopping (signal %s)", signum)
            stop.set()

        signal.signal(signal.SIGINT, ask_to_stop)
        signal.signal(signal.SIGTERM, ask_to_stop)
        logger.info("prime_poll started interval=%ss budget=%s/min", interval, budget)
        cycles = poller.run_forever(stop)
        logger.info("prime_poll stopped after %d cycles", cycles)
