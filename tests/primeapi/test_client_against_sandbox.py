"""The real PrimeClient against the real sandbox on a loopback port.

Uses the ``sandbox`` / ``fresh_sandbox`` fixtures from ``tests/conftest.py`` (rate limit
off; every test starts from an empty account with the same admin key).
"""

from __future__ import annotations

import base64
import fcntl
import multiprocessing
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from primeapi import errors as e
from primeapi.client import PrimeClient
from primeapi.models import ROLE_PERMISSIONS, IssuedApiKey, to_ms
from primeapi.nonce import MonotonicNonce

FAST = {"backoff_base": 0.01, "backoff_cap": 0.05}


@pytest.fixture
def sb(fresh_sandbox):
    return fresh_sandbox


@pytest.fixture
def prime(sb) -> PrimeClient:
    """The account's admin key: may call all 13 endpoints."""
    return PrimeClient(sb.url, sb.admin_key, sb.admin_secret, **FAST)


def client_for(sb, key: IssuedApiKey, **kwargs: Any) -> PrimeClient:
    return PrimeClient(sb.url, key.api_key, key.api_secret, **{**FAST, **kwargs})


def user_key(prime: PrimeClient, role: str) -> IssuedApiKey:
    user = prime.create_api_user(f"{role} bot", role)
    return prime.create_api_user_key(user.id)


def batch_ready_to_settle(sb, prime: PrimeClient):
    sb.control.add_trades(
        [
            {"base": "BTC", "quote": "USD", "side": "buy", "volume": "1.5", "price": "30000"},
            {"base": "ETH", "quote": "USD", "side": "sell", "volume": "2", "price": "2000"},
        ]
    )
    batch = prime.create_settlement_batch()
    sb.control.confirm_batch(batch.id)
    return prime.get_settlement_batch(batch.id)


def executed(sb, endpoint: str) -> list[dict[str, Any]]:
    return sb.control.calls(endpoint, executed=True)


# --- all 13 endpoints ---------------------------------------------------------------------


def test_every_endpoint_works_through_the_real_client(sb, prime):
    user = prime.create_api_user("Settlement Bot", "Trader")
    assert user.role == "Trader"
    assert user.is_enabled
    assert prime.get_api_user(user.id) == user
    assert prime.list_api_users() == (user,)
    renamed = prime.update_api_user(user.id, name="Settlement Bot 2")
    assert renamed.name == "Settlement Bot 2"
    viewer = prime.update_api_user_roles(user.id, "Viewer")
    assert viewer.roles == ("Viewer",)

    issued = prime.create_api_user_key(user.id)
    assert issued.user_id == user.id
    assert issued.permissions == ROLE_PERMISSIONS["Viewer"]
    assert base64.b64decode(issued.api_secret)
    (listed,) = prime.list_api_user_keys(user.id)
    assert listed.id == issued.id
    assert listed.api_key == issued.api_key
    assert not hasattr(listed, "api_secret")
    assert listed.updated_at is not None
    updated = prime.update_api_user_key(user.id, issued.id, ["127.0.0.1", "10.0.0.0/8"])
    assert set(updated.whitelisted_ips) == {"127.0.0.1", "10.0.0.0/8"}

    sb.control.add_trades(count=4)
    batch = prime.create_settlement_batch()
    assert batch.status == "unsettled"
    assert batch.confirmed is False
    assert batch.trade_count == 4
    assert len(batch.trade_ids) == 4
    assert batch.created_at.tzinfo is not None
    assert all(isinstance(leg.amount, Decimal) for leg in batch.legs)
    page = prime.list_settlement_batches(statuses=["unsettled"], limit=10, offset=0)
    assert [b.id for b in page.batches] == [batch.id]
    assert page.has_more is False
    sb.control.confirm_batch(batch.id)
    fetched = prime.get_settlement_batch(batch.id)
    assert fetched.confirmed is True
    asset = fetched.legs[0].asset
    result = prime.settle_settlement_batch_asset(batch.id, asset)
    assert result.transfer.status == "pending"
    assert result.transfer.asset == asset
    assert result.leg is not None and result.leg.status == "settling"

    assert prime.delete_api_user_key(user.id, issued.id) is True
    assert prime.list_api_user_keys(user.id) == ()

    counts = Counter(call["endpoint"] for call in sb.control.calls(executed=True))
    assert len(counts) == 13
    assert counts.pop("ListPrimeApiUserKeys") == 2
    assert set(counts.values()) == {1}


