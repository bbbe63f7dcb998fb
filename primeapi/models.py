"""Frozen results parsed from Prime REST responses: Decimal amounts, aware UTC datetimes.

Each ``from_api(payload)`` accepts the documented shape variants (wrapped or
bare objects, ``key`` vs ``api_key``, nested or flat batch attributes) and
raises ``ValueError`` when the payload cannot be read; the client turns that
into ``MalformedResponseError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

__all__ = [
    "ASSET_KINDS",
    "BATCH_STATUSES",
    "LEG_DIRECTIONS",
    "LEG_STATUSES",
    "ROLES",
    "ROLE_PERMISSIONS",
    "TRANSFER_STATUSES",
    "USER_STATUSES",
    "ApiKey",
    "ApiUser",
    "AssetKind",
    "BatchPage",
    "BatchStatus",
    "IssuedApiKey",
    "Leg",
    "LegDirection",
    "LegStatus",
    "Role",
    "SettleResult",
    "SettlementBatch",
    "Transfer",
    "TransferStatus",
    "UserStatus",
    "api_keys_from_api",
    "api_users_from_api",
    "from_ms",
    "to_ms",
]


class Role(StrEnum):
    """Role of a Prime API user."""

    VIEWER = "Viewer"
    TRADER = "Trader"


class UserStatus(StrEnum):
    """Status of a Prime API user."""

    ENABLED = "Enabled"
    DISABLED = "Disabled"


class BatchStatus(StrEnum):
    """Status of a settlement batch."""

    UNSETTLED = "unsettled"
    PARTIALLY_SETTLED = "partially_settled"
    SETTLED = "settled"
    COMPLETED = "completed"


class AssetKind(StrEnum):
    """Kind of assets a settlement batch covers."""

    CURRENCY = "currency"
    TOKENIZED_EQUITY = "tokenized_equity"


class LegStatus(StrEnum):
    """Status of a settlement leg (docs/prime-choices.md)."""

    UNSETTLED = "unsettled"
    SETTLING = "settling"
    SETTLED = "settled"


class LegDirection(StrEnum):
    """Which way a leg's asset moves, seen from the account."""

    INCOMING = "incoming"
    OUTGOING = "outgoing"


class TransferStatus(StrEnum):
    """Status of a settlement transfer (docs/prime-choices.md)."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


ROLES: tuple[str, ...] = tuple(member.value for member in Role)
USER_STATUSES: tuple[str, ...] = tuple(member.value for member in UserStatus)
BATCH_STATUSES: tuple[str, ...] = tuple(member.value for member in BatchStatus)
ASSET_KINDS: tuple[str, ...] = tuple(member.value for member in AssetKind)
LEG_STATUSES: tuple[str, ...] = tuple(member.value for member in LegStatus)
LEG_DIRECTIONS: tuple[str, ...] = tuple(member.value for member in LegDirection)
TRANSFER_STATUSES: tuple[str, ...] = tuple(member.value for member in TransferStatus)

#: Key permissions follow the owner's role (docs/prime-choices.md).
ROLE_PERMISSIONS: Mapping[str, tuple[str, ...]] = {
    Role.VIEWER.value: ("read::marketdata", "read::orders"),
    Role.TRADER.value: ("read::marketdata", "read::orders", "write::orders"),
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- small readers that raise ValueError on anything unexpected ---------------------------


def from_ms(value: object) -> datetime:
    """Convert integer milliseconds since the epoch to an aware UTC datetime."""
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise ValueError(f"expected milliseconds, got {type(value).__name__}")
    try:
        ms = int(value)
    except (ValueError, ArithmeticError):
        raise ValueError("expected integer milliseconds") from None
    if isinstance(value, Decimal) and value != ms:
        raise ValueError("expected integer milliseconds")
    return _EPOCH + timedelta(milliseconds=ms)


def to_ms(moment: datetime) -> int:
    """Convert an aware datetime to integer milliseconds since the epoch."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime; pass an aware one")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _opt_ms(value: object) -> datetime | None:
    return None if value is None else from_ms(value)


