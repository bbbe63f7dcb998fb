"""Anchor: request preparation (nonce, compact JSON body, signature, headers) in this
client against python-kraken-sdk preparing and signing the same request, no network.

- primeapi: `PrimeClient._attempt` -- the client's own per-attempt code (per-key gate,
  nonce, `encode_body`, `sign`, headers) -- run up to the transport, whose `post` raises
  at once so nothing is sent. A second figure times the public method
  (`update_api_user_key`) end to end with a transport that answers instantly, so
  argument checks, the retry loop, response parsing into a dataclass and the
  logging/observer hook are included.
- python-kraken-sdk: `SpotClient._prepare_request(..., do_json=True)` (nonce, JSON body,
  `_get_kraken_signature`, headers) -- what `SpotClient.request` does before it sends;
  and `SpotClient.request` end to end with its session's `request` answering instantly.

Same endpoint path, same parameters, same secret; best of several repeats of many
iterations (perf_counter), so the figure is the machine's, not a noisy neighbour's.

    .venv/bin/python -m bench.signing [--iterations N] [--repeats R] [--json]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable

import requests

ENDPOINT = "UpdatePrimeApiUserKey"
URI = f"/0/private/{ENDPOINT}"
API_KEY = "bench" + "K" * 51
API_SECRET = base64.b64encode(bytes(range(64))).decode("ascii")
PARAMS = {
    "user_id": "AB4C7F9XQ2M3N",
    "key_id": "KEY7Q2M3N4P5R",
    "whitelisted_ips": ["10.0.0.1", "192.168.10.0/24", "203.0.113.7"],
}
_ANSWER = {
    "error": [],
    "result": {
        "id": PARAMS["key_id"],
        "api_key": API_KEY,
        "user_id": PARAMS["user_id"],
        "permissions": ["query_funds"],
        "whitelisted_ips": PARAMS["whitelisted_ips"],
        "updated_at": 1735689600000,
    },
}


class _Stop(Exception):
    """Raised by the fake transport: the request was fully prepared, nothing is sent."""


class _StopSession(requests.Session):
    def post(self, *args, **kwargs):  # type: ignore[override]
        raise _Stop


def _answer(body: dict) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps(body).encode("utf-8")
    response.headers["Content-Type"] = "application/json"
    response.encoding = "utf-8"
    return response


class _InstantSession(requests.Session):
    """Answers every request at once with a canned Kraken envelope."""

    def __init__(self, body: dict) -> None:
        super().__init__()
        self._body = body

    def post(self, *args, **kwargs):  # type: ignore[override]
        return _answer(self._body)

    def request(self, *args, **kwargs):  # type: ignore[override]
        return _answer(self._body)


def _time(fn: Callable[[], object], iterations: int, repeats: int) -> float:
    """Best mean seconds per call over `repeats` runs of `iterations` calls."""
    for _ in range(min(iterations, 2_000)):  # warm up
        fn()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(iterations):
            fn()
        best = min(best, (time.perf_counter() - started) / iterations)
    return best


def primeapi_prepare() -> Callable[[], object]:
    """One attempt of this client, stopped at the transport."""
    from primeapi.client import PrimeClient

    client = PrimeClient("http://127.0.0.1:9", API_KEY, API_SECRET, session=_StopSession())

    def prepare() -> None:
        with contextlib.suppress(_Stop):
            client._attempt(ENDPOINT, PARAMS)

    prepare()
    return prepare


def primeapi_call() -> Callable[[], object]:
    """The public method end to end against a transport that answers at once."""
    from primeapi.client import PrimeClient

    client = PrimeClient(
        "http://127.0.0.1:9", API_KEY, API_SECRET, session=_InstantSession(_ANSWER)
    )

    def call() -> object:
        return client.update_api_user_key(
            PARAMS["user_id"], PARAMS["key_id"], PARAMS["whitelisted_ips"]
        )

    call()
    return call


def kraken_prepare() -> Callable[[], object]:
    """python-kraken-sdk: what SpotClient.request does before it sends."""
    from kraken.base_api import SpotClient

    client = SpotClient(key=API_KEY, secret=API_SECRET)

    def prepare() -> object:
        return client._prepare_request(method="POST", uri=URI, params=dict(PARAMS), do_json=True)

    prepare()
    return prepare


def kraken_call() -> Callable[[], object]:
    """python-kraken-sdk: SpotClient.request end to end, its session answering at once."""
    from kraken.base_api import SpotClient

    client = SpotClient(key=API_KEY, secret=API_SECRET)
    session = _InstantSession(_ANSWER)
    client._SpotClient__session = session  # its private session (name-mangled)

    def call() -> object:
        return client.request("POST", URI, params=dict(PARAMS), do_json=True)

    call()
    return call


def signatures_agree() -> bool:
    """Both sign the same bytes the same way (Kraken's scheme), so the race is fair."""
    from kraken.base_api import SpotClient

    from primeapi.signing import sign

    body = '{"nonce":1,"user_id":"x"}'
    theirs = SpotClient(key=API_KEY, secret=API_SECRET)._get_kraken_signature(
        url_path=URI, data=body, nonce=1
    )
    return theirs == sign(secret=API_SECRET, url_path=URI, nonce=1, body=body)


def measure(*, iterations: int = 100_000, repeats: int = 5) -> dict:
    """Seconds per request for each side, and the ratios the target is about."""
    logging.getLogger("primeapi").setLevel(logging.WARNING)
    ours = _time(primeapi_prepare(), iterations, repeats)
    theirs = _time(kraken_prepare(), iterations, repeats)
    ours_call = _time(primeapi_call(), max(1, iterations // 4), repeats)
    theirs_call = _time(kraken_call(), max(1, iterations // 4), repeats)
    from importlib.metadata import version

    return {
        "endpoint": ENDPOINT,
        "params": PARAMS,
        "iterations": iterations,
        "repeats": repeats,
        "kraken_sdk_version": version("python-kraken-sdk"),
        "signatures_agree": signatures_agree(),
        "primeapi_prepare_us": ours * 1e6,
        "kraken_prepare_us": theirs * 1e6,
        "prepare_ratio": ours / theirs,
        "primeapi_call_noop_transport_us": ours_call * 1e6,
        "kraken_call_noop_transport_us": theirs_call * 1e6,
        "call_ratio": ours_call / theirs_call,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = measure(iterations=args.iterations, repeats=args.repeats)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