def test_a_batch_settles_all_the_way_to_completed(sb, prime):
    batch = batch_ready_to_settle(sb, prime)
    assert {leg.asset for leg in batch.legs} == {"BTC", "ETH", "USD"}
    for leg in batch.legs:
        prime.settle_settlement_batch_asset(batch.id, leg.asset)
    assert prime.get_settlement_batch(batch.id).status == "settled"
    sb.control.complete_pending_transfers()
    done = prime.get_settlement_batch(batch.id)
    assert done.status == "completed"
    assert done.is_final
    btc = done.leg("BTC")
    assert btc.amount == Decimal("1.5")
    assert btc.direction == "incoming"
    assert btc.settled_at is not None
    assert btc.latest_transfer.status == "completed"
    assert btc.latest_transfer.amount == Decimal("1.5")


def test_listing_filters_by_status_time_and_page(sb, prime):
    first = batch_ready_to_settle(sb, prime)
    for leg in first.legs:
        prime.settle_settlement_batch_asset(first.id, leg.asset)
    sb.control.complete_pending_transfers()
    sb.control.advance_clock(0.01)  # a later created_at
    sb.control.add_trades(count=2)
    second = prime.create_settlement_batch()

    everything = prime.list_settlement_batches()
    assert [b.id for b in everything.batches] == [second.id, first.id]
    assert everything.batches[0].trade_ids == ()  # list items omit trade ids
    completed = prime.list_settlement_batches(statuses=["completed"])
    assert [b.id for b in completed.batches] == [first.id]
    created_ms = to_ms(first.created_at)
    after_first = prime.list_settlement_batches(from_ms=created_ms)
    assert [b.id for b in after_first.batches] == [second.id]
    until_first = prime.list_settlement_batches(until_ms=created_ms)
    assert [b.id for b in until_first.batches] == [first.id]
    page = prime.list_settlement_batches(limit=1)
    assert page.has_more is True
    assert page.next_offset == 1
    rest = prime.list_settlement_batches(limit=1, offset=page.next_offset)
    assert [b.id for b in rest.batches] == [first.id]
    assert rest.has_more is False


# --- error paths ----------------------------------------------------------------------------


def test_an_unknown_key_is_invalid_key(sb):
    stranger = PrimeClient(sb.url, "X" * 56, base64.b64encode(os.urandom(64)).decode())
    with pytest.raises(e.InvalidKeyError):
        stranger.list_api_users()


def test_a_wrong_secret_is_an_invalid_signature(sb):
    wrong = PrimeClient(sb.url, sb.admin_key, base64.b64encode(os.urandom(64)).decode())
    with pytest.raises(e.InvalidSignatureError) as caught:
        wrong.list_api_users()
    assert caught.value.errors == ("EAPI:Invalid signature",)


def test_a_deleted_key_stops_working_and_the_users_other_keys_do_not(sb, prime):
    keep = user_key(prime, "Viewer")
    doomed = prime.create_api_user_key(keep.user_id)
    prime.delete_api_user_key(doomed.user_id, doomed.id)
    with pytest.raises(e.InvalidKeyError):
        client_for(sb, doomed).list_settlement_batches()
    assert client_for(sb, keep).list_settlement_batches().batches == ()


def test_a_disabled_users_key_is_refused_until_the_user_is_enabled(sb, prime):
    key = user_key(prime, "Viewer")
    client = client_for(sb, key)
    prime.update_api_user(key.user_id, status="Disabled")
    with pytest.raises(e.InvalidKeyError):
        client.list_settlement_batches()
    prime.update_api_user(key.user_id, status="Enabled")
    assert client.list_settlement_batches().batches == ()


