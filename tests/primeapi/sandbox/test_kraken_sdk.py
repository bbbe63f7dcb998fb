"""An independent client, python-kraken-sdk, signs requests the sandbox accepts.

The SDK sends the nonce as a numeric string (``time * 1e8``), form-encodes by default and
uses ``json.dumps`` spacing with ``do_json=True``; the sandbox must accept all of it.
Its nonces are far larger than the suite's, so it gets its own sandbox.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kraken.exceptions import KrakenInvalidNonceError, KrakenPermissionDeniedError
from kraken.spot import SpotClient

from primeapi.sandbox import SandboxServer
from tests.primeapi.sandbox.conftest import BUY_BTC, assert_matches_openapi


@pytest.fixture(scope="module")
def sdk_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(port=0) as sandbox:
        yield sandbox


@pytest.fixture
def sdk(sdk_sandbox: SandboxServer) -> SpotClient:
    sdk_sandbox.control.reset()
    return SpotClient(
        key=sdk_sandbox.admin_key, secret=sdk_sandbox.admin_secret, url=sdk_sandbox.url
    )


def test_the_sdk_lists_users_with_a_form_encoded_string_nonce(sdk_sandbox, sdk: SpotClient):
    assert sdk.request("POST", "/0/private/ListPrimeApiUsers") == {"data": []}
    [call] = sdk_sandbox.control.calls("ListPrimeApiUsers")
    assert call["executed"] is True
    assert call["nonce"] > 10**16  # the SDK's time * 1e8 nonce


def test_the_sdk_manages_users_and_settles_with_json_bodies(sdk_sandbox, sdk: SpotClient):
    user = sdk.request(
        "POST",
        "/0/private/CreatePrimeApiUser",
        {"name": "SDK User", "role": "Trader"},
        do_json=True,
    )
    assert_matches_openapi("CreatePrimeApiUser", {"error": [], "result": user})
    listed = sdk.request("POST", "/0/private/ListPrimeApiUsers", do_json=True)
    assert listed == {"data": [user]}

    sdk_sandbox.control.add_trades([BUY_BTC])
    created = sdk.request(
        "POST", "/0/private/CreatePrimeSettlementBatch", {"asset_kind": "currency"}, do_json=True
    )
    assert_matches_openapi("CreatePrimeSettlementBatch", {"error": [], "result": created})
    assert created["batch"]["attributes"]["trade_count"] == 1

    sdk_sandbox.control.confirm_batch(created["batch"]["id"])
    settled = sdk.request(
        "POST",
        "/0/private/SettlePrimeSettlementBatchAsset",
        {"batch_id": created["batch"]["id"], "asset": "BTC"},
        do_json=True,
    )
    assert settled["transfer"]["attributes"]["transfer_status"] == "pending"


def test_a_key_issued_by_the_sandbox_works_in_the_sdk(sdk_sandbox, sdk: SpotClient):
    user = sdk.request(
        "POST", "/0/private/CreatePrimeApiUser", {"name": "Viewer", "role": "Viewer"}, do_json=True
    )
    key = sdk.request("POST", "/0/private/CreatePrimeApiUserKey", {"user_id": user["id"]})
    viewer = SpotClient(key=key["api_key"], secret=key["api_secret"], url=sdk_sandbox.url)
    assert viewer.request("POST", "/0/private/ListPrimeSettlementBatches")["data"] == []
    with pytest.raises(KrakenPermissionDeniedError):
        viewer.request("POST", "/0/private/CreatePrimeSettlementBatch", do_json=True)


def test_sdk_errors_map_to_its_kraken_exceptions(sdk_sandbox, sdk: SpotClient):
    sdk.request("POST", "/0/private/ListPrimeApiUsers")
    sdk.get_nonce = lambda: "1"  # type: ignore[method-assign] - far below the last nonce
    with pytest.raises(KrakenInvalidNonceError):
        sdk.request("POST", "/0/private/ListPrimeApiUsers")
