"""Injected faults and the call log."""

from __future__ import annotations

import re
import time

import pytest
import requests

from primeapi.sandbox import SandboxControlError
from tests.primeapi.sandbox.conftest import BUY_BTC, Caller, next_nonce

CREATE = "CreatePrimeApiUser"
NEW_USER = {"name": "Fault Victim", "role": "Trader"}


def user_names(admin: Caller) -> list[str]:
    return [u["name"] for u in admin.result("ListPrimeApiUsers")["data"]]


def test_latency_delays_then_executes(sandbox, admin: Caller):
    sandbox.control.inject_fault("latency", CREATE, seconds=0.3)
    started = time.monotonic()
    admin.result(CREATE, NEW_USER)
    assert time.monotonic() - started >= 0.3
    assert user_names(admin) == ["Fault Victim"]


def test_timeout_after_execute_changes_state_but_never_answers(sandbox, admin: Caller):
    sandbox.control.inject_fault("timeout_after_execute", CREATE, seconds=2)
    with pytest.raises(requests.ReadTimeout):
        admin.post(CREATE, NEW_USER, timeout=0.5)
    assert user_names(admin) == ["Fault Victim"]
    [call] = sandbox.control.calls(CREATE)
    assert (call["executed"], call["error"], call["fault"]) == (True, [], "timeout_after_execute")


def test_timeout_after_execute_closes_the_connection_after_its_seconds(sandbox, admin: Caller):
    sandbox.control.inject_fault("timeout_after_execute", CREATE, seconds=0.2)
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        admin.post(CREATE, NEW_USER, timeout=5)
    assert 0.2 <= time.monotonic() - started < 5


def test_drop_after_execute_changes_state_and_closes_without_response(sandbox, admin: Caller):
    sandbox.control.inject_fault("drop_after_execute", CREATE)
    with pytest.raises(requests.ConnectionError):
        admin.post(CREATE, NEW_USER)
    assert user_names(admin) == ["Fault Victim"]
    assert sandbox.control.calls(CREATE)[0]["executed"] is True


def test_http_500_is_not_executed_and_leaves_the_nonce_unused(sandbox, admin: Caller):
    sandbox.control.inject_fault("http_500", CREATE)
    nonce = next_nonce()
    response = admin.post(CREATE, NEW_USER, nonce=nonce)
    assert response.status_code == 500
    assert response.json() == {"error": ["EGeneral:Internal error"]}
    assert user_names(admin) == []
    [call] = sandbox.control.calls(CREATE)
    assert (call["executed"], call["nonce"], call["fault"]) == (False, nonce, "http_500")


def test_malformed_answers_200_with_a_non_json_body_and_does_not_execute(sandbox, admin: Caller):
    sandbox.control.inject_fault("malformed", CREATE)
    response = admin.post(CREATE, NEW_USER)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert user_names(admin) == []


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("rate_limit", r"^EAPI:Rate limit exceeded$"),
        ("throttled", r"^EService: Throttled: \d{10}$"),
        ("unavailable", r"^EService:Unavailable$"),
    ],
)
def test_service_errors_are_not_executed(sandbox, admin: Caller, kind, pattern):
    sandbox.control.inject_fault(kind, CREATE)
    [error] = admin.error(CREATE, NEW_USER)
    assert re.match(pattern, error)
    assert user_names(admin) == []
    assert sandbox.control.calls(CREATE, executed=False)[0]["error"] == [error]


def test_throttled_names_a_retry_time_seconds_ahead(sandbox, admin: Caller):
    sandbox.control.inject_fault("throttled", CREATE, seconds=30)
    [error] = admin.error(CREATE, NEW_USER)
    assert int(error.rsplit(" ", 1)[1]) >= sandbox.control.clock() // 1000 + 29


def test_a_fault_hits_only_its_endpoint_and_only_count_times(sandbox, admin: Caller):
    sandbox.control.inject_fault("unavailable", CREATE, count=2)
    assert admin.result("ListPrimeApiUsers") == {"data": []}
    assert admin.error(CREATE, NEW_USER) == ["EService:Unavailable"]
    assert admin.error(CREATE, NEW_USER) == ["EService:Unavailable"]
    assert admin.result(CREATE, NEW_USER)["name"] == "Fault Victim"
    assert sandbox.control.faults() == []


def test_a_star_fault_hits_any_endpoint(sandbox, admin: Caller):
    sandbox.control.inject_fault("unavailable", "*")
    assert admin.error("ListPrimeApiUsers") == ["EService:Unavailable"]
    assert admin.result("ListPrimeApiUsers") == {"data": []}


def test_faults_can_be_listed_and_cleared(sandbox, admin: Caller):
    fault = sandbox.control.inject_fault("http_500", CREATE, count=3)
    assert sandbox.control.faults() == [fault]
    sandbox.control.clear_faults()
    assert sandbox.control.faults() == []
    assert admin.result(CREATE, NEW_USER)


def test_an_unknown_fault_kind_is_refused(sandbox):
    with pytest.raises(SandboxControlError) as refused:
        sandbox.control.inject_fault("explode")
    assert refused.value.status == 400


# ------------------------------------------------------------------ call log


def test_the_call_log_counts_executed_settle_calls(sandbox, admin: Caller):
    sandbox.control.add_trades([BUY_BTC])
    batch_id = admin.result("CreatePrimeSettlementBatch")["batch"]["id"]
    params = {"batch_id": batch_id, "asset": "BTC"}
    admin.call("SettlePrimeSettlementBatchAsset", params)  # refused: not confirmed
    sandbox.control.confirm_batch(batch_id)
    sandbox.control.inject_fault("drop_after_execute", "SettlePrimeSettlementBatchAsset")
    with pytest.raises(requests.ConnectionError):
        admin.post("SettlePrimeSettlementBatchAsset", params)
    admin.call("SettlePrimeSettlementBatchAsset", params)  # refused: already settled
    calls = sandbox.control.calls("SettlePrimeSettlementBatchAsset")
    assert [c["executed"] for c in calls] == [False, True, False]
    assert calls[0]["error"] == ["EGeneral:Invalid arguments:Batch not confirmed"]
    assert calls[2]["error"] == ["EGeneral:Invalid arguments:Leg already settled"]
    assert len(sandbox.control.calls("SettlePrimeSettlementBatchAsset", executed=True)) == 1


def test_call_log_entries_carry_the_public_key_nonce_and_peer(sandbox, admin: Caller):
    nonce = next_nonce()
    admin.result("ListPrimeApiUsers", nonce=nonce)
    [call] = sandbox.control.calls("ListPrimeApiUsers")
    assert set(call) == {
        "seq", "time_ms", "endpoint", "api_key", "nonce", "executed", "error", "peer", "fault"
    }  # fmt: skip
    assert call["api_key"] == admin.key
    assert call["nonce"] == nonce
    assert call["peer"] == "127.0.0.1"
    assert call["executed"] is True
    assert call["error"] == []


def test_the_call_log_records_auth_failures_and_can_be_read_since_a_seq(sandbox, admin: Caller):
    admin.error("ListPrimeApiUsers", signature="AAAA")
    first = sandbox.control.calls()
    assert first[-1]["error"] == ["EAPI:Invalid signature"]
    admin.result("ListPrimeApiUsers")
    later = sandbox.control.calls(since=first[-1]["seq"])
    assert [c["executed"] for c in later] == [True]
    sandbox.control.clear_calls()
    assert sandbox.control.calls() == []