def test_a_call_from_outside_the_allow_list_is_refused(sb, prime):
    key = user_key(prime, "Trader")
    client = client_for(sb, key)
    prime.update_api_user_key(key.user_id, key.id, ["10.1.2.3"])
    with pytest.raises(e.PermissionDeniedError):
        client.list_settlement_batches()
    prime.update_api_user_key(key.user_id, key.id, ["127.0.0.0/8"])
    assert client.list_settlement_batches().batches == ()
    prime.update_api_user_key(key.user_id, key.id, [])
    assert client.list_settlement_batches().batches == ()


def test_a_viewer_key_may_read_batches_but_not_create_or_settle(sb, prime):
    batch = batch_ready_to_settle(sb, prime)
    viewer = client_for(sb, user_key(prime, "Viewer"))
    assert viewer.get_settlement_batch(batch.id).id == batch.id
    assert len(viewer.list_settlement_batches().batches) == 1
    with pytest.raises(e.PermissionDeniedError):
        viewer.settle_settlement_batch_asset(batch.id, "BTC")
    sb.control.add_trades(count=1, asset_kind="tokenized_equity")
    with pytest.raises(e.PermissionDeniedError):
        viewer.create_settlement_batch("tokenized_equity")
    assert executed(sb, "SettlePrimeSettlementBatchAsset") == []


def test_a_trader_key_may_settle_but_not_manage_users(sb, prime):
    batch = batch_ready_to_settle(sb, prime)
    trader = client_for(sb, user_key(prime, "Trader"))
    assert trader.settle_settlement_batch_asset(batch.id, "BTC").transfer.status == "pending"
    with pytest.raises(e.PermissionDeniedError):
        trader.list_api_users()
    with pytest.raises(e.PermissionDeniedError):
        trader.create_api_user("Sneaky", "Trader")


def test_a_role_change_changes_what_the_key_may_do(sb, prime):
    key = user_key(prime, "Viewer")
    client = client_for(sb, key)
    sb.control.add_trades(count=2)
    with pytest.raises(e.PermissionDeniedError):
        client.create_settlement_batch()
    prime.update_api_user_roles(key.user_id, "Trader")
    assert client.create_settlement_batch().trade_count == 2
    (listed,) = prime.list_api_user_keys(key.user_id)
    assert listed.permissions == ROLE_PERMISSIONS["Trader"]


@pytest.mark.parametrize(
    ("call", "detail"),
    [
        (lambda c: c.get_api_user("NOSUCHUSER000"), "Unknown user"),
        (lambda c: c.create_api_user("   ", "Viewer"), "Invalid name"),
        (lambda c: c.create_api_user("x" * 65, "Viewer"), "Invalid name"),
        (lambda c: c.list_api_user_keys("NOSUCHUSER000"), "Unknown user"),
        (lambda c: c.get_settlement_batch("B_NOSUCH00"), "Unknown batch"),
        (lambda c: c.settle_settlement_batch_asset("B_NOSUCH00", "BTC"), "Unknown batch"),
        (lambda c: c.create_settlement_batch(), "No unsettled trades"),
    ],
)
def test_invalid_arguments_come_back_with_krakens_detail(prime, call, detail):
    with pytest.raises(e.InvalidArgumentsError) as caught:
        call(prime)
    assert caught.value.detail == detail
    assert caught.value.outcome_unknown is False


def test_an_unknown_key_id_and_bad_ips_are_invalid_arguments(prime):
    user = prime.create_api_user("Keyholder", "Viewer")
    with pytest.raises(e.InvalidArgumentsError) as caught:
        prime.delete_api_user_key(user.id, "NOSUCHKEY0000")
    assert caught.value.detail == "Unknown key"
    key = prime.create_api_user_key(user.id)
    with pytest.raises(e.InvalidArgumentsError) as caught:
        prime.update_api_user_key(user.id, key.id, ["not-an-ip"])
    assert caught.value.detail == "Invalid whitelisted_ips"


def test_settling_before_confirmation_is_refused(sb, prime):
    sb.control.add_trades(count=2)
    batch = prime.create_settlement_batch()
    with pytest.raises(e.InvalidArgumentsError) as caught:
        prime.settle_settlement_batch_asset(batch.id, batch.legs[0].asset)
    assert caught.value.detail == "Batch not confirmed"
    assert executed(sb, "SettlePrimeSettlementBatchAsset") == []


