"""`manage.py prime_poll`: the Kraken poller by hand, as the workers run it.

It takes the same leader lock and spends the same shared request budget as the
workers (`portal.worker.runner`), so running it next to them never polls Kraken
twice nor spends more than the budget: `--once` runs one cycle if no worker leads
(and says who does otherwise); without `--once` it waits its turn like a worker.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.settlement.poller import Poller
from portal.worker.leader import leader_lock
from portal.worker.models import Leadership
from portal.worker.runner import POLLER_ROLE, lead_or_wait, make_poller

logger = logging.getLogger("portal.settlement.poller")


class Command(BaseCommand):
    help = (
        "Refresh active settlement batches and in-flight transfers from Kraken within the "
        "shared request budget; expire overdue requests; send approved legs that no longer "
        "wait; reconcile unknown outcomes. Takes the workers' leader lock: runs until "
        "SIGINT/SIGTERM (or one cycle with --once, refused while a worker leads)."
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

        def poller_factory() -> Poller:
            return make_poller(interval=float(interval), budget_per_minute=float(budget))

        if options["once"]:
            self._once(poller_factory, interval)
            return
        stop = threading.Event()

        def ask_to_stop(signum: int, frame: FrameType | None) -> None:
            logger.info("prime_poll stopping (signal %s)", signum)
            stop.set()

        signal.signal(signal.SIGINT, ask_to_stop)
        signal.signal(signal.SIGTERM, ask_to_stop)
        logger.info("prime_poll started interval=%ss budget=%s/min", interval, budget)
        cycles = lead_or_wait(stop, poller_factory=poller_factory)
        logger.info("prime_poll stopped after %d cycles", cycles)

    def _once(self, poller_factory: Callable[[], Poller], interval: float) -> None:
        lock = leader_lock(POLLER_ROLE)
        if not lock.acquire():
            lead = Leadership.objects.filter(role=POLLER_ROLE).first()
            holder = lead.holder if lead else "another process"
            raise CommandError(
                f"The Kraken poller is led by {holder}; it already polls within the shared "
                "budget, so nothing was polled. Stop that worker first to poll by hand."
            )
        try:
            poller = poller_factory()
            report = poller.run_cycle()
        finally:
            lock.release()
        line = report.line(poller.bucket.available, report.backoff or interval)
        logger.info(line)
        self.stdout.write(line)
