"""The 13 Prime REST endpoints: request specs, who may call them, and their handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from primeapi.sandbox.state import (
    ASSET_KINDS,
    BATCH_STATUSES,
    ROLES,
    USER_STATUSES,
    SandboxState,
    User,
)
from primeapi.sandbox.validation import Field, RequestSpec

# Who may call an endpoint (prime-choices "Who may call what").
ADMIN_ONLY = "admin"
SETTLEMENT_READ = "settlement_read"
SETTLEMENT_WRITE = "settlement_write"

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 200

Handler = Callable[[SandboxState, dict[str, Any], int], dict[str, Any]]


@dataclass(frozen=True)
class Endpoint:
    """One private endpoint."""

    spec: RequestSpec
    access: str
    handler: Handler


def may_call(access: str, user: User | None) -> bool:
    """Admin key: everything; user keys: settlement only, writes for Traders only."""
    if user is None:
        return True
    if access == ADMIN_ONLY:
        return False
    if access == SETTLEMENT_WRITE:
        return user.role == "Trader"
    return True


def _create_user(state: SandboxState, args: dict[str, Any], now: int) -> dict[str, Any]:
    return state.user_json(state.create_user(args["name"], args["role"], now))


def _get_user(state: SandboxState, args: dict[str, Any], now: int) -> dict[str, Any]:
    return {"data": state.user_json(state.get_user(args["user_id"]))}


def _list_users(state: SandboxState, args: dict[str, Any], now: int) -> dict[str, Any]:
    return {"data": [state.user_json(user) for user in state.users.values()]}


def _update_user(state: SandboxState, args: dict[str, Any], now: int) -> dict[str, Any]:
    user = state.update_user(args["user_id"], args.get("name"), args.get("status"))
    return state.user_json(user)


def _update_roles(state: SandboxState, args: dict[str, Any], now: int) -> dict[str, Any]:
    return state.user_json(state.set_role(args["user_id"], args["role"]))


def _create_key(state: SandboxState, args: dict[str, Any], now: int) -> dict[str, Any]:
    return state.key_created_json(state.create_key(args["user_id"], now))


def _list_keys(state: SandboxState, args: dict[str, Any], now: int) -> dict[str, Any]:
    return {"data": [state.key_listed_json(key) for key in state.user_keys(args["user_id"])]}


def _update_key(state: SandboxState, args: dict[str, Any], now: int) -> dict[str, Any]:
    key = state.update_key(args["user_id"], args["key_id"], args.get("whitelisted_ips"), now)
    return state.key_updated_json(key)


def _delete_key(state: SandboxState, args: dict[str, Any], now: int) -> dict[str, Any]:
    state.delete_key(args["user_id"], args["key_id"])
    return {"deleted": True}


def _create_batch(state: SandboxState, args: dict[str, Any], now: int) -> dict[str, Any]:
    # asset_kind is nullable; null means the documented default.
    asset_kind = args.get("asset_kind") or "currency"
    return {"batch": state.batch_json(state.create_batch(asset_kind, now))}


def _get_batch(state: SandboxState, args: dict[str, Any], now: int) -> dict[str, Any]:
    return {"batch": state.batch_json(state.get_batch(args["batch_id"]))}


def _list_batches(state: SandboxState, args: dict[str, Any], now: int) -> dict[str, Any]:
    limit = args.get("limit", DEFAULT_LIST_LIMIT)
    offset = args.get("offset", 0)
    page, has_more = state.list_batches(
        statuses=args.get("statuses"),
        created_after=args.get("from"),
        created_until=args.get("until"),
        limit=limit,
        offset=offset,
    )
    return {
        "data": [state.batch_json(batch, with_trade_ids=False) for batch in page],
        "pagination": {"has_more": has_more, "limit": limit, "offset": offset},
    }


def _settle(state: SandboxState, args: dict[str, Any], now: int) -> dict[str, Any]:
    transfer = state.settle(args["batch_id"], args["asset"], now)
    return {"transfer": state.transfer_json(transfer)}


_USER_ID = Field("string", required=True)

ENDPOINTS: dict[str, Endpoint] = {
    "CreatePrimeApiUser": Endpoint(
        RequestSpec({"name": Field("string", required=True), "role": Field("string", True, ROLES)}),
        ADMIN_ONLY,
        _create_user,
    ),
    "GetPrimeApiUser": Endpoint(RequestSpec({"user_id": _USER_ID}), ADMIN_ONLY, _get_user),
    "ListPrimeApiUsers": Endpoint(RequestSpec(), ADMIN_ONLY, _list_users),
    "UpdatePrimeApiUser": Endpoint(
        RequestSpec(
            {
                "user_id": _USER_ID,
                "name": Field("string"),
                "status": Field("string", choices=USER_STATUSES),
            }
        ),
        ADMIN_ONLY,
        _update_user,
    ),
    "UpdatePrimeApiUserRoles": Endpoint(
        RequestSpec({"user_id": _USER_ID, "role": Field("string", True, ROLES)}),
        ADMIN_ONLY,
        _update_roles,
    ),
    "CreatePrimeApiUserKey": Endpoint(
        RequestSpec({"user_id": _USER_ID}, strict=True), ADMIN_ONLY, _create_key
    ),
    "ListPrimeApiUserKeys": Endpoint(
        RequestSpec({"user_id": _USER_ID}, strict=True), ADMIN_ONLY, _list_keys
    ),
    "UpdatePrimeApiUserKey": Endpoint(
        RequestSpec(
            {
                "user_id": _USER_ID,
                "key_id": Field("string", required=True),
                "whitelisted_ips": Field("string_list"),
            }
        ),
        ADMIN_ONLY,
        _update_key,
    ),
    "DeletePrimeApiUserKey": Endpoint(
        RequestSpec({"user_id": _USER_ID, "key_id": Field("string", required=True)}),
        ADMIN_ONLY,
        _delete_key,
    ),
    "CreatePrimeSettlementBatch": Endpoint(
        RequestSpec({"asset_kind": Field("string", choices=ASSET_KINDS, nullable=True)}),
        SETTLEMENT_WRITE,
        _create_batch,
    ),
    # Get ignores an asset_kind field: the spot/option/future rendering is not followed.
    "GetPrimeSettlementBatch": Endpoint(
        RequestSpec({"batch_id": Field("string", required=True)}),
        SETTLEMENT_READ,
        _get_batch,
    ),
    "ListPrimeSettlementBatches": Endpoint(
        RequestSpec(
            {
                "statuses": Field("string_list", choices=BATCH_STATUSES),
                "from": Field("integer"),
                "until": Field("integer"),
                "limit": Field("integer", minimum=1, maximum=MAX_LIST_LIMIT),
                "offset": Field("integer"),
            }
        ),
        SETTLEMENT_READ,
        _list_batches,
    ),
    "SettlePrimeSettlementBatchAsset": Endpoint(
        RequestSpec(
            {"batch_id": Field("string", required=True), "asset": Field("string", required=True)}
        ),
        SETTLEMENT_WRITE,
        _settle,
    ),
}
