"""Fixtures: one sandbox per session, a tiny signed-request helper, schema checks."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import yaml

from primeapi.sandbox import SandboxServer
from primeapi.sandbox.clock import ManualClock
from primeapi.signing import sign

# A vendored copy of the Prime contract (prime-rest/openapi.yaml): tests read nothing
# outside the repository, so a new contract is copied in by hand.
OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")
PRIVATE = "/0/private/"

_nonce_lock = threading.Lock()
_last_nonce = 0


def next_nonce() -> int:
    """Strictly increasing microsecond nonce, shared by every test and key."""
    global _last_nonce
    with _nonce_lock:
        _last_nonce = max(_last_nonce + 1, time.time_ns() // 1000)
        return _last_nonce


def compact(payload: dict[str, Any]) -> str:
    """The project's wire format: compact JSON."""
    return json.dumps(payload, separators=(",", ":"))


@dataclass
class Caller:
    """Signs and posts Prime requests with one key, exactly like a client would."""

    url: str
    key: str
    secret: str

    def post(
        self,
        endpoint: str,
        params: dict[str, Any] | None = None,
        *,
        nonce: int | str | None = None,
        body: str | bytes | None = None,
        content_type: str = "application/json",
        signed_path: str | None = None,
        signature: str | None = None,
        query: str = "",
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> requests.Response:
        """POST one signed request; every part can be overridden to build bad requests."""
        if nonce is None:
            nonce = next_nonce()
        if body is None:
            body = compact({"nonce": nonce, **(params or {})})
        path = f"{PRIVATE}{endpoint}{query}"
        if signature is None:
            signature = sign(
                secret=self.secret, url_path=signed_path or path, nonce=nonce, body=body
            )
        sent = {"API-Key": self.key, "API-Sign": signature, "Content-Type": content_type}
        sent.update(headers or {})
        return requests.post(self.url + path, data=body, headers=sent, timeout=timeout)

    def call(self, endpoint: str, params: dict[str, Any] | None = None, **kw: Any) -> dict:
        """POST and decode the JSON envelope."""
        return self.post(endpoint, params, **kw).json()

    def result(self, endpoint: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        """POST, require success, check the response against the yaml, return ``result``."""
        envelope = self.call(endpoint, params, **kw)
        assert envelope["error"] == [], envelope
        assert_matches_openapi(endpoint, envelope)
        return envelope["result"]

    def error(self, endpoint: str, params: dict[str, Any] | None = None, **kw: Any) -> list:
        """POST, require a Kraken-style error answered with HTTP 200, return ``error``."""
        response = self.post(endpoint, params, **kw)
        assert response.status_code == 200, response.text
        envelope = response.json()
        assert "result" not in envelope, envelope
        return envelope["error"]


# ------------------------------------------------------------------ openapi


@cache
def openapi() -> dict[str, Any]:
    """The Prime OpenAPI document."""
    return yaml.safe_load(OPENAPI_PATH.read_text())


# Fields the sandbox legitimately leaves out (see the package docstring).
OPTIONAL_FIELDS = {"settled_at", "trade_ids"}


def _exact(schema: Any) -> Any:
    """Make every documented object exact: no undocumented fields, none missing."""
    if isinstance(schema, dict):
        schema = {key: _exact(value) for key, value in schema.items()}
        if schema.get("type") == "object" and "properties" in schema:
            schema["additionalProperties"] = False
            required = set(schema.get("required", [])) | set(schema["properties"])
            schema["required"] = sorted(required - OPTIONAL_FIELDS)
        return schema
    if isinstance(schema, list):
        return [_exact(item) for item in schema]
    return schema


@cache
def response_validator(endpoint: str) -> jsonschema.protocols.Validator:
    """Validator for the 200 response of ``endpoint``, ``$ref``s resolved from the yaml."""
    document = openapi()
    operation = document["paths"][PRIVATE + endpoint]["post"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    root = {**_exact(schema), "components": _exact(copy.deepcopy(document["components"]))}
    return jsonschema.Draft202012Validator(root)


def assert_matches_openapi(endpoint: str, envelope: dict[str, Any]) -> None:
    """Assert a success envelope matches the yaml's 200 schema exactly."""
    errors = sorted(response_validator(endpoint).iter_errors(envelope), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


# ----------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def server() -> Iterator[SandboxServer]:
    """One in-process sandbox on a free port for the whole session.

    Its clock stands still until a test advances it (``control.advance_clock``), so
    deadlines (auto-confirm, transfer delay, lockouts, rate-limit decay) never race
    the machine's speed and no test sleeps.
    """
    with SandboxServer(port=0, clock=ManualClock()) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(server: SandboxServer) -> SandboxServer:
    """The session sandbox, reset to an empty account with default settings."""
    server.control.reset()
    server.control.update_settings(
        transfer_delay=None,
        auto_confirm_after=None,
        rate_limit="off",
        lockout_threshold=25,
        lockout_window=60,
        lockout_duration=900,
    )
    return server


@pytest.fixture
def admin(sandbox: SandboxServer) -> Caller:
    """Signed caller with the account's admin key."""
    return Caller(sandbox.url, sandbox.admin_key, sandbox.admin_secret)


@pytest.fixture
def make_user(admin: Caller):
    """Create a Prime API user with one key; returns (user, key result, Caller)."""

    def make(role: str = "Trader", name: str = "Test User") -> tuple[dict, dict, Caller]:
        user = admin.result("CreatePrimeApiUser", {"name": name, "role": role})
        key = admin.result("CreatePrimeApiUserKey", {"user_id": user["id"]})
        return user, key, Caller(admin.url, key["api_key"], key["api_secret"])

    return make


BUY_BTC = {"base": "BTC", "quote": "USD", "side": "buy", "volume": "1.5", "price": "30000"}