def test_settling_a_leg_twice_is_refused(sb, prime):
    batch = batch_ready_to_settle(sb, prime)
    prime.settle_settlement_batch_asset(batch.id, "BTC")
    with pytest.raises(e.InvalidArgumentsError) as caught:
        prime.settle_settlement_batch_asset(batch.id, "BTC")
    assert caught.value.detail == "Leg already settled"
    assert len(executed(sb, "SettlePrimeSettlementBatchAsset")) == 1


def test_other_settle_refusals(sb, prime):
    batch = batch_ready_to_settle(sb, prime)
    with pytest.raises(e.InvalidArgumentsError) as caught:
        prime.settle_settlement_batch_asset(batch.id, "DOGE")
    assert caught.value.detail == "Unknown asset"
    sb.control.set_can_settle(batch.id, "ETH", False)
    with pytest.raises(e.InvalidArgumentsError) as caught:
        prime.settle_settlement_batch_asset(batch.id, "ETH")
    assert caught.value.detail == "Leg cannot be settled"
    sb.control.add_trades(count=1)
    with pytest.raises(e.InvalidArgumentsError) as caught:
        prime.create_settlement_batch()
    assert caught.value.detail == "Active batch exists"


# --- nonces under concurrency --------------------------------------------------------------


def _assert_no_write_ran_twice(sb, names: list[str], prime: PrimeClient) -> None:
    created = executed(sb, "CreatePrimeApiUser")
    assert len(created) == len(names)
    assert sorted(u.name for u in prime.list_api_users()) == sorted(names)


def _settle_nonce_history(sb, prime: PrimeClient) -> None:
    # Earlier tests (other processes included) used the admin key; one call lifts this
    # process's floor above the sandbox's last nonce, then the call log starts empty.
    prime.list_api_users()
    sb.control.clear_calls()


