import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from primeapi.models import (
    ASSET_KINDS,
    BATCH_STATUSES,
    ROLE_PERMISSIONS,
    ROLES,
    USER_STATUSES,
    ApiKey,
    ApiUser,
    BatchPage,
    BatchStatus,
    IssuedApiKey,
    Leg,
    Role,
    SettlementBatch,
    SettleResult,
    Transfer,
    api_keys_from_api,
    api_users_from_api,
    from_ms,
    to_ms,
)

USER = {"id": "2T0RXL9B8K5D6", "name": "Test User", "status": "Enabled", "roles": ["Trader"]}
LEG = {
    "status": "unsettled",
    "asset": "BTC",
    "amount": "1.5",
    "direction": "incoming",
    "can_settle": True,
    "settled_at": None,
    "latest_spot_transfer": {},
}
BATCH = {
    "id": "B_Y7T2LPVX",
    "attributes": {
        "status": "unsettled",
        "confirmed": False,
        "created_at": 1700000000000,
        "trade_count": 5,
        "asset_kind": "currency",
        "updated_at": 1700000100000,
    },
    "legs": [LEG],
    "trade_ids": [
        "3f435d6b-62fd-4f26-b1c5-68ef573d93ef",
        "7f6a6d75-6470-4f65-8b24-9858f28ede83",
    ],
}
SECRET = "c2VjcmV0LXNob3duLW9uY2Utb25seS1zZWNyZXQtc2hvd24tb25jZQ=="


def test_the_constants_follow_the_docs_and_project_choices():
    assert ROLES == ("Viewer", "Trader")
    assert USER_STATUSES == ("Enabled", "Disabled")
    assert BATCH_STATUSES == ("unsettled", "partially_settled", "settled", "completed")
    assert ASSET_KINDS == ("currency", "tokenized_equity")
    assert ROLE_PERMISSIONS == {
        "Viewer": ("read::marketdata", "read::orders"),
        "Trader": ("read::marketdata", "read::orders", "write::orders"),
    }
    assert ROLE_PERMISSIONS[Role.TRADER] == ROLE_PERMISSIONS["Trader"]


def test_a_bare_user_parses():
    user = ApiUser.from_api(USER)
    assert user == ApiUser("2T0RXL9B8K5D6", "Test User", "Enabled", ("Trader",))
    assert user.role == "Trader"
    assert user.is_enabled


def test_a_user_wrapped_in_data_parses_the_same():
    assert ApiUser.from_api({"data": USER}) == ApiUser.from_api(USER)


def test_a_user_without_roles_has_no_role():
    user = ApiUser.from_api({**USER, "roles": [], "status": "Disabled"})
    assert user.role is None
    assert not user.is_enabled


def test_results_are_frozen():
    user = ApiUser.from_api(USER)
    with pytest.raises(dataclasses.FrozenInstanceError):
        user.name = "other"  # type: ignore[misc]


def test_a_user_list_parses_from_data():
    users = api_users_from_api({"data": [USER, {**USER, "id": "X2"}]})
    assert [u.id for u in users] == ["2T0RXL9B8K5D6", "X2"]
    assert isinstance(users, tuple)


@pytest.mark.parametrize(
    "payload",
    [
        {"id": 5, "name": "x", "status": "Enabled", "roles": []},
        {"id": "a", "name": "x", "status": "Enabled", "roles": "Trader"},
        {"id": "a", "status": "Enabled"},
        ["not", "an", "object"],
    ],
)
def test_a_malformed_user_raises_value_error(payload):
    with pytest.raises(ValueError):
        ApiUser.from_api(payload)


def test_a_listed_key_reads_key_and_millisecond_updated_at():
    key = ApiKey.from_api(
        {
            "id": "3RM9K4ZTC0C00",
            "key": "KRA5L19LAW8Z",
            "user_id": "2T0RXL9B8K5D6",
            "updated_at": 1700000000123,
            "permissions": ["read::marketdata"],
            "whitelisted_ips": [],
        }
    )
    assert key.api_key == "KRA5L19LAW8Z"
    assert key.updated_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert key.permissions == ("read::marketdata",)
    assert key.whitelisted_ips == ()


def test_an_updated_key_reads_api_key():
    key = ApiKey.from_api(
        {
            "id": "3RM9K4ZTC0C00",
            "api_key": "KRA5L19LAW8Z",
            "user_id": "2T0RXL9B8K5D6",
            "permissions": ["read::marketdata"],
            "whitelisted_ips": ["192.168.1.1"],
            "updated_at": 123,
        }
    )
    assert key.api_key == "KRA5L19LAW8Z"
    assert key.whitelisted_ips == ("192.168.1.1",)
    assert key.updated_at.tzinfo is UTC


def test_a_key_list_parses_from_data():
    keys = api_keys_from_api(
        {"data": [{"id": "K1", "key": "P1", "user_id": "U", "permissions": []}]}
    )
    assert keys == (ApiKey("K1", "P1", "U", (), (), None),)


def test_a_plain_key_drops_any_secret_it_is_given():
    key = ApiKey.from_api(
        {"id": "K", "api_key": "P", "user_id": "U", "permissions": [], "api_secret": SECRET}
    )
    assert not hasattr(key, "api_secret")
    assert SECRET not in repr(key)


def test_an_issued_key_carries_its_secret_but_never_shows_it():
    issued = IssuedApiKey.from_api(
        {
            "id": "3RM9K4ZTC0C00",
            "api_key": "KRA5L19LAW8Z",
            "api_secret": SECRET,
            "user_id": "2T0RXL9B8K5D6",
            "permissions": ["read::marketdata"],
            "whitelisted_ips": ["192.168.1.1"],
        }
    )
    assert issued.api_secret == SECRET
    assert isinstance(issued, ApiKey)
    assert SECRET not in repr(issued)
    assert SECRET not in str(issued)
    assert SECRET not in f"{issued}"
    assert SECRET not in repr([issued])
    plain = issued.without_secret()
    assert type(plain) is ApiKey
    assert plain.api_key == "KRA5L19LAW8Z"