def _obj(payload: object, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise ValueError(f"{what}: expected an object, got {type(payload).__name__}")
    return payload


def _list(payload: object, what: str) -> list[Any]:
    if not isinstance(payload, list):
        raise ValueError(f"{what}: expected a list, got {type(payload).__name__}")
    return payload


def _str(payload: Mapping[str, Any], key: str, what: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{what}.{key}: expected a string")
    return value


def _opt_str(payload: Mapping[str, Any], key: str, what: str) -> str | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{what}.{key}: expected a string")
    return value


def _bool(payload: Mapping[str, Any], key: str, what: str, default: bool | None = None) -> bool:
    value = payload.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{what}.{key}: expected a boolean")
    return value


def _int(payload: Mapping[str, Any], key: str, what: str, default: int | None = None) -> int:
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what}.{key}: expected an integer")
    return value


def _strings(payload: Mapping[str, Any], key: str, what: str) -> tuple[str, ...]:
    value = payload.get(key)
    if value is None:
        return ()
    items = _list(value, f"{what}.{key}")
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"{what}.{key}: expected a list of strings")
    return tuple(items)


def _decimal(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(f"{what}: expected a decimal string")
    try:
        amount = Decimal(value)
    except (InvalidOperation, ValueError):
        raise ValueError(f"{what}: not a decimal") from None
    if not amount.is_finite():
        raise ValueError(f"{what}: not a finite decimal")
    return amount


def _unwrap(payload: object, wrapper: str, what: str) -> Mapping[str, Any]:
    obj = _obj(payload, what)
    inner = obj.get(wrapper)
    if isinstance(inner, Mapping) and "id" not in obj:
        return inner
    return obj


# --- API users and keys ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiUser:
    """A Prime API user."""

    id: str
    name: str
    status: str
    roles: tuple[str, ...]

    @property
    def role(self) -> str | None:
        """The user's role (Prime gives exactly one), or None if the list is empty."""
        return self.roles[0] if self.roles else None

    @property
    def is_enabled(self) -> bool:
        """True when the user's keys may be used."""
        return self.status == UserStatus.ENABLED

    @classmethod
    def from_api(cls, payload: object) -> ApiUser:
        """Parse a user, bare (Create/Update) or wrapped in ``{"data": ...}`` (Get)."""
        obj = _unwrap(payload, "data", "user")
        return cls(
            id=_str(obj, "id", "user"),
            name=_str(obj, "name", "user"),
            status=_str(obj, "status", "user"),
            roles=_strings(obj, "roles", "user"),
        )


def api_users_from_api(payload: object) -> tuple[ApiUser, ...]:
    """Parse ListPrimeApiUsers' ``{"data": [...]}`` (or a bare list)."""
    items = payload.get("data") if isinstance(payload, Mapping) else payload
    return tuple(ApiUser.from_api(item) for item in _list(items, "users"))


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A Prime API user's key, without its secret."""

    id: str
    api_key: str
    user_id: str
    permissions: tuple[str, ...]
    whitelisted_ips: tuple[str, ...]
    updated_at: datetime | None = None

    @classmethod
    def _fields_from_api(cls, payload: object) -> dict[str, Any]:
        obj = _unwrap(payload, "data", "key")
        public = obj.get("api_key", obj.get("key"))
        if not isinstance(public, str):
            raise ValueError("key.api_key: expected a string (or key.key)")
        return {
            "id": _str(obj, "id", "key"),
            "api_key": public,
            "user_id": _str(obj, "user_id", "key"),
            "permissions": _strings(obj, "permissions", "key"),
            "whitelisted_ips": _strings(obj, "whitelisted_ips", "key"),
            "updated_at": _opt_ms(obj.get("updated_at")),
        }

    @classmethod
    def from_api(cls, payload: object) -> ApiKey:
        """Parse a key as listed (``key``) or updated (``api_key``); any secret is dropped."""
        return cls(**cls._fields_from_api(payload))


def api_keys_from_api(payload: object) -> tuple[ApiKey, ...]:
    """Parse ListPrimeApiUserKeys' ``{"data": [...]}`` (or a bare list)."""
    items = payload.get("data") if isinstance(payload, Mapping) else payload
    return tuple(ApiKey.from_api(item) for item in _list(items, "keys"))


@dataclass(frozen=True, slots=True)
class IssuedApiKey(ApiKey):
    """A key just created, carrying its secret (shown once; hidden from repr and str)."""

    api_secret: str = field(repr=False, kw_only=True)

    @classmethod
    def from_api(cls, payload: object) -> IssuedApiKey:
        """Parse CreatePrimeApiUserKey's result, which alone carries ``api_secret``."""
        fields = cls._fields_from_api(payload)
        secret = _obj(payload, "key").get("api_secret")
        if not isinstance(secret, str) or not secret:
            raise ValueError("key.api_secret: expected a string")
        return cls(**fields, api_secret=secret)

    def without_secret(self) -> ApiKey:
        """The same key as a plain ApiKey, safe to keep."""
        return ApiKey(
            id=self.id,
            api_key=self.api_key,
            user_id=self.user_id,
            permissions=self.permissions,
            whitelisted_ips=self.whitelisted_ips,
            updated_at=self.updated_at,
        )


# --- settlement ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transfer:
    """A settlement transfer started by SettlePrimeSettlementBatchAsset."""

    id: str
    status: str
    amount: Decimal | None
    asset: str | None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        """True once the transfer completed or failed."""
        return self.status in (TransferStatus.COMPLETED, TransferStatus.FAILED)

    @classmethod
    def from_api(cls, payload: object) -> Transfer:
        """Parse ``{id, attributes{transfer_*}}`` (Settle) or the flat leg transfer shape."""
        obj = _obj(payload, "transfer")
        attrs = obj.get("attributes")
        data = _obj(attrs, "transfer.attributes") if attrs is not None else obj
        transfer_id = obj.get("id")
        if isinstance(transfer_id, int) and not isinstance(transfer_id, bool):
            transfer_id = str(transfer_id)
        if not isinstance(transfer_id, str):
            raise ValueError("transfer.id: expected a string")
        status = data.get("transfer_status", data.get("status"))
        if not isinstance(status, str):
            raise ValueError("transfer.transfer_status: expected a string")
        amount = data.get("transfer_amount", data.get("amount"))
        asset = data.get("transfer_asset", data.get("asset"))
        if asset is not None and not isinstance(asset, str):
            raise ValueError("transfer.transfer_asset: expected a string")
        return cls(
            id=transfer_id,
            status=status,
            amount=None if amount is None else _decimal(amount, "transfer.transfer_amount"),
            asset=asset,
            created_at=_opt_ms(data.get("created_at")),
            updated_at=_opt_ms(data.get("updated_at")),
        )

    @classmethod
    def from_api_or_none(cls, payload: object) -> Transfer | None:
        """Parse a leg's ``latest_spot_transfer``, where ``{}`` or null means no transfer yet."""
        if payload is None or payload == {}:
            return None
        return cls.from_api(payload)


@dataclass(frozen=True, slots=True)
class Leg:
    """Net position for one asset within a settlement batch."""

    asset: str
    amount: Decimal
    direction: str | None
    status: str
    can_settle: bool
    settled_at: datetime | None = None
    latest_transfer: Transfer | None = None

    @property
    def is_settled(self) -> bool:
        """True once the leg's transfer completed."""
        return self.status == LegStatus.SETTLED

    @classmethod
    def from_api(cls, payload: object) -> Leg:
        """Parse a leg; ``latest_spot_transfer`` ``{}`` becomes None."""
        obj = _obj(payload, "leg")
        transfer = obj.get("latest_spot_transfer", obj.get("latest_transfer"))
        return cls(
            asset=_str(obj, "asset", "leg"),
            amount=_decimal(obj.get("amount"), "leg.amount"),
            direction=_opt_str(obj, "direction", "leg"),
            status=_str(obj, "status", "leg"),
            can_settle=_bool(obj, "can_settle", "leg", default=False),
            settled_at=_opt_ms(obj.get("settled_at")),
            latest_transfer=Transfer.from_api_or_none(transfer),
        )


@dataclass(frozen=True, slots=True)
class SettlementBatch:
    """A settlement batch with its legs."""

    id: str
    status: str
    confirmed: bool
    created_at: datetime
    updated_at: datetime | None
    trade_count: int
    asset_kind: str
    legs: tuple[Leg, ...]
    trade_ids: tuple[str, ...] = ()

    @property
    def is_final(self) -> bool:
        """True once the batch is completed; nothing about it changes after that."""
        return self.status == BatchStatus.COMPLETED

    @property
    def is_active(self) -> bool:
        """True while the batch blocks a new batch of its asset kind (not completed)."""
        return not self.is_final

    def leg(self, asset: str) -> Leg | None:
        """The leg for ``asset``, or None."""
        return next((leg for leg in self.legs if leg.asset == asset), None)

    @classmethod
    def from_api(cls, payload: object) -> SettlementBatch:
        """Parse a batch, bare or wrapped in ``{"batch": ...}``, attributes nested or flat."""
        obj = _unwrap(payload, "batch", "batch")
        attrs_raw = obj.get("attributes")
        attrs = _obj(attrs_raw, "batch.attributes") if attrs_raw is not None else obj
        trade_ids = _strings(obj, "trade_ids", "batch")
        return cls(
            id=_str(obj, "id", "batch"),
            status=_str(attrs, "status", "batch"),
            confirmed=_bool(attrs, "confirmed", "batch", default=False),
            created_at=from_ms(attrs.get("created_at")),
            updated_at=_opt_ms(attrs.get("updated_at")),
            trade_count=_int(attrs, "trade_count", "batch", default=len(trade_ids)),
            asset_kind=_opt_str(attrs, "asset_kind", "batch") or AssetKind.CURRENCY.value,
            legs=tuple(Leg.from_api(leg) for leg in _list(obj.get("legs", []), "batch.legs")),
            trade_ids=trade_ids,
        )


@dataclass(frozen=True, slots=True)
class SettleResult:
    """The transfer a settle call started, and the leg as Kraken saw it then."""

    transfer: Transfer
    leg: Leg | None

    @classmethod
    def from_api(cls, payload: object) -> SettleResult:
        """Parse ``{"transfer": {id, attributes, relationships{leg}}}`` (or the bare transfer)."""
        obj = _unwrap(payload, "transfer", "settle result")
        relationships = obj.get("relationships")
        leg = None
        if relationships is not None:
            leg_payload = _obj(relationships, "transfer.relationships").get("leg")
            if leg_payload:
                leg = Leg.from_api(leg_payload)
        return cls(transfer=Transfer.from_api(obj), leg=leg)


@dataclass(frozen=True, slots=True)
class BatchPage:
    """One page of ListPrimeSettlementBatches, newest first."""

    batches: tuple[SettlementBatch, ...]
    has_more: bool
    limit: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        """Offset of the next page, or None when this is the last one."""
        return self.offset + len(self.batches) if self.has_more else None

    @classmethod
    def from_api(cls, payload: object) -> BatchPage:
        """Parse ``{"data": [...], "pagination": {has_more, limit, offset}}``."""
        obj = _obj(payload, "batch page")
        batches = tuple(
            SettlementBatch.from_api(item) for item in _list(obj.get("data"), "batch page.data")
        )
        raw = obj.get("pagination")
        pagination = _obj(raw, "pagination") if raw is not None else {}
        return cls(
            batches=batches,
            has_more=_bool(pagination, "has_more", "pagination", default=False),
            limit=_int(pagination, "limit", "pagination", default=len(batches)),
            offset=_int(pagination, "offset", "pagination", default=0),
        )
