"""Authentication, its check order, nonces, allow-lists, roles, lockout and rate limit."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
import requests

from primeapi.signing import sign
from tests.primeapi.sandbox.conftest import BUY_BTC, Caller, compact, next_nonce

INVALID_KEY = ["EAPI:Invalid key"]
INVALID_NONCE = ["EAPI:Invalid nonce"]
INVALID_SIGNATURE = ["EAPI:Invalid signature"]
INVALID_ARGUMENTS = ["EGeneral:Invalid arguments"]
PERMISSION_DENIED = ["EGeneral:Permission denied"]
BAD_SIGNATURE = "AAAA"


# ------------------------------------------------------------------ key


def test_a_request_without_api_key_is_an_invalid_key(sandbox):
    response = requests.post(f"{sandbox.url}/0/private/ListPrimeApiUsers", data="{}", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"error": INVALID_KEY}


def test_an_unknown_key_is_an_invalid_key(admin: Caller):
    stranger = Caller(admin.url, "A" * 56, admin.secret)
    assert stranger.error("ListPrimeApiUsers") == INVALID_KEY


def test_a_disabled_users_keys_are_refused_until_re_enabled(admin: Caller, make_user):
    user, _, caller = make_user()
    admin.result("UpdatePrimeApiUser", {"user_id": user["id"], "status": "Disabled"})
    assert caller.error("ListPrimeSettlementBatches") == INVALID_KEY
    admin.result("UpdatePrimeApiUser", {"user_id": user["id"], "status": "Enabled"})
    assert caller.result("ListPrimeSettlementBatches")["data"] == []


# ---------------------------------------------------------------- nonce


def test_a_missing_nonce_is_an_invalid_nonce(admin: Caller):
    assert admin.error("ListPrimeApiUsers", body="{}", nonce="") == INVALID_NONCE


@pytest.mark.parametrize(
    "nonce_json", ["-5", "1.5", '"12a"', '""', "true", "null", str(2**64), "[1]"]
)
def test_a_nonce_that_is_not_an_unsigned_64_bit_integer_is_invalid(admin: Caller, nonce_json):
    body = '{"nonce":' + nonce_json + "}"
    assert admin.error("ListPrimeApiUsers", body=body, nonce=nonce_json) == INVALID_NONCE


def test_a_replayed_nonce_is_refused(admin: Caller):
    nonce = next_nonce()
    assert admin.result("ListPrimeApiUsers", nonce=nonce) == {"data": []}
    assert admin.error("ListPrimeApiUsers", nonce=nonce) == INVALID_NONCE


def test_a_lower_nonce_is_refused(admin: Caller):
    low = next_nonce()
    high = next_nonce()
    admin.result("ListPrimeApiUsers", nonce=high)
    assert admin.error("ListPrimeApiUsers", nonce=low) == INVALID_NONCE


def test_a_numeric_string_nonce_is_accepted_and_signed_as_its_text(admin: Caller):
    nonce = str(next_nonce())
    body = compact({"nonce": nonce})
    assert admin.result("ListPrimeApiUsers", body=body, nonce=nonce) == {"data": []}


def test_nonces_are_tracked_per_key(admin: Caller, make_user):
    _, _, caller = make_user()
    nonce = next_nonce()
    admin.result("ListPrimeApiUsers", nonce=nonce)
    # A brand-new key has no history, so a nonce used on another key is fine.
    assert caller.result("ListPrimeSettlementBatches", nonce=nonce)["data"] == []


# ------------------------------------------------------------ signature


def test_a_wrong_signature_is_an_invalid_signature(admin: Caller):
    assert admin.error("ListPrimeApiUsers", signature=BAD_SIGNATURE) == INVALID_SIGNATURE


def test_a_missing_signature_is_an_invalid_signature(admin: Caller):
    response = requests.post(
        f"{admin.url}/0/private/ListPrimeApiUsers",
        data=compact({"nonce": next_nonce()}),
        headers={"API-Key": admin.key, "Content-Type": "application/json"},
        timeout=5,
    )
    assert response.json() == {"error": INVALID_SIGNATURE}


def test_a_signature_from_another_secret_is_invalid(admin: Caller, make_user):
    _, key, _ = make_user()
    impostor = Caller(admin.url, admin.key, key["api_secret"])
    assert impostor.error("ListPrimeApiUsers") == INVALID_SIGNATURE


def test_the_raw_received_bytes_are_hashed_whatever_their_spacing(admin: Caller):
    nonce = next_nonce()
    spaced = json.dumps({"nonce": nonce})
    assert admin.result("ListPrimeApiUsers", body=spaced, nonce=nonce) == {"data": []}


def test_re_serialised_json_does_not_verify(admin: Caller):
    nonce = next_nonce()
    compact_body = compact({"nonce": nonce})
    signature = sign(
        secret=admin.secret, url_path="/0/private/ListPrimeApiUsers", nonce=nonce, body=compact_body
    )
    spaced = json.dumps({"nonce": nonce})
    assert admin.error("ListPrimeApiUsers", body=spaced, signature=signature) == INVALID_SIGNATURE


def test_the_signed_path_includes_the_query_string(admin: Caller):
    assert admin.result("ListPrimeApiUsers", query="?probe=1") == {"data": []}
    unsigned_query = admin.error(
        "ListPrimeApiUsers", query="?probe=1", signed_path="/0/private/ListPrimeApiUsers"
    )
    assert unsigned_query == INVALID_SIGNATURE


# ---------------------------------------------------------------- bodies


def test_an_unparseable_body_is_invalid_arguments(admin: Caller):
    assert admin.error("ListPrimeApiUsers", body="{nonce:", nonce=1) == INVALID_ARGUMENTS


def test_a_json_body_that_is_not_an_object_is_invalid_arguments(admin: Caller):
    assert admin.error("ListPrimeApiUsers", body="[1, 2]", nonce=1) == INVALID_ARGUMENTS


def test_a_form_encoded_body_is_accepted(sandbox, admin: Caller):
    nonce = next_nonce()
    body = urlencode({"nonce": nonce})
    result = admin.result(
        "ListPrimeApiUsers",
        body=body,
        nonce=nonce,
        content_type="application/x-www-form-urlencoded; charset=utf-8",
    )
    assert result == {"data": []}


def test_form_bodies_coerce_integers_and_repeat_keys_into_lists(sandbox, admin: Caller):
    nonce = next_nonce()
    body = urlencode(
        {"nonce": nonce, "statuses": ["unsettled", "settled"], "limit": "2", "offset": "0"},
        doseq=True,
    )
    result = admin.result(
        "ListPrimeSettlementBatches",
        body=body,
        nonce=nonce,
        content_type="application/x-www-form-urlencoded",
    )
    assert result["pagination"] == {"has_more": False, "limit": 2, "offset": 0}


# ---------------------------------------------------------- check order


def test_order_an_unknown_key_wins_over_a_garbage_body(admin: Caller):
    stranger = Caller(admin.url, "unknown", admin.secret)
    assert stranger.error("ListPrimeApiUsers", body="garbage{", nonce=1) == INVALID_KEY


def test_order_a_garbage_body_wins_over_a_bad_signature(admin: Caller):
    error = admin.error("ListPrimeApiUsers", body="{oops", nonce=1, signature=BAD_SIGNATURE)
    assert error == INVALID_ARGUMENTS


def test_order_a_missing_nonce_wins_over_a_bad_signature(admin: Caller):
    error = admin.error("ListPrimeApiUsers", body="{}", nonce="", signature=BAD_SIGNATURE)
    assert error == INVALID_NONCE


def test_order_a_bad_signature_wins_over_a_stale_nonce(admin: Caller):
    nonce = next_nonce()
    admin.result("ListPrimeApiUsers", nonce=nonce)
    error = admin.error("ListPrimeApiUsers", nonce=nonce, signature=BAD_SIGNATURE)
    assert error == INVALID_SIGNATURE


def test_order_a_stale_nonce_wins_over_permission_checks(admin: Caller, make_user):
    _, _, caller = make_user("Viewer")
    nonce = next_nonce()
    caller.result("ListPrimeSettlementBatches", nonce=nonce)
    assert caller.error("ListPrimeApiUsers", nonce=nonce) == INVALID_NONCE


def test_order_permission_wins_over_field_validation(admin: Caller, make_user):
    _, _, caller = make_user("Viewer")
    error = caller.error("CreatePrimeSettlementBatch", {"asset_kind": "nonsense"})
    assert error == PERMISSION_DENIED


def test_order_a_refused_request_still_consumes_its_nonce(admin: Caller, make_user):
    _, _, caller = make_user("Viewer")
    nonce = next_nonce()
    assert caller.error("CreatePrimeSettlementBatch", nonce=nonce) == PERMISSION_DENIED
    assert caller.error("ListPrimeSettlementBatches", nonce=nonce) == INVALID_NONCE


# ----------------------------------------------------------- allow-list


def test_the_allow_list_is_checked_against_the_peer_address(admin: Caller, make_user):
    user, key, caller = make_user()
    ids = {"user_id": user["id"], "key_id": key["id"]}
    admin.result("UpdatePrimeApiUserKey", {**ids, "whitelisted_ips": ["10.0.0.1"]})
    assert caller.error("ListPrimeSettlementBatches") == PERMISSION_DENIED
    admin.result("UpdatePrimeApiUserKey", {**ids, "whitelisted_ips": ["10.0.0.1", "127.0.0.1/32"]})
    assert caller.result("ListPrimeSettlementBatches")["data"] == []


def test_the_allow_list_is_checked_before_roles_and_fields(admin: Caller, make_user):
    user, key, caller = make_user("Viewer")
    ids = {"user_id": user["id"], "key_id": key["id"]}
    admin.result("UpdatePrimeApiUserKey", {**ids, "whitelisted_ips": ["10.0.0.0/8"]})
    assert caller.error("ListPrimeSettlementBatches", {"limit": 0}) == PERMISSION_DENIED


# ---------------------------------------------------------------- roles


def test_a_viewer_key_cannot_create_or_settle_batches(sandbox, admin: Caller, make_user):
    _, _, viewer = make_user("Viewer")
    sandbox.control.add_trades([BUY_BTC])
    assert viewer.error("CreatePrimeSettlementBatch") == PERMISSION_DENIED
    batch = admin.result("CreatePrimeSettlementBatch")["batch"]
    sandbox.control.confirm_batch(batch["id"])
    settle = {"batch_id": batch["id"], "asset": "BTC"}
    assert viewer.error("SettlePrimeSettlementBatchAsset", settle) == PERMISSION_DENIED
    assert viewer.result("GetPrimeSettlementBatch", {"batch_id": batch["id"]})
    assert len(viewer.result("ListPrimeSettlementBatches")["data"]) == 1


def test_a_trader_key_can_create_and_settle_batches(sandbox, make_user):
    _, _, trader = make_user("Trader")
    sandbox.control.add_trades([BUY_BTC])
    batch = trader.result("CreatePrimeSettlementBatch")["batch"]
    sandbox.control.confirm_batch(batch["id"])
    settle = {"batch_id": batch["id"], "asset": "USD"}
    assert trader.result("SettlePrimeSettlementBatchAsset", settle)["transfer"]["id"]


@pytest.mark.parametrize(
    "endpoint",
    [
        "CreatePrimeApiUser",
        "GetPrimeApiUser",
        "ListPrimeApiUsers",
        "UpdatePrimeApiUser",
        "UpdatePrimeApiUserRoles",
        "CreatePrimeApiUserKey",
        "ListPrimeApiUserKeys",
        "UpdatePrimeApiUserKey",
        "DeletePrimeApiUserKey",
    ],
)
def test_user_keys_cannot_manage_users_or_keys(make_user, endpoint):
    user, _, trader = make_user("Trader")
    assert trader.error(endpoint, {"user_id": user["id"]}) == PERMISSION_DENIED


def test_a_role_change_applies_to_existing_keys_at_once(sandbox, admin: Caller, make_user):
    user, _, caller = make_user("Viewer")
    sandbox.control.add_trades([BUY_BTC])
    assert caller.error("CreatePrimeSettlementBatch") == PERMISSION_DENIED
    admin.result("UpdatePrimeApiUserRoles", {"user_id": user["id"], "role": "Trader"})
    assert caller.result("CreatePrimeSettlementBatch")["batch"]["attributes"]["trade_count"] == 1


# ---------------------------------------------------- lockout, rate limit


def test_repeated_auth_failures_lock_the_key_out(sandbox, admin: Caller, make_user):
    _, _, other = make_user()
    sandbox.control.update_settings(lockout_threshold=3, lockout_window=60, lockout_duration=900)
    for _ in range(3):
        assert admin.error("ListPrimeApiUsers", signature=BAD_SIGNATURE) == INVALID_SIGNATURE
    assert admin.error("ListPrimeApiUsers") == ["EGeneral:Temporary lockout"]
    assert other.result("ListPrimeSettlementBatches")["data"] == []  # other keys unaffected
    sandbox.control.clear_lockouts()
    assert len(admin.result("ListPrimeApiUsers")["data"]) == 1


def test_invalid_nonces_count_towards_the_lockout(sandbox, admin: Caller):
    sandbox.control.update_settings(lockout_threshold=2)
    nonce = next_nonce()
    admin.result("ListPrimeApiUsers", nonce=nonce)
    admin.error("ListPrimeApiUsers", nonce=nonce)
    admin.error("ListPrimeApiUsers", nonce=nonce)
    assert admin.error("ListPrimeApiUsers") == ["EGeneral:Temporary lockout"]


def test_the_lockout_ends_after_its_duration(sandbox, admin: Caller):
    sandbox.control.update_settings(lockout_threshold=1, lockout_duration=900)
    admin.error("ListPrimeApiUsers", signature=BAD_SIGNATURE)
    assert admin.error("ListPrimeApiUsers") == ["EGeneral:Temporary lockout"]
    sandbox.control.advance_clock(899)
    assert admin.error("ListPrimeApiUsers") == ["EGeneral:Temporary lockout"]
    sandbox.control.advance_clock(1.5)
    assert admin.result("ListPrimeApiUsers") == {"data": []}


def test_failures_outside_the_lockout_window_do_not_add_up(sandbox, admin: Caller):
    sandbox.control.update_settings(lockout_threshold=2, lockout_window=60)
    admin.error("ListPrimeApiUsers", signature=BAD_SIGNATURE)
    sandbox.control.advance_clock(61)
    admin.error("ListPrimeApiUsers", signature=BAD_SIGNATURE)
    assert admin.result("ListPrimeApiUsers") == {"data": []}
    admin.error("ListPrimeApiUsers", signature=BAD_SIGNATURE)
    assert admin.error("ListPrimeApiUsers") == ["EGeneral:Temporary lockout"]


def test_the_starter_rate_limit_allows_15_calls_then_refuses(sandbox, admin: Caller):
    sandbox.control.update_settings(rate_limit="starter")
    for _ in range(15):
        admin.result("ListPrimeApiUsers")
    assert admin.error("ListPrimeApiUsers") == ["EAPI:Rate limit exceeded"]
    sandbox.control.update_settings(rate_limit="off")
    assert admin.result("ListPrimeApiUsers") == {"data": []}


def test_the_rate_limit_counter_decays_with_time(sandbox, admin: Caller):
    sandbox.control.update_settings(rate_limit="starter")  # 15, -0.33 a second
    for _ in range(15):
        admin.result("ListPrimeApiUsers")
    assert admin.error("ListPrimeApiUsers") == ["EAPI:Rate limit exceeded"]
    sandbox.control.advance_clock(3.1)  # one call's worth
    admin.result("ListPrimeApiUsers")
    assert admin.error("ListPrimeApiUsers") == ["EAPI:Rate limit exceeded"]
    sandbox.control.advance_clock(46)  # empty again
    for _ in range(15):
        admin.result("ListPrimeApiUsers")


def test_the_rate_limit_is_per_key(sandbox, admin: Caller, make_user):
    _, _, caller = make_user()
    sandbox.control.update_settings(rate_limit="starter")
    for _ in range(15):
        admin.result("ListPrimeApiUsers")
    assert admin.error("ListPrimeApiUsers") == ["EAPI:Rate limit exceeded"]
    assert caller.result("ListPrimeSettlementBatches")["data"] == []


def test_secrets_never_appear_in_the_state_summary_or_call_log(sandbox, admin: Caller, make_user):
    _, key, caller = make_user()
    caller.result("ListPrimeSettlementBatches")
    exposed = json.dumps(sandbox.control.state()) + json.dumps(sandbox.control.calls())
    assert admin.secret not in exposed
    assert key["api_secret"] not in exposed