def test_64_calls_from_16_threads_sharing_one_client_never_see_an_invalid_nonce(sb, prime):
    _settle_nonce_history(sb, prime)
    names = [f"user {i:02d}" for i in range(32)]

    def work(i: int) -> None:
        if i % 2 == 0:
            prime.create_api_user(names[i // 2], "Viewer")
        else:
            prime.list_api_users()

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(work, range(64)))  # re-raises the first failure, if any

    calls = sb.control.calls()
    assert len(calls) == 64
    assert all(call["executed"] for call in calls)
    nonces = [call["nonce"] for call in sorted(calls, key=lambda c: c["seq"])]
    assert nonces == sorted(nonces)
    _assert_no_write_ran_twice(sb, names, prime)


def test_four_clients_with_their_own_nonce_sources_on_one_key_still_succeed(sb, prime):
    _settle_nonce_history(sb, prime)
    clients = [
        PrimeClient(sb.url, sb.admin_key, sb.admin_secret, nonce=MonotonicNonce(), **FAST)
        for _ in range(4)
    ]
    names = [f"racer {i:02d}" for i in range(32)]

    def work(i: int) -> None:
        client = clients[i % 4]
        if i % 2 == 0:
            client.create_api_user(names[i // 2], "Viewer")
        else:
            client.list_api_users()

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(work, range(64)))

    # Within one process the per-key gate orders every send, whatever the sources say.
    calls = sb.control.calls()
    assert len(calls) == 64
    assert all(call["executed"] for call in calls)
    _assert_no_write_ran_twice(sb, names, prime)


class FileNonce:
    """A nonce counter shared by processes through a file and an exclusive lock."""

    def __init__(self, path: str) -> None:
        self.path = path

    def next_nonce(self, api_key: str) -> int:
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            text = handle.read().strip()
            value = max(time.time_ns() // 1_000_000, int(text or 0) + 1)
            handle.seek(0)
            handle.truncate()
            handle.write(str(value))
            handle.flush()
            return value


def _process_worker(url, key, secret, nonce_path, prefix, count, barrier, results):
    failures: list[str] = []
    client = PrimeClient(url, key, secret, nonce=FileNonce(nonce_path), **FAST)
    barrier.wait(timeout=30)
    for i in range(count):
        try:
            if i % 2 == 0:
                client.create_api_user(f"{prefix} {i:02d}", "Viewer")
            else:
                client.list_settlement_batches()
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
    results.put((prefix, failures))


def test_three_processes_sharing_a_key_through_a_shared_nonce_source(sb, prime, tmp_path: Path):
    _settle_nonce_history(sb, prime)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    results = ctx.Queue()
    nonce_path = str(tmp_path / "nonce")
    count = 16
    processes = [
        ctx.Process(
            target=_process_worker,
            args=(
                sb.url,
                sb.admin_key,
                sb.admin_secret,
                nonce_path,
                f"proc{n}",
                count,
                barrier,
                results,
            ),
        )
        for n in range(3)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    assert [failures for _, failures in outcomes] == [[], [], []]
    calls = sb.control.calls()
    assert len([c for c in calls if c["executed"]]) == 3 * count
    # Across processes, a request can overtake another between taking its nonce and
    # arriving; those few refusals were retried with fresh nonces and stayed well under
    # the lockout threshold.
    refused = [c for c in calls if not c["executed"]]
    assert all(c["error"] == ["EAPI:Invalid nonce"] for c in refused)
    assert len(refused) < 25
    names = [f"proc{n} {i:02d}" for n in range(3) for i in range(0, count, 2)]
    _assert_no_write_ran_twice(sb, names, prime)


# --- injected faults ------------------------------------------------------------------------


def test_a_settle_that_times_out_after_executing_is_an_unknown_outcome_executed_once(sb, prime):
    batch = batch_ready_to_settle(sb, prime)
    sb.control.inject_fault("timeout_after_execute", "SettlePrimeSettlementBatchAsset", seconds=2)
    impatient = PrimeClient(sb.url, sb.admin_key, sb.admin_secret, timeout=(2, 0.3), **FAST)
    with pytest.raises(e.OutcomeUnknownError) as caught:
        impatient.settle_settlement_batch_asset(batch.id, "BTC")
    assert isinstance(caught.value.cause, e.ResponseTimeoutError)
    assert "check with Kraken before trying again" in str(caught.value)
    settles = sb.control.calls("SettlePrimeSettlementBatchAsset")
    assert len(settles) == 1
    assert settles[0]["executed"] is True
    # Reconciling with a read shows what happened.
    assert prime.get_settlement_batch(batch.id).leg("BTC").status == "settling"


def test_a_write_dropped_after_executing_is_an_unknown_outcome_executed_once(sb, prime):
    sb.control.inject_fault("drop_after_execute", "CreatePrimeApiUser")
    with pytest.raises(e.OutcomeUnknownError) as caught:
        prime.create_api_user("Half Heard", "Viewer")
    assert isinstance(caught.value.cause, e.ConnectionDroppedError)
    assert len(sb.control.calls("CreatePrimeApiUser")) == 1
    assert [u.name for u in prime.list_api_users()] == ["Half Heard"]


def test_a_slow_write_that_times_out_is_not_resent(sb, prime):
    sb.control.inject_fault("latency", "CreatePrimeApiUserKey", seconds=0.6)
    user = prime.create_api_user("Slow", "Viewer")
    impatient = PrimeClient(sb.url, sb.admin_key, sb.admin_secret, timeout=(2, 0.2), **FAST)
    with pytest.raises(e.OutcomeUnknownError):
        impatient.create_api_user_key(user.id)
    deadline = time.monotonic() + 5
    while not sb.control.calls("CreatePrimeApiUserKey") and time.monotonic() < deadline:
        time.sleep(0.05)  # the sandbox finishes the slow call after the client gave up
    assert len(sb.control.calls("CreatePrimeApiUserKey")) == 1
    assert len(prime.list_api_user_keys(user.id)) == 1


def test_a_5xx_on_a_read_is_retried(sb, prime):
    sb.control.inject_fault("http_500", "ListPrimeApiUsers", count=2)
    assert prime.list_api_users() == ()
    calls = sb.control.calls("ListPrimeApiUsers")
    assert [c["executed"] for c in calls] == [False, False, True]
    assert len({c["nonce"] for c in calls}) == 3


def test_a_slow_read_is_retried_after_its_timeout(sb, prime):
    sb.control.inject_fault("latency", "ListPrimeApiUsers", seconds=0.6)
    impatient = PrimeClient(sb.url, sb.admin_key, sb.admin_secret, timeout=(2, 0.2), **FAST)
    assert impatient.list_api_users() == ()
    # The sandbox still finishes the slow first call; wait for it, or it would land in the
    # call log of a later test.
    deadline = time.monotonic() + 5
    while len(sb.control.calls("ListPrimeApiUsers")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sb.control.calls("ListPrimeApiUsers")) == 2


def test_unavailable_on_a_read_is_retried(sb, prime):
    sb.control.inject_fault("unavailable", "GetPrimeApiUser")
    user = prime.create_api_user("Patient", "Viewer")
    assert prime.get_api_user(user.id) == user
    assert len(sb.control.calls("GetPrimeApiUser")) == 2


def test_a_5xx_on_a_write_is_an_unknown_outcome_and_not_resent(sb, prime):
    sb.control.inject_fault("http_500", "CreatePrimeApiUser")
    with pytest.raises(e.OutcomeUnknownError) as caught:
        prime.create_api_user("Never", "Viewer")
    assert caught.value.http_status == 500
    assert len(sb.control.calls("CreatePrimeApiUser")) == 1
    assert prime.list_api_users() == ()


def test_a_malformed_body_is_reported(sb, prime):
    sb.control.inject_fault("malformed", "ListPrimeApiUsers")
    with pytest.raises(e.MalformedResponseError):
        prime.list_api_users()
    sb.control.inject_fault("malformed", "CreatePrimeApiUser")
    with pytest.raises(e.OutcomeUnknownError) as caught:
        prime.create_api_user("Garbled", "Viewer")
    assert isinstance(caught.value.cause, e.MalformedResponseError)
    assert len(sb.control.calls("CreatePrimeApiUser")) == 1


def test_rate_limits_are_raised_not_retried(sb, prime):
    sb.control.inject_fault("throttled", "ListPrimeApiUsers", seconds=30)
    with pytest.raises(e.RateLimitedError) as caught:
        prime.list_api_users()
    assert 25 <= caught.value.retry_after <= 31
    sb.control.inject_fault("rate_limit", "ListPrimeApiUsers")
    with pytest.raises(e.RateLimitedError) as caught:
        prime.list_api_users()
    assert caught.value.retry_after is None
    assert len(sb.control.calls("ListPrimeApiUsers")) == 2


def test_a_real_rate_limit_is_raised(sb, prime):
    sb.control.update_settings(rate_limit="starter")
    try:
        with pytest.raises(e.RateLimitedError):
            for _ in range(40):
                prime.list_api_users()
    finally:
        sb.control.update_settings(rate_limit="off")
        sb.control.clear_lockouts()


def test_repeated_bad_signatures_lock_the_key_out(sb, prime):
    sb.control.update_settings(lockout_threshold=3)
    try:
        wrong = PrimeClient(sb.url, sb.admin_key, base64.b64encode(os.urandom(64)).decode())
        for _ in range(3):
            with pytest.raises(e.InvalidSignatureError):
                wrong.list_api_users()
        with pytest.raises(e.TemporaryLockoutError):
            prime.list_api_users()
    finally:
        sb.control.update_settings(lockout_threshold=25)
        sb.control.clear_lockouts()


def test_the_observer_and_log_see_sandbox_calls(sb, caplog):
    heard: list[tuple[str, bool]] = []
    observed = PrimeClient(
        sb.url,
        sb.admin_key,
        sb.admin_secret,
        observer=lambda ep, ok, d, err: heard.append((ep, ok)),
    )
    observed.list_api_users()
    with pytest.raises(e.InvalidArgumentsError):
        observed.get_api_user("NOSUCHUSER000")
    assert heard == [("ListPrimeApiUsers", True), ("GetPrimeApiUser", False)]
    assert sb.admin_secret not in caplog.text
