"""Each of the 13 endpoints: happy path checked against openapi.yaml, and validation."""

from __future__ import annotations

import base64
import re

import pytest
from openapi_spec_validator import validate

from tests.primeapi.sandbox.conftest import BUY_BTC, Caller, openapi

ID_13 = re.compile(r"^[A-Z0-9]{13}$")


def test_the_openapi_document_is_valid():
    validate(openapi())


# ---------------------------------------------------------------- API users


def test_create_user_returns_the_user_directly_in_result(admin: Caller):
    user = admin.result("CreatePrimeApiUser", {"name": "  Test User ", "role": "Trader"})
    assert ID_13.match(user["id"])
    assert user == {"id": user["id"], "name": "Test User", "status": "Enabled", "roles": ["Trader"]}


def test_get_user_wraps_the_user_in_data(admin: Caller):
    user = admin.result("CreatePrimeApiUser", {"name": "Viewer One", "role": "Viewer"})
    assert admin.result("GetPrimeApiUser", {"user_id": user["id"]}) == {"data": user}


def test_list_users_lists_every_user_but_not_the_admin_key(admin: Caller):
    first = admin.result("CreatePrimeApiUser", {"name": "A", "role": "Trader"})
    second = admin.result("CreatePrimeApiUser", {"name": "B", "role": "Viewer"})
    assert admin.result("ListPrimeApiUsers") == {"data": [first, second]}


def test_list_users_on_an_empty_account_is_an_empty_list(admin: Caller):
    assert admin.result("ListPrimeApiUsers") == {"data": []}


def test_update_user_changes_name_and_status(admin: Caller):
    user = admin.result("CreatePrimeApiUser", {"name": "Old", "role": "Trader"})
    updated = admin.result(
        "UpdatePrimeApiUser", {"user_id": user["id"], "name": "New", "status": "Disabled"}
    )
    assert updated == {**user, "name": "New", "status": "Disabled"}
    renamed_only = admin.result("UpdatePrimeApiUser", {"user_id": user["id"], "name": "Newer"})
    assert renamed_only["status"] == "Disabled"


def test_update_roles_replaces_the_role(admin: Caller):
    user = admin.result("CreatePrimeApiUser", {"name": "A", "role": "Trader"})
    updated = admin.result("UpdatePrimeApiUserRoles", {"user_id": user["id"], "role": "Viewer"})
    assert updated["roles"] == ["Viewer"]


# ------------------------------------------------------------- API user keys


def test_create_key_returns_a_real_secret_that_signs_at_once(admin: Caller, make_user):
    user, key, caller = make_user("Trader")
    assert ID_13.match(key["id"])
    assert len(key["api_key"]) == 56
    assert len(base64.b64decode(key["api_secret"], validate=True)) == 64
    assert key["user_id"] == user["id"]
    assert key["permissions"] == ["read::marketdata", "read::orders", "write::orders"]
    assert key["whitelisted_ips"] == []
    assert caller.result("ListPrimeSettlementBatches")["data"] == []


def test_list_keys_names_the_public_key_key_and_never_shows_the_secret(admin: Caller, make_user):
    user, key, _ = make_user("Viewer")
    listed = admin.result("ListPrimeApiUserKeys", {"user_id": user["id"]})["data"]
    assert listed == [
        {
            "id": key["id"],
            "key": key["api_key"],
            "user_id": user["id"],
            "updated_at": listed[0]["updated_at"],
            "permissions": ["read::marketdata", "read::orders"],
            "whitelisted_ips": [],
        }
    ]
    assert key["api_secret"] not in str(listed)


def test_update_key_replaces_the_allow_list_and_keeps_it_when_omitted(admin: Caller, make_user):
    user, key, _ = make_user()
    ids = {"user_id": user["id"], "key_id": key["id"]}
    updated = admin.result(
        "UpdatePrimeApiUserKey",
        {**ids, "whitelisted_ips": ["192.168.1.1", "10.0.0.7/8", "2001:DB8::1", "192.168.1.1"]},
    )
    assert updated["whitelisted_ips"] == ["192.168.1.1", "10.0.0.0/8", "2001:db8::1"]
    assert updated["api_key"] == key["api_key"]
    assert "api_secret" not in updated
    assert updated["updated_at"] > 1_600_000_000_000  # milliseconds
    unchanged = admin.result("UpdatePrimeApiUserKey", ids)
    assert unchanged["whitelisted_ips"] == updated["whitelisted_ips"]
    cleared = admin.result("UpdatePrimeApiUserKey", {**ids, "whitelisted_ips": []})
    assert cleared["whitelisted_ips"] == []


