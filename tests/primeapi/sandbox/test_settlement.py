"""Settlement lifecycle: netting, one active batch per kind, settling, transfers, listing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from primeapi.sandbox import SandboxControlError
from tests.primeapi.sandbox.conftest import BUY_BTC, Caller

INVALID = "EGeneral:Invalid arguments"


def legs_by_asset(batch: dict) -> dict[str, dict]:
    return {leg["asset"]: leg for leg in batch["legs"]}


def settle(caller: Caller, batch_id: str, asset: str) -> dict:
    return caller.call("SettlePrimeSettlementBatchAsset", {"batch_id": batch_id, "asset": asset})


def get_batch(caller: Caller, batch_id: str) -> dict:
    return caller.result("GetPrimeSettlementBatch", {"batch_id": batch_id})["batch"]


def test_legs_net_the_batch_trades_per_asset(sandbox, admin: Caller):
    sell = {"base": "BTC", "quote": "USD", "side": "sell", "volume": "0.5", "price": "31000"}
    eth = {"base": "ETH", "quote": "EUR", "side": "sell", "volume": "2", "price": "2500.5"}
    sandbox.control.add_trades([BUY_BTC, sell, eth])
    batch = admin.result("CreatePrimeSettlementBatch")["batch"]
    legs = legs_by_asset(batch)
    assert sorted(legs) == ["BTC", "ETH", "EUR", "USD"]
    assert (legs["BTC"]["amount"], legs["BTC"]["direction"]) == ("1", "incoming")
    assert (legs["USD"]["amount"], legs["USD"]["direction"]) == ("29500", "outgoing")
    assert (legs["ETH"]["amount"], legs["ETH"]["direction"]) == ("2", "outgoing")
    assert (legs["EUR"]["amount"], legs["EUR"]["direction"]) == ("5001", "incoming")
    assert all(leg["status"] == "unsettled" and leg["can_settle"] for leg in batch["legs"])
    assert all(leg["latest_spot_transfer"] == {} for leg in batch["legs"])
    assert batch["attributes"]["trade_count"] == 3
    assert batch["attributes"]["status"] == "unsettled"
    assert batch["attributes"]["confirmed"] is False


def test_a_single_buy_gives_an_incoming_base_and_outgoing_quote_leg(sandbox, admin: Caller):
    sandbox.control.add_trades([BUY_BTC])
    legs = legs_by_asset(admin.result("CreatePrimeSettlementBatch")["batch"])
    assert legs["BTC"]["amount"] == "1.5"
    assert legs["BTC"]["direction"] == "incoming"
    assert legs["USD"]["amount"] == "45000"
    assert legs["USD"]["direction"] == "outgoing"


def test_assets_that_net_to_zero_have_no_leg(sandbox, admin: Caller):
    back = {"base": "BTC", "quote": "USD", "side": "sell", "volume": "1.5", "price": "30000"}
    sandbox.control.add_trades([BUY_BTC, back, {**BUY_BTC, "base": "ETH", "volume": "1"}])
    legs = legs_by_asset(admin.result("CreatePrimeSettlementBatch")["batch"])
    assert sorted(legs) == ["ETH", "USD"]


def test_a_batch_captures_the_pending_trades_of_its_kind_only(sandbox, admin: Caller):
    trades = sandbox.control.add_trades(
        [BUY_BTC, {"base": "AAPLx", "quote": "USD", "side": "buy", "volume": "10", "price": "200"}]
    )
    batch = admin.result("CreatePrimeSettlementBatch")["batch"]
    assert batch["trade_ids"] == [trades[0]["id"]]
    assert [t["id"] for t in sandbox.control.trades()] == [trades[1]["id"]]
    equity = admin.result("CreatePrimeSettlementBatch", {"asset_kind": "tokenized_equity"})
    assert equity["batch"]["trade_ids"] == [trades[1]["id"]]
    assert equity["batch"]["attributes"]["asset_kind"] == "tokenized_equity"
    assert sorted(legs_by_asset(equity["batch"])) == ["AAPLx", "USD"]


def test_no_pending_trades_means_no_batch(admin: Caller):
    assert admin.error("CreatePrimeSettlementBatch") == [f"{INVALID}:No unsettled trades"]


def test_only_one_active_batch_per_asset_kind(sandbox, admin: Caller):
    sandbox.control.add_trades([BUY_BTC])
    admin.result("CreatePrimeSettlementBatch")
    sandbox.control.add_trades([BUY_BTC])
    assert admin.error("CreatePrimeSettlementBatch") == [f"{INVALID}:Active batch exists"]
    # The other kind is independent.
    sandbox.control.add_trades([{**BUY_BTC, "base": "TSLAx"}])
    admin.result("CreatePrimeSettlementBatch", {"asset_kind": "tokenized_equity"})


def test_settling_needs_a_confirmed_batch(sandbox, admin: Caller):
    sandbox.control.add_trades([BUY_BTC])
    batch = admin.result("CreatePrimeSettlementBatch")["batch"]
    assert settle(admin, batch["id"], "BTC")["error"] == [f"{INVALID}:Batch not confirmed"]
    confirmed = sandbox.control.confirm_batch(batch["id"])
    assert confirmed["attributes"]["confirmed"] is True
    assert settle(admin, batch["id"], "BTC")["error"] == []


def test_settle_refuses_an_unknown_batch_or_asset(sandbox, admin: Caller):
    sandbox.control.add_trades([BUY_BTC])
    batch = admin.result("CreatePrimeSettlementBatch")["batch"]
    sandbox.control.confirm_batch(batch["id"])
    assert settle(admin, "B_00000000", "BTC")["error"] == [f"{INVALID}:Unknown batch"]
    assert settle(admin, batch["id"], "ETH")["error"] == [f"{INVALID}:Unknown asset"]
    assert settle(admin, batch["id"], "btc")["error"] == [f"{INVALID}:Unknown asset"]


def test_settle_refuses_a_leg_that_cannot_settle(sandbox, admin: Caller):
    sandbox.control.add_trades([BUY_BTC])
    batch = admin.result("CreatePrimeSettlementBatch")["batch"]
    sandbox.control.confirm_batch(batch["id"])
    leg = sandbox.control.set_can_settle(batch["id"], "BTC", False)
    assert leg["can_settle"] is False
    assert settle(admin, batch["id"], "BTC")["error"] == [f"{INVALID}:Leg cannot be settled"]
    sandbox.control.set_can_settle(batch["id"], "BTC", True)
    assert settle(admin, batch["id"], "BTC")["error"] == []


def test_a_leg_cannot_be_settled_twice(sandbox, admin: Caller):
    sandbox.control.add_trades([BUY_BTC])
    batch = admin.result("CreatePrimeSettlementBatch")["batch"]
    sandbox.control.confirm_batch(batch["id"])
    first = settle(admin, batch["id"], "BTC")
    assert settle(admin, batch["id"], "BTC")["error"] == [f"{INVALID}:Leg already settled"]
    sandbox.control.complete_transfer(first["result"]["transfer"]["id"])
    assert settle(admin, batch["id"], "BTC")["error"] == [f"{INVALID}:Leg already settled"]
    assert len(sandbox.control.calls("SettlePrimeSettlementBatchAsset", executed=True)) == 1


def test_the_full_lifecycle_ends_with_a_completed_batch(sandbox, admin: Caller):
    sandbox.control.add_trades([BUY_BTC])
    batch_id = admin.result("CreatePrimeSettlementBatch")["batch"]["id"]
    sandbox.control.confirm_batch(batch_id)

    btc = settle(admin, batch_id, "BTC")["result"]["transfer"]
    assert btc["attributes"]["transfer_status"] == "pending"
    leg = btc["relationships"]["leg"]
    assert (leg["status"], leg["can_settle"]) == ("settling", False)
    assert leg["latest_spot_transfer"]["id"] == btc["id"]
    assert get_batch(admin, batch_id)["attributes"]["status"] == "partially_settled"

    usd = settle(admin, batch_id, "USD")["result"]["transfer"]
    assert int(usd["id"]) == int(btc["id"]) + 1
    assert get_batch(admin, batch_id)["attributes"]["status"] == "settled"

    sandbox.control.complete_transfer(btc["id"])
    batch = get_batch(admin, batch_id)
    assert batch["attributes"]["status"] == "settled"
    btc_leg = legs_by_asset(batch)["BTC"]
    assert btc_leg["status"] == "settled"
    assert btc_leg["settled_at"] >= batch["attributes"]["created_at"]
    assert btc_leg["latest_spot_transfer"]["transfer_status"] == "completed"
    assert "settled_at" not in legs_by_asset(batch)["USD"]

    sandbox.control.complete_transfer(usd["id"])
    batch = get_batch(admin, batch_id)
    assert batch["attributes"]["status"] == "completed"
    assert batch["attributes"]["updated_at"] >= batch["attributes"]["created_at"]

    # A completed batch is no longer active: the next one can be created.
    sandbox.control.add_trades([BUY_BTC])
    assert admin.result("CreatePrimeSettlementBatch")["batch"]["id"] != batch_id


def test_a_failed_transfer_makes_the_leg_settleable_again(sandbox, admin: Caller):
    sandbox.control.add_trades([BUY_BTC])
    batch_id = admin.result("CreatePrimeSettlementBatch")["batch"]["id"]
    sandbox.control.confirm_batch(batch_id)
    transfer = settle(admin, batch_id, "BTC")["result"]["transfer"]
    failed = sandbox.control.fail_transfer(transfer["id"])
    assert failed["status"] == "failed"
    batch = get_batch(admin, batch_id)
    leg = legs_by_asset(batch)["BTC"]
    assert (leg["status"], leg["can_settle"]) == ("unsettled", True)
    assert leg["latest_spot_transfer"]["transfer_status"] == "failed"
    assert batch["attributes"]["status"] == "unsettled"
    retry = settle(admin, batch_id, "BTC")["result"]["transfer"]
    assert retry["id"] != transfer["id"]


def test_a_transfer_can_only_finish_once(sandbox, admin: Caller):
    sandbox.control.add_trades([BUY_BTC])
    batch_id = admin.result("CreatePrimeSettlementBatch")["batch"]["id"]
    sandbox.control.confirm_batch(batch_id)
    transfer = settle(admin, batch_id, "BTC")["result"]["transfer"]
    sandbox.control.complete_transfer(transfer["id"])
    with pytest.raises(SandboxControlError) as refused:
        sandbox.control.fail_transfer(transfer["id"])
    assert refused.value.status == 409
    with pytest.raises(SandboxControlError) as unknown:
        sandbox.control.complete_transfer("999999")
    assert unknown.value.status == 404


def test_transfers_complete_lazily_after_the_transfer_delay(sandbox, admin: Caller):
    sandbox.control.update_settings(transfer_delay=15)
    sandbox.control.add_trades([BUY_BTC])
    batch_id = admin.result("CreatePrimeSettlementBatch")["batch"]["id"]
    sandbox.control.confirm_batch(batch_id)
    transfer = settle(admin, batch_id, "BTC")["result"]["transfer"]
    assert get_batch(admin, batch_id)["legs"][0]["status"] == "settling"
    sandbox.control.advance_clock(14)
    assert legs_by_asset(get_batch(admin, batch_id))["BTC"]["status"] == "settling"
    sandbox.control.advance_clock(1.5)
    leg = legs_by_asset(get_batch(admin, batch_id))["BTC"]
    assert leg["status"] == "settled"
    assert leg["settled_at"] == leg["latest_spot_transfer"]["created_at"] + 15_000
    assert leg["latest_spot_transfer"]["id"] == transfer["id"]


def test_batches_confirm_lazily_after_auto_confirm(sandbox, admin: Caller):
    sandbox.control.update_settings(auto_confirm_after=20)
    sandbox.control.add_trades([BUY_BTC])
    batch = admin.result("CreatePrimeSettlementBatch")["batch"]
    assert batch["attributes"]["confirmed"] is False
    sandbox.control.advance_clock(19)
    assert get_batch(admin, batch["id"])["attributes"]["confirmed"] is False
    sandbox.control.advance_clock(1.5)
    assert get_batch(admin, batch["id"])["attributes"]["confirmed"] is True
    assert settle(admin, batch["id"], "BTC")["error"] == []


def test_complete_pending_transfers_finishes_every_leg(sandbox, admin: Caller):
    sandbox.control.add_trades([BUY_BTC])
    batch_id = admin.result("CreatePrimeSettlementBatch")["batch"]["id"]
    sandbox.control.confirm_batch(batch_id)
    settle(admin, batch_id, "BTC")
    settle(admin, batch_id, "USD")
    assert len(sandbox.control.complete_pending_transfers()) == 2
    assert get_batch(admin, batch_id)["attributes"]["status"] == "completed"


# ------------------------------------------------------------------- listing


def make_completed_batches(sandbox, admin: Caller, count: int) -> list[dict]:
    """``count`` completed currency batches with distinct created_at, oldest first."""
    batches = []
    for _ in range(count):
        sandbox.control.add_trades([BUY_BTC])
        batch = admin.result("CreatePrimeSettlementBatch")["batch"]
        sandbox.control.confirm_batch(batch["id"])
        for leg in batch["legs"]:
            settle(admin, batch["id"], leg["asset"])
        sandbox.control.complete_pending_transfers()
        batches.append(get_batch(admin, batch["id"]))
        sandbox.control.advance_clock(0.01)  # distinct created_at
    return batches


def list_ids(admin: Caller, **params) -> list[str]:
    return [b["id"] for b in admin.result("ListPrimeSettlementBatches", params)["data"]]


def test_list_is_newest_first_and_filters_by_status(sandbox, admin: Caller):
    done = make_completed_batches(sandbox, admin, 2)
    sandbox.control.add_trades([BUY_BTC])
    open_batch = admin.result("CreatePrimeSettlementBatch")["batch"]
    assert list_ids(admin) == [open_batch["id"], done[1]["id"], done[0]["id"]]
    assert list_ids(admin, statuses=["completed"]) == [done[1]["id"], done[0]["id"]]
    assert list_ids(admin, statuses=["unsettled", "settled"]) == [open_batch["id"]]
    assert list_ids(admin, statuses=[]) == []


def test_list_from_is_exclusive_and_until_inclusive(sandbox, admin: Caller):
    first, second, third = make_completed_batches(sandbox, admin, 3)
    created = [b["attributes"]["created_at"] for b in (first, second, third)]
    assert list_ids(admin, **{"from": created[0]}) == [third["id"], second["id"]]
    assert list_ids(admin, until=created[1]) == [second["id"], first["id"]]
    assert list_ids(admin, **{"from": created[0], "until": created[1]}) == [second["id"]]


def test_list_paginates_with_limit_and_offset(sandbox, admin: Caller):
    batches = make_completed_batches(sandbox, admin, 3)
    newest_first = [b["id"] for b in reversed(batches)]
    page = admin.result("ListPrimeSettlementBatches", {"limit": 2})
    assert [b["id"] for b in page["data"]] == newest_first[:2]
    assert page["pagination"] == {"has_more": True, "limit": 2, "offset": 0}
    page = admin.result("ListPrimeSettlementBatches", {"limit": 2, "offset": 2})
    assert [b["id"] for b in page["data"]] == newest_first[2:]
    assert page["pagination"] == {"has_more": False, "limit": 2, "offset": 2}
    page = admin.result("ListPrimeSettlementBatches", {"offset": 10})
    assert page["data"] == []
    assert page["pagination"] == {"has_more": False, "limit": 50, "offset": 10}


def test_list_accepts_the_maximum_limit(sandbox, admin: Caller):
    make_completed_batches(sandbox, admin, 1)
    page = admin.result("ListPrimeSettlementBatches", {"limit": 200})
    assert page["pagination"]["limit"] == 200


def test_concurrent_settles_of_one_leg_execute_exactly_once(sandbox, admin: Caller, make_user):
    traders = [make_user("Trader", name=f"Trader {i}")[2] for i in range(8)]
    sandbox.control.add_trades([BUY_BTC])
    batch_id = admin.result("CreatePrimeSettlementBatch")["batch"]["id"]
    sandbox.control.confirm_batch(batch_id)
    with ThreadPoolExecutor(max_workers=len(traders)) as pool:
        outcomes = list(pool.map(lambda trader: settle(trader, batch_id, "BTC"), traders))
    successes = [o for o in outcomes if o["error"] == []]
    assert len(successes) == 1
    assert all(o["error"] == [f"{INVALID}:Leg already settled"] for o in outcomes if o["error"])
    assert len(sandbox.control.calls("SettlePrimeSettlementBatchAsset", executed=True)) == 1


def test_concurrent_requests_on_many_keys_are_all_served(sandbox, admin: Caller, make_user):
    callers = [make_user("Viewer", name=f"Viewer {i}")[2] for i in range(6)]

    def burst(caller: Caller) -> int:
        return sum(caller.call("ListPrimeSettlementBatches")["error"] == [] for _ in range(10))

    with ThreadPoolExecutor(max_workers=len(callers)) as pool:
        assert list(pool.map(burst, callers)) == [10] * len(callers)
