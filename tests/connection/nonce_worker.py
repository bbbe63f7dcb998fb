"""One OS process of the shared-nonce test: N Prime calls through get_prime_client().

Usage: python -m tests.connection.nonce_worker CALLS START_AT_EPOCH_SECONDS
Prints one JSON line: {"ok": n, "errors": [exception class names]}.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    calls, start_at = int(sys.argv[1]), float(sys.argv[2])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from portal.connection.door import get_prime_client
    from primeapi.errors import PrimeError

    get_prime_client()  # connect and build before the start line
    while time.time() < start_at:
        time.sleep(0.001)
    ok, errors = 0, []
    for _ in range(calls):
        try:
            get_prime_client().list_api_users()
            ok += 1
        except PrimeError as exc:
            errors.append(type(exc).__name__)
    print(json.dumps({"ok": ok, "errors": errors}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