def test_delete_key_stops_only_that_key(admin: Caller, make_user):
    user, key, caller = make_user()
    second = admin.result("CreatePrimeApiUserKey", {"user_id": user["id"]})
    other = Caller(admin.url, second["api_key"], second["api_secret"])
    deleted = admin.result("DeletePrimeApiUserKey", {"user_id": user["id"], "key_id": key["id"]})
    assert deleted == {"deleted": True}
    assert caller.error("ListPrimeSettlementBatches") == ["EAPI:Invalid key"]
    assert other.result("ListPrimeSettlementBatches")["data"] == []
    listed = admin.result("ListPrimeApiUserKeys", {"user_id": user["id"]})["data"]
    assert [k["id"] for k in listed] == [second["id"]]


def test_key_permissions_follow_the_owner_role(admin: Caller, make_user):
    user, _, _ = make_user("Viewer")
    admin.result("UpdatePrimeApiUserRoles", {"user_id": user["id"], "role": "Trader"})
    listed = admin.result("ListPrimeApiUserKeys", {"user_id": user["id"]})["data"]
    assert listed[0]["permissions"] == ["read::marketdata", "read::orders", "write::orders"]


# ---------------------------------------------------------------- settlement


def test_create_get_list_and_settle_match_the_documented_shapes(sandbox, admin: Caller):
    sandbox.control.add_trades([BUY_BTC])
    batch = admin.result("CreatePrimeSettlementBatch", {"asset_kind": "currency"})["batch"]
    assert re.match(r"^B_[A-Z0-9]{8}$", batch["id"])
    assert len(batch["trade_ids"]) == 1
    got = admin.result("GetPrimeSettlementBatch", {"batch_id": batch["id"]})["batch"]
    assert got == batch
    listed = admin.result("ListPrimeSettlementBatches")
    assert listed["pagination"] == {"has_more": False, "limit": 50, "offset": 0}
    assert listed["data"] == [{k: v for k, v in batch.items() if k != "trade_ids"}]
    sandbox.control.confirm_batch(batch["id"])
    transfer = admin.result(
        "SettlePrimeSettlementBatchAsset", {"batch_id": batch["id"], "asset": "BTC"}
    )["transfer"]
    assert transfer["id"] == "100"
    assert transfer["attributes"] == {
        "transfer_status": "pending",
        "transfer_amount": "1.5",
        "transfer_asset": "BTC",
    }
    assert transfer["relationships"]["leg"]["status"] == "settling"


def test_create_batch_treats_a_null_asset_kind_as_currency(sandbox, admin: Caller):
    sandbox.control.add_trades([BUY_BTC])
    batch = admin.result("CreatePrimeSettlementBatch", {"asset_kind": None})["batch"]
    assert batch["attributes"]["asset_kind"] == "currency"


def test_get_batch_ignores_an_asset_kind_field(sandbox, admin: Caller):
    sandbox.control.add_trades([BUY_BTC])
    batch = admin.result("CreatePrimeSettlementBatch")["batch"]
    got = admin.result("GetPrimeSettlementBatch", {"batch_id": batch["id"], "asset_kind": "spot"})
    assert got["batch"]["id"] == batch["id"]


# ---------------------------------------------------------------- validation

INVALID = "EGeneral:Invalid arguments"