def test_an_issued_key_without_a_secret_is_malformed():
    with pytest.raises(ValueError):
        IssuedApiKey.from_api({"id": "K", "api_key": "P", "user_id": "U"})


def test_a_batch_parses_with_decimal_amounts_and_utc_datetimes():
    batch = SettlementBatch.from_api({"batch": BATCH})
    assert batch.id == "B_Y7T2LPVX"
    assert batch.status == BatchStatus.UNSETTLED
    assert batch.confirmed is False
    assert batch.created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert batch.updated_at == datetime(2023, 11, 14, 22, 15, 0, tzinfo=UTC)
    assert batch.trade_count == 5
    assert batch.asset_kind == "currency"
    assert batch.trade_ids == tuple(BATCH["trade_ids"])
    (leg,) = batch.legs
    assert leg == Leg("BTC", Decimal("1.5"), "incoming", "unsettled", True, None, None)
    assert isinstance(leg.amount, Decimal)
    assert batch.leg("BTC") is leg
    assert batch.leg("ETH") is None
    assert not batch.is_final
    assert batch.is_active


def test_a_bare_batch_and_a_list_item_without_trade_ids_parse():
    item = {k: v for k, v in BATCH.items() if k != "trade_ids"}
    batch = SettlementBatch.from_api(item)
    assert batch.trade_ids == ()
    assert batch.trade_count == 5


def test_a_batch_with_flat_attributes_and_no_asset_kind_defaults_to_currency():
    flat = {"id": "B_1", "status": "completed", "confirmed": True, "created_at": 0, "legs": []}
    batch = SettlementBatch.from_api(flat)
    assert batch.asset_kind == "currency"
    assert batch.is_final
    assert batch.created_at == datetime(1970, 1, 1, tzinfo=UTC)
    assert batch.trade_count == 0


def test_a_leg_with_a_transfer_parses_it():
    leg = Leg.from_api(
        {
            **LEG,
            "status": "settled",
            "settled_at": 1700000200000,
            "latest_spot_transfer": {
                "id": "100",
                "transfer_status": "completed",
                "transfer_amount": "1.5",
                "transfer_asset": "BTC",
                "created_at": 1700000100000,
                "updated_at": 1700000200000,
            },
        }
    )
    assert leg.is_settled
    assert leg.settled_at == datetime(2023, 11, 14, 22, 16, 40, tzinfo=UTC)
    assert leg.latest_transfer == Transfer(
        "100",
        "completed",
        Decimal("1.5"),
        "BTC",
        datetime(2023, 11, 14, 22, 15, tzinfo=UTC),
        datetime(2023, 11, 14, 22, 16, 40, tzinfo=UTC),
    )
    assert leg.latest_transfer.is_final


def test_a_float_amount_is_refused():
    with pytest.raises(ValueError):
        Leg.from_api({**LEG, "amount": 1.5})


@pytest.mark.parametrize("amount", ["abc", "NaN", "Infinity", None, True])
def test_a_bad_amount_is_refused(amount):
    with pytest.raises(ValueError):
        Leg.from_api({**LEG, "amount": amount})


def test_an_amount_keeps_every_digit():
    leg = Leg.from_api({**LEG, "amount": "0.000000012345678901"})
    assert leg.amount == Decimal("0.000000012345678901")


def test_a_settle_result_parses_the_transfer_and_its_leg():
    result = SettleResult.from_api(
        {
            "transfer": {
                "id": "100",
                "attributes": {
                    "transfer_status": "pending",
                    "transfer_amount": "1.5",
                    "transfer_asset": "BTC",
                },
                "relationships": {"leg": {**LEG, "status": "settling", "can_settle": False}},
            }
        }
    )
    assert result.transfer == Transfer("100", "pending", Decimal("1.5"), "BTC")
    assert not result.transfer.is_final
    assert result.leg.status == "settling"
    assert result.leg.can_settle is False


def test_a_settle_result_without_a_leg_still_parses():
    result = SettleResult.from_api(
        {"transfer": {"id": 100, "attributes": {"transfer_status": "pending"}}}
    )
    assert result.transfer.id == "100"
    assert result.transfer.amount is None
    assert result.leg is None


def test_a_batch_page_parses_pagination():
    page = BatchPage.from_api(
        {"data": [BATCH, BATCH], "pagination": {"has_more": True, "limit": 2, "offset": 4}}
    )
    assert len(page.batches) == 2
    assert page.has_more
    assert page.limit == 2
    assert page.offset == 4
    assert page.next_offset == 6


def test_a_last_page_has_no_next_offset():
    page = BatchPage.from_api(
        {"data": [], "pagination": {"has_more": False, "limit": 50, "offset": 0}}
    )
    assert page.next_offset is None
    assert page.batches == ()


def test_a_page_without_data_is_malformed():
    with pytest.raises(ValueError):
        BatchPage.from_api({"pagination": {}})


@pytest.mark.parametrize("value", [1.5, True, "soon", None])
def test_bad_milliseconds_are_refused(value):
    with pytest.raises(ValueError):
        from_ms(value)


def test_milliseconds_round_trip():
    moment = datetime(2024, 2, 29, 12, 0, 0, 5000, tzinfo=UTC)
    assert from_ms(to_ms(moment)) == moment
    assert to_ms(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == 1000
    with pytest.raises(ValueError):
        to_ms(datetime(2024, 1, 1))
