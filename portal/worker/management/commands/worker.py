"""`manage.py worker`: the portal's background work in one process (run as many as you like).

The worker starts the job queue (django-q2's `qcluster`) as its child process and
then takes part in the leader election for the Kraken poller. The child is a fresh
program (no inherited leader connection) and is told by the kernel to stop when
the worker dies, even by `kill -9`, so a dead worker leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from portal.worker.ledger import worker_identity
from portal.worker.runner import lead_or_wait

logger = logging.getLogger("portal.worker")
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_queue() -> subprocess.Popen[bytes]:
    manage = Path(settings.BASE_DIR) / "manage.py"
    return subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, str(manage), "qcluster"],
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        start_new_session=False,
    )


def stop_queue(queue: subprocess.Popen[bytes]) -> None:
    """SIGTERM lets running jobs finish; after 30 s the queue is killed."""
    if queue.poll() is not None:
        return
    queue.terminate()
    try:
        queue.wait(timeout=30)
    except subprocess.TimeoutExpired:
        queue.kill()
        queue.wait(timeout=5)


class Command(BaseCommand):
    help = (
        "Run the portal's background work: the job queue (expiry of change requests, "
        "notification delivery, the daily digest, later scheduled jobs) and, in exactly one "
        "worker at a time (leader election), the Kraken poller. Runs until SIGINT/SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-queue",
            action="store_true",
            help="Only take part in the poller's leader election (no job queue).",
        )

    def handle(self, *args: object, **options: Any) -> None:
        identity = worker_identity()
        stop = threading.Event()
        queue = None if options["no_queue"] else start_queue()

        def ask_to_stop(signum: int, frame: FrameType | None) -> None:
            logger.info("worker %s stopping (signal %s)", identity, signum)
            stop.set()

        signal.signal(signal.SIGINT, ask_to_stop)
        signal.signal(signal.SIGTERM, ask_to_stop)

        def watch_queue() -> None:
            if queue is not None and queue.wait() is not None and not stop.is_set():
                logger.error(
                    "worker %s: the job queue exited (%s); stopping", identity, queue.returncode
                )
                stop.set()

        threading.Thread(target=watch_queue, name="queue-watch", daemon=True).start()
        logger.info("worker %s started (pid %s)", identity, os.getpid())
        try:
            lead_or_wait(stop, identity=identity)
        finally:
            if queue is not None:
                stop_queue(queue)
            logger.info("worker %s stopped", identity)
        if queue is not None and queue.returncode not in (0, -signal.SIGTERM):
            raise SystemExit(1)