@pytest.mark.parametrize(
    ("endpoint", "params", "detail"),
    [
        ("CreatePrimeApiUser", {"role": "Trader"}, "Missing name"),
        ("CreatePrimeApiUser", {"name": "A"}, "Missing role"),
        ("CreatePrimeApiUser", {"name": "A", "role": "Admin"}, "Invalid role"),
        ("CreatePrimeApiUser", {"name": 5, "role": "Trader"}, "Invalid name"),
        ("CreatePrimeApiUser", {"name": "   ", "role": "Trader"}, "Invalid name"),
        ("CreatePrimeApiUser", {"name": "x" * 65, "role": "Trader"}, "Invalid name"),
        ("CreatePrimeApiUser", {"name": "a\nb", "role": "Trader"}, "Invalid name"),
        ("GetPrimeApiUser", {}, "Missing user_id"),
        ("GetPrimeApiUser", {"user_id": 12}, "Invalid user_id"),
        ("GetPrimeApiUser", {"user_id": "NOPE"}, "Unknown user"),
        ("UpdatePrimeApiUser", {"user_id": "NOPE", "status": "Paused"}, "Invalid status"),
        ("UpdatePrimeApiUserRoles", {"user_id": "NOPE"}, "Missing role"),
        ("CreatePrimeApiUserKey", {"user_id": "NOPE", "ips": []}, "Unexpected field ips"),
        ("CreatePrimeApiUserKey", {"user_id": "NOPE"}, "Unknown user"),
        ("ListPrimeApiUserKeys", {}, "Missing user_id"),
        ("ListPrimeApiUserKeys", {"user_id": "NOPE", "limit": 1}, "Unexpected field limit"),
        ("DeletePrimeApiUserKey", {"user_id": "NOPE"}, "Missing key_id"),
        ("UpdatePrimeApiUserKey", {"user_id": "U", "key_id": "K"}, "Unknown user"),
        ("CreatePrimeSettlementBatch", {"asset_kind": "spot"}, "Invalid asset_kind"),
        ("GetPrimeSettlementBatch", {}, "Missing batch_id"),
        ("GetPrimeSettlementBatch", {"batch_id": "B_NOPE0000"}, "Unknown batch"),
        ("ListPrimeSettlementBatches", {"statuses": ["open"]}, "Invalid statuses"),
        ("ListPrimeSettlementBatches", {"statuses": "settled"}, "Invalid statuses"),
        ("ListPrimeSettlementBatches", {"limit": 201}, "Invalid limit"),
        ("ListPrimeSettlementBatches", {"limit": 0}, "Invalid limit"),
        ("ListPrimeSettlementBatches", {"limit": "20"}, "Invalid limit"),
        ("ListPrimeSettlementBatches", {"offset": -1}, "Invalid offset"),
        ("ListPrimeSettlementBatches", {"from": True}, "Invalid from"),
        ("ListPrimeSettlementBatches", {"until": 1.5}, "Invalid until"),
        ("SettlePrimeSettlementBatchAsset", {"batch_id": "B_X"}, "Missing asset"),
    ],
)
def test_invalid_fields_are_refused_with_a_detail(admin: Caller, endpoint, params, detail):
    assert admin.error(endpoint, params) == [f"{INVALID}:{detail}"]


def test_fields_outside_the_schema_are_ignored_where_extras_are_allowed(admin: Caller):
    user = admin.result("CreatePrimeApiUser", {"name": "A", "role": "Trader", "otp": "123"})
    assert user["name"] == "A"


@pytest.mark.parametrize(
    ("ips", "detail"),
    [
        ("10.0.0.1", "Invalid whitelisted_ips"),
        (["10.0.0.300"], "Invalid whitelisted_ips"),
        ([""], "Invalid whitelisted_ips"),
        ([f"10.0.0.{i}" for i in range(101)], "Too many whitelisted_ips"),
    ],
)
def test_bad_allow_lists_are_refused(admin: Caller, make_user, ips, detail):
    user, key, _ = make_user()
    params = {"user_id": user["id"], "key_id": key["id"], "whitelisted_ips": ips}
    assert admin.error("UpdatePrimeApiUserKey", params) == [f"{INVALID}:{detail}"]


def test_a_key_of_another_user_is_an_unknown_key(admin: Caller, make_user):
    first, _, _ = make_user()
    _, other_key, _ = make_user()
    params = {"user_id": first["id"], "key_id": other_key["id"]}
    assert admin.error("DeletePrimeApiUserKey", params) == [f"{INVALID}:Unknown key"]
    assert admin.error("UpdatePrimeApiUserKey", params) == [f"{INVALID}:Unknown key"]


def test_the_admin_key_cannot_be_deleted_through_the_api(sandbox, admin: Caller, make_user):
    user, _, _ = make_user()
    admin_key_id = next(k["id"] for k in sandbox.control.state()["keys"] if k["admin"])
    params = {"user_id": user["id"], "key_id": admin_key_id}
    assert admin.error("DeletePrimeApiUserKey", params) == [f"{INVALID}:Unknown key"]


def test_an_unknown_endpoint_is_an_unknown_method(admin: Caller):
    response = admin.post("CancelEverything")
    assert response.status_code == 404
    assert response.json() == {"error": ["EGeneral:Unknown method"]}
