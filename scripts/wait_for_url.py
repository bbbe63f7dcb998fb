"""Wait until a URL answers 200: `python scripts/wait_for_url.py URL [--pid PID] [--timeout S]`.

Exit 0 once it answers, 1 after the timeout (default 60 s), 2 as soon as PID (the
process that should serve it) is gone. Used by scripts/run and the Procfile; stdlib only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--pid", type=int)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if args.pid is not None:
            try:
                os.kill(args.pid, 0)
            except OSError:
                return 2
        try:
            with urllib.request.urlopen(args.url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return 0
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    return 1


if __name__ == "__main__":
    sys.exit(main())
