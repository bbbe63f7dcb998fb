"""The ``/_sandbox/`` control API itself."""

from __future__ import annotations

import pytest
import requests

from primeapi.sandbox import SandboxControlError
from tests.primeapi.sandbox.conftest import BUY_BTC, Caller


def test_state_summarises_the_account_without_secrets(sandbox, admin: Caller, make_user):
    user, key, _ = make_user("Viewer")
    sandbox.control.add_trades([BUY_BTC])
    state = sandbox.control.state()
    assert state["admin_key"] == sandbox.admin_key
    assert state["users"] == [user]
    assert {k["api_key"] for k in state["keys"]} == {sandbox.admin_key, key["api_key"]}
    assert state["trades"] == {"total": 1, "pending": {"currency": 1, "tokenized_equity": 0}}
    assert state["settings"]["rate_limit"] == "off"
    assert state["last_call_seq"] >= 2


def test_random_trades_are_realistic_and_of_the_asked_kind(sandbox):
    trades = sandbox.control.add_trades(count=20, asset_kind="tokenized_equity")
    assert len(trades) == 20
    for trade in trades:
        assert trade["asset_kind"] == "tokenized_equity"
        assert trade["base"].endswith("x")
        assert trade["side"] in ("buy", "sell")
        assert float(trade["volume"]) > 0
        assert 50 < float(trade["price"]) < 1000
    currency = sandbox.control.add_trades(count=10)
    assert {t["asset_kind"] for t in currency} == {"currency"}


def test_explicit_trades_infer_their_kind_and_keep_given_ids(sandbox):
    [equity, coin] = sandbox.control.add_trades(
        [
            {
                "id": "t-1",
                "base": "AAPLx",
                "quote": "USD",
                "side": "sell",
                "volume": 3,
                "price": 210,
            },
            {**BUY_BTC, "created_at": 1_700_000_000_000},
        ]
    )
    assert (equity["id"], equity["asset_kind"], equity["volume"]) == (
        "t-1",
        "tokenized_equity",
        "3",
    )
    assert (coin["asset_kind"], coin["created_at"]) == ("currency", 1_700_000_000_000)


@pytest.mark.parametrize(
    "trade",
    [
        {**BUY_BTC, "side": "hold"},
        {**BUY_BTC, "volume": "-1"},
        {**BUY_BTC, "price": "abc"},
        {**BUY_BTC, "quote": "BTC"},
        {**BUY_BTC, "asset_kind": "bond"},
        {**BUY_BTC, "colour": "red"},
    ],
)
def test_bad_trades_are_refused(sandbox, trade):
    with pytest.raises(SandboxControlError) as refused:
        sandbox.control.add_trades([trade])
    assert refused.value.status == 400
    assert sandbox.control.trades() == []


def test_unknown_batches_and_legs_are_404(sandbox, admin: Caller):
    with pytest.raises(SandboxControlError) as unknown_batch:
        sandbox.control.confirm_batch("B_NOPE0000")
    assert unknown_batch.value.status == 404
    sandbox.control.add_trades([BUY_BTC])
    batch = admin.result("CreatePrimeSettlementBatch")["batch"]
    with pytest.raises(SandboxControlError) as unknown_leg:
        sandbox.control.set_can_settle(batch["id"], "DOGE", False)
    assert unknown_leg.value.status == 404


def test_settings_validate_their_values(sandbox):
    with pytest.raises(SandboxControlError):
        sandbox.control.update_settings(rate_limit="turbo")
    with pytest.raises(SandboxControlError):
        sandbox.control.update_settings(transfer_delay=-1)
    with pytest.raises(SandboxControlError):
        sandbox.control.update_settings(colour="red")
    assert sandbox.control.update_settings(transfer_delay=2.5)["transfer_delay"] == 2.5


def test_unknown_control_paths_and_methods_are_refused(sandbox):
    assert requests.get(f"{sandbox.url}/_sandbox/nope", timeout=5).status_code == 404
    assert requests.put(f"{sandbox.url}/_sandbox/state", timeout=5).status_code == 405
    bad_json = requests.post(f"{sandbox.url}/_sandbox/trades", data="{", timeout=5)
    assert bad_json.status_code == 400


def test_reset_forgets_users_trades_and_calls_but_keeps_the_admin_key(sandbox, admin: Caller):
    admin.result("CreatePrimeApiUser", {"name": "Gone", "role": "Viewer"})
    sandbox.control.add_trades([BUY_BTC])
    sandbox.control.reset()
    state = sandbox.control.state()
    assert (state["users"], state["trades"]["total"], state["calls"]) == ([], 0, 0)
    assert admin.result("ListPrimeApiUsers") == {"data": []}
