"""``python -m primeapi.sandbox``: run the Kraken Prime sandbox until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from primeapi.sandbox.auth import RATE_LIMIT_CHOICES
from primeapi.sandbox.server import SandboxServer
from primeapi.sandbox.storage import write_json_atomic


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m primeapi.sandbox", description="Local Kraken Prime REST sandbox."
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    parser.add_argument(
        "--credentials-file",
        required=True,
        help="where to write the admin credentials JSON (mode 0600)",
    )
    parser.add_argument("--state", help="JSON file to save the state to and reload it from")
    parser.add_argument("--demo", action="store_true", help="seed users, keys and trades")
    parser.add_argument(
        "--auto-confirm-after",
        type=_seconds,
        metavar="SECONDS",
        help="confirm batches this long after creation (default: only via the control API)",
    )
    parser.add_argument(
        "--transfer-delay",
        type=_seconds,
        metavar="SECONDS",
        help="complete transfers this long after creation (default: only via the control API)",
    )
    parser.add_argument("--rate-limit", choices=RATE_LIMIT_CHOICES, default="off")
    parser.add_argument("--quiet", action="store_true", help="do not log request lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Start the server, write the credentials file, print the URL, wait for a signal."""
    args = build_parser().parse_args(argv)
    server = SandboxServer(
        args.host,
        args.port,
        state_path=args.state,
        demo=args.demo,
        auto_confirm_after=args.auto_confirm_after,
        transfer_delay=args.transfer_delay,
        rate_limit=args.rate_limit,
        verbose=not args.quiet,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    server.start()
    try:
        write_json_atomic(args.credentials_file, server.admin_credentials())
        print(f"Kraken Prime sandbox listening on {server.url}", flush=True)
        print(f"Admin credentials written to {args.credentials_file}", flush=True)
        # Wake up regularly so signal handlers run promptly in the main thread.
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    print("Kraken Prime sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
