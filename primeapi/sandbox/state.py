"""Sandbox domain: Prime API users, keys, trades, settlement batches and transfers.

Everything here is plain data plus the state machine of docs/prime-choices.md. It
knows nothing about HTTP; callers hold ``SandboxApp.lock`` around every use.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import string
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

ROLES = ("Trader", "Viewer")
USER_STATUSES = ("Enabled", "Disabled")
ASSET_KINDS = ("currency", "tokenized_equity")
BATCH_STATUSES = ("unsettled", "partially_settled", "settled", "completed")
TRADE_SIDES = ("buy", "sell")

# Key permissions follow the owner's role (prime-choices "Who may call what").
ROLE_PERMISSIONS: dict[str, list[str]] = {
    "Viewer": ["read::marketdata", "read::orders"],
    "Trader": ["read::marketdata", "read::orders", "write::orders"],
}

MAX_NAME_LENGTH = 64
MAX_WHITELISTED_IPS = 100
# The call log is part of the saved state; cap it so a long-running sandbox stays small.
CALL_LOG_LIMIT = 5000
FIRST_TRANSFER_ID = 100

_ALNUM = string.ascii_uppercase + string.digits


class KrakenError(Exception):
    """A Kraken-style error, answered as HTTP 200 ``{"error": [message]}``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def invalid(detail: str) -> KrakenError:
    """Return the ``EGeneral:Invalid arguments:<detail>`` error."""
    return KrakenError(f"EGeneral:Invalid arguments:{detail}")


def new_id(length: int = 13) -> str:
    """Random upper-case alphanumeric id (user and key ids use 13 characters)."""
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def new_public_key() -> str:
    """56 base64 characters, the length of a Spot public key."""
    return base64.b64encode(secrets.token_bytes(42)).decode("ascii")


def new_secret() -> str:
    """Base64 of 64 random bytes: a secret that signs requests at once."""
    return base64.b64encode(secrets.token_bytes(64)).decode("ascii")


def format_decimal(value: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros (``45000``, ``1.5``)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def parse_positive_decimal(value: Any, name: str) -> Decimal:
    """Parse a positive decimal given as a string or JSON number."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{name} must be a decimal string")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name} must be a decimal string") from None
    if not number.is_finite() or number <= 0:
        raise ValueError(f"{name} must be positive")
    return number


def normalise_ip_entry(entry: Any) -> str:
    """Normalise one allow-list entry: an address stays an address, a CIDR its network."""
    if not isinstance(entry, str) or not entry.strip():
        raise invalid("Invalid whitelisted_ips")
    text = entry.strip()
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=False))
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise invalid("Invalid whitelisted_ips") from None


def ip_allowed(peer: str, entries: list[str]) -> bool:
    """True if ``peer`` is inside the allow-list; an empty list means no restriction."""
    if not entries:
        return True
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; match them as IPv4 too.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        candidates.append(address.ipv4_mapped)
    for entry in entries:
        network = ipaddress.ip_network(entry, strict=False)
        if any(candidate in network for candidate in candidates):
            return True
    return False


@dataclass
class User:
    """A Prime API user."""

    id: str
    name: str
    status: str
    role: str
    created_at: int


@dataclass
class ApiKey:
    """An API key; ``user_id`` is None for the account's admin key."""

    id: str
    api_key: str
    # Kraken's side must keep the secret bytes to verify HMACs; never logged or rendered.
    secret: str
    user_id: str | None
    whitelisted_ips: list[str]
    created_at: int
    updated_at: int
    last_nonce: int | None = None


@dataclass
class Trade:
    """An executed trade waiting for (or captured by) a settlement batch."""

    id: str
    asset_kind: str
    base: str
    quote: str
    side: str
    volume: str
    price: str
    created_at: int
    batch_id: str | None = None

    def deltas(self) -> list[tuple[str, Decimal]]:
        """Signed account position changes: buy 1.5 BTC/USD @ 30000 → BTC +1.5, USD -45000."""
        volume = Decimal(self.volume)
        cost = volume * Decimal(self.price)
        sign = 1 if self.side == "buy" else -1
        return [(self.base, sign * volume), (self.quote, -sign * cost)]


@dataclass
class Leg:
    """Net position of one asset within a batch."""

    asset: str
    net: str
    can_settle: bool = True
    status: str = "unsettled"
    settled_at: int | None = None
    transfer_id: str | None = None


@dataclass
class Batch:
    """A settlement batch."""

    id: str
    seq: int
    asset_kind: str
    created_at: int
    updated_at: int
    confirmed: bool
    trade_ids: list[str]
    legs: list[Leg]

    def leg(self, asset: str) -> Leg | None:
        """The leg for ``asset``, if any."""
        return next((leg for leg in self.legs if leg.asset == asset), None)

    @property
    def status(self) -> str:
        """Batch status derived from its legs (prime-choices "Settlement")."""
        if not self.legs:
            # Trades that net to zero leave nothing to settle; the batch is closed at once.
            return "completed"
        if all(leg.status == "settled" for leg in self.legs):
            return "completed"
        started = [leg.status in ("settling", "settled") for leg in self.legs]
        if all(started):
            return "settled"
        if any(started):
            return "partially_settled"
        return "unsettled"

    @property
    def active(self) -> bool:
        """A batch is active until it is completed."""
        return self.status != "completed"


@dataclass
class Transfer:
    """A settlement transfer created by SettlePrimeSettlementBatchAsset."""

    id: str
    batch_id: str
    asset: str
    amount: str
    status: str
    created_at: int
    updated_at: int


@dataclass
class Settings:
    """Runtime knobs, set from the command line / constructor and the control API."""

    transfer_delay: float | None = None
    auto_confirm_after: float | None = None
    rate_limit: str = "off"
    lockout_threshold: int = 25
    lockout_window: float = 60.0
    lockout_duration: float = 900.0

    def as_dict(self) -> dict[str, Any]:
        """Settings as JSON."""
        return asdict(self)


@dataclass
class SandboxState:
    """The whole persisted state of one sandbox account."""

    admin_key_id: str = ""
    users: dict[str, User] = field(default_factory=dict)
    keys: dict[str, ApiKey] = field(default_factory=dict)
    trades: dict[str, Trade] = field(default_factory=dict)
    batches: dict[str, Batch] = field(default_factory=dict)
    transfers: dict[str, Transfer] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    call_seq: int = 0
    batch_seq: int = 0
    next_transfer_id: int = FIRST_TRANSFER_ID

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def fresh(cls, now: int) -> SandboxState:
        """A new account holding only its admin key."""
        state = cls()
        admin = ApiKey(
            id=new_id(),
            api_key=new_public_key(),
            secret=new_secret(),
            user_id=None,
            whitelisted_ips=[],
            created_at=now,
            updated_at=now,
        )
        state.keys[admin.id] = admin
        state.admin_key_id = admin.id
        return state

    def reset(self) -> None:
        """Forget everything except the admin key (whose nonce history stays, as on Kraken)."""
        admin = self.admin_key
        self.users.clear()
        self.keys = {admin.id: admin}
        self.trades.clear()
        self.batches.clear()
        self.transfers.clear()
        self.calls.clear()
        self.batch_seq = 0
        self.next_transfer_id = FIRST_TRANSFER_ID

    @property
    def admin_key(self) -> ApiKey:
        """The account's admin key."""
        return self.keys[self.admin_key_id]

    def to_dict(self) -> dict[str, Any]:
        """Serialisable form of the whole state, secrets included (for --state)."""
        return {
            "version": 1,
            "admin_key_id": self.admin_key_id,
            "users": [asdict(u) for u in self.users.values()],
            "keys": [asdict(k) for k in self.keys.values()],
            "trades": [asdict(t) for t in self.trades.values()],
            "batches": [asdict(b) for b in self.batches.values()],
            "transfers": [asdict(t) for t in self.transfers.values()],
            "calls": self.calls,
            "call_seq": self.call_seq,
            "batch_seq": self.batch_seq,
            "next_transfer_id": self.next_transfer_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SandboxState:
        """Rebuild a state saved by ``to_dict``."""
        if data.get("version") != 1:
            raise ValueError("unsupported sandbox state version")
        batches = {}
        for raw in data["batches"]:
            legs = [Leg(**leg) for leg in raw["legs"]]
            batch = Batch(**{**raw, "legs": legs})
            batches[batch.id] = batch
        state = cls(
            admin_key_id=data["admin_key_id"],
            users={u["id"]: User(**u) for u in data["users"]},
            keys={k["id"]: ApiKey(**k) for k in data["keys"]},
            trades={t["id"]: Trade(**t) for t in data["trades"]},
            batches=batches,
            transfers={t["id"]: Transfer(**t) for t in data["transfers"]},
            calls=list(data["calls"]),
            call_seq=data["call_seq"],
            batch_seq=data["batch_seq"],
            next_transfer_id=data["next_transfer_id"],
        )
        if state.admin_key_id not in state.keys:
            raise ValueError("sandbox state has no admin key")
        return state

    def tick(self, now: int, settings: Settings) -> bool:
        """Apply time-based transitions (auto-confirm, transfer completion); True if any."""
        changed = False
        if settings.auto_confirm_after is not None:
            delay = round(settings.auto_confirm_after * 1000)
            for batch in self.batches.values():
                if not batch.confirmed and batch.created_at + delay <= now:
                    self.confirm_batch(batch.id, batch.created_at + delay)
                    changed = True
        if settings.transfer_delay is not None:
            delay = round(settings.transfer_delay * 1000)
            for transfer in list(self.transfers.values()):
                if transfer.status == "pending" and transfer.created_at + delay <= now:
                    # Stamp the logical completion time, so reads are deterministic.
                    self.finish_transfer(transfer.id, "completed", transfer.created_at + delay)
                    changed = True
        return changed

    def log_call(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Append one entry to the call log, numbering it."""
        self.call_seq += 1
        entry = {"seq": self.call_seq, **entry}
        self.calls.append(entry)
        if len(self.calls) > CALL_LOG_LIMIT:
            del self.calls[: len(self.calls) - CALL_LOG_LIMIT]
        return entry

    # -------------------------------------------------------------- users, keys

    def key_by_public(self, api_key: str) -> ApiKey | None:
        """Find a key by its public ``api_key``."""
        return next((k for k in self.keys.values() if k.api_key == api_key), None)

    def owner(self, key: ApiKey) -> User | None:
        """The Prime API user owning ``key`` (None for the admin key)."""
        return self.users.get(key.user_id) if key.user_id else None

    def get_user(self, user_id: str) -> User:
        """A user by id, or ``Unknown user``."""
        user = self.users.get(user_id)
        if user is None:
            raise invalid("Unknown user")
        return user

    @staticmethod
    def clean_name(name: str) -> str:
        """Trim a display name and check 1-64 printable characters."""
        cleaned = name.strip()
        if not 1 <= len(cleaned) <= MAX_NAME_LENGTH or not cleaned.isprintable():
            raise invalid("Invalid name")
        return cleaned

    def create_user(self, name: str, role: str, now: int) -> User:
        """CreatePrimeApiUser."""
        user = User(
            id=self._unique_id(self.users),
            name=self.clean_name(name),
            status="Enabled",
            role=role,
            created_at=now,
        )
        self.users[user.id] = user
        return user

    def update_user(self, user_id: str, name: str | None, status: str | None) -> User:
        """UpdatePrimeApiUser: change name and/or status."""
        user = self.get_user(user_id)
        if name is not None:
            user.name = self.clean_name(name)
        if status is not None:
            user.status = status
        return user

    def set_role(self, user_id: str, role: str) -> User:
        """UpdatePrimeApiUserRoles: replace the role (key permissions follow)."""
        user = self.get_user(user_id)
        user.role = role
        return user

    def create_key(self, user_id: str, now: int) -> ApiKey:
        """CreatePrimeApiUserKey: a key with a fresh secret and an empty allow-list."""
        self.get_user(user_id)
        key = ApiKey(
            id=self._unique_id(self.keys),
            api_key=new_public_key(),
            secret=new_secret(),
            user_id=user_id,
            whitelisted_ips=[],
            created_at=now,
            updated_at=now,
        )
        self.keys[key.id] = key
        return key

    def user_keys(self, user_id: str) -> list[ApiKey]:
        """ListPrimeApiUserKeys: the user's keys in creation order."""
        self.get_user(user_id)
        return [k for k in self.keys.values() if k.user_id == user_id]

    def user_key(self, user_id: str, key_id: str) -> ApiKey:
        """One key of one user; a key of another user is ``Unknown key``."""
        self.get_user(user_id)
        key = self.keys.get(key_id)
        if key is None or key.user_id != user_id:
            raise invalid("Unknown key")
        return key

    def update_key(self, user_id: str, key_id: str, ips: list[str] | None, now: int) -> ApiKey:
        """UpdatePrimeApiUserKey: the list replaces the allow-list; omitted leaves it."""
        key = self.user_key(user_id, key_id)
        if ips is not None:
            if len(ips) > MAX_WHITELISTED_IPS:
                raise invalid("Too many whitelisted_ips")
            normalised = [normalise_ip_entry(entry) for entry in ips]
            key.whitelisted_ips = list(dict.fromkeys(normalised))
        key.updated_at = now
        return key

    def delete_key(self, user_id: str, key_id: str) -> None:
        """DeletePrimeApiUserKey: permanent; other keys are unaffected."""
        key = self.user_key(user_id, key_id)
        del self.keys[key.id]

    def permissions(self, key: ApiKey) -> list[str]:
        """Key permissions derived from the owner's current role."""
        owner = self.owner(key)
        return list(ROLE_PERMISSIONS[owner.role]) if owner else []

    # ---------------------------------------------------------------- trades

    def add_trade(self, trade: Trade) -> Trade:
        """Record a pending trade (control API / demo)."""
        if trade.id in self.trades:
            raise ValueError(f"duplicate trade id {trade.id}")
        self.trades[trade.id] = trade
        return trade

    def pending_trades(self, asset_kind: str) -> list[Trade]:
        """Unsettled trades not captured by any batch, oldest first."""
        pending = [
            t for t in self.trades.values() if t.batch_id is None and t.asset_kind == asset_kind
        ]
        return sorted(pending, key=lambda t: t.created_at)

    # ------------------------------------------------------------- settlement

    def create_batch(self, asset_kind: str, now: int) -> Batch:
        """CreatePrimeSettlementBatch: snapshot every pending trade of ``asset_kind``."""
        if any(b.active and b.asset_kind == asset_kind for b in self.batches.values()):
            raise invalid("Active batch exists")
        trades = self.pending_trades(asset_kind)
        if not trades:
            raise invalid("No unsettled trades")
        net: dict[str, Decimal] = defaultdict(Decimal)
        for trade in trades:
            for asset, delta in trade.deltas():
                net[asset] += delta
        legs = [Leg(asset=a, net=format_decimal(n)) for a, n in sorted(net.items()) if n != 0]
        self.batch_seq += 1
        batch = Batch(
            id=self._unique_id(self.batches, prefix="B_", length=8),
            seq=self.batch_seq,
            asset_kind=asset_kind,
            created_at=now,
            updated_at=now,
            confirmed=False,
            trade_ids=[t.id for t in trades],
            legs=legs,
        )
        for trade in trades:
            trade.batch_id = batch.id
        self.batches[batch.id] = batch
        return batch

    def get_batch(self, batch_id: str) -> Batch:
        """A batch by id, or ``Unknown batch``."""
        batch = self.batches.get(batch_id)
        if batch is None:
            raise invalid("Unknown batch")
        return batch

    def list_batches(
        self,
        *,
        statuses: list[str] | None,
        created_after: int | None,
        created_until: int | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Batch], bool]:
        """ListPrimeSettlementBatches: filtered, newest first; returns (page, has_more)."""
        selected = [
            b
            for b in self.batches.values()
            if (statuses is None or b.status in statuses)
            and (created_after is None or b.created_at > created_after)
            and (created_until is None or b.created_at <= created_until)
        ]
        selected.sort(key=lambda b: (b.created_at, b.seq), reverse=True)
        page = selected[offset : offset + limit]
        return page, offset + len(page) < len(selected)

    def settle(self, batch_id: str, asset: str, now: int) -> Transfer:
        """SettlePrimeSettlementBatchAsset: start a pending transfer for one leg."""
        batch = self.get_batch(batch_id)
        if not batch.confirmed:
            raise invalid("Batch not confirmed")
        leg = batch.leg(asset)
        if leg is None:
            raise invalid("Unknown asset")
        # Checked before can_settle: a settling leg has can_settle false, and the more
        # precise reason is that it is already being settled.
        if leg.status in ("settling", "settled"):
            raise invalid("Leg already settled")
        if not leg.can_settle:
            raise invalid("Leg cannot be settled")
        transfer = Transfer(
            id=str(self.next_transfer_id),
            batch_id=batch.id,
            asset=asset,
            amount=format_decimal(abs(Decimal(leg.net))),
            status="pending",
            created_at=now,
            updated_at=now,
        )
        self.next_transfer_id += 1
        self.transfers[transfer.id] = transfer
        leg.status = "settling"
        leg.can_settle = False
        leg.transfer_id = transfer.id
        batch.updated_at = now
        return transfer

    def confirm_batch(self, batch_id: str, now: int) -> Batch:
        """Kraken's confirmation (control API or auto-confirm)."""
        batch = self.get_batch(batch_id)
        if not batch.confirmed:
            batch.confirmed = True
            batch.updated_at = now
        return batch

    def set_can_settle(self, batch_id: str, asset: str, can_settle: bool, now: int) -> Leg:
        """Kraken's settle eligibility for a leg (control API)."""
        batch = self.get_batch(batch_id)
        leg = batch.leg(asset)
        if leg is None:
            raise invalid("Unknown asset")
        leg.can_settle = can_settle
        batch.updated_at = now
        return leg

    def finish_transfer(self, transfer_id: str, outcome: str, now: int) -> Transfer:
        """Move a pending transfer to ``completed`` or ``failed`` and update its leg."""
        transfer = self.transfers.get(transfer_id)
        if transfer is None:
            raise KeyError(transfer_id)
        if transfer.status != "pending":
            raise ValueError(f"transfer {transfer_id} is already {transfer.status}")
        transfer.status = outcome
        transfer.updated_at = now
        batch = self.batches[transfer.batch_id]
        leg = batch.leg(transfer.asset)
        if leg is not None and leg.transfer_id == transfer.id:
            if outcome == "completed":
                leg.status = "settled"
                leg.settled_at = now
            else:
                # A failed transfer makes the leg settleable again (prime-choices).
                leg.status = "unsettled"
                leg.can_settle = True
        batch.updated_at = now
        return transfer

    # --------------------------------------------------------------- rendering

    @staticmethod
    def user_json(user: User) -> dict[str, Any]:
        """User object (§6.1)."""
        return {"id": user.id, "name": user.name, "status": user.status, "roles": [user.role]}

    def key_created_json(self, key: ApiKey) -> dict[str, Any]:
        """CreatePrimeApiUserKey result: the only place the secret is ever shown."""
        return {
            "id": key.id,
            "api_key": key.api_key,
            "api_secret": key.secret,
            "user_id": key.user_id,
            "permissions": self.permissions(key),
            "whitelisted_ips": list(key.whitelisted_ips),
        }

    def key_updated_json(self, key: ApiKey) -> dict[str, Any]:
        """UpdatePrimeApiUserKey result (no secret)."""
        return {
            "id": key.id,
            "api_key": key.api_key,
            "user_id": key.user_id,
            "permissions": self.permissions(key),
            "whitelisted_ips": list(key.whitelisted_ips),
            "updated_at": key.updated_at,
        }

    def key_listed_json(self, key: ApiKey) -> dict[str, Any]:
        """ListPrimeApiUserKeys item: public key named ``key``, no secret."""
        return {
            "id": key.id,
            "key": key.api_key,
            "user_id": key.user_id,
            "updated_at": key.updated_at,
            "permissions": self.permissions(key),
            "whitelisted_ips": list(key.whitelisted_ips),
        }

    def leg_json(self, leg: Leg) -> dict[str, Any]:
        """Leg object; ``settled_at`` is present only once the leg is settled."""
        net = Decimal(leg.net)
        rendered: dict[str, Any] = {
            "status": leg.status,
            "asset": leg.asset,
            "amount": format_decimal(abs(net)),
            "direction": "incoming" if net > 0 else "outgoing",
            "can_settle": leg.can_settle,
        }
        if leg.settled_at is not None:
            rendered["settled_at"] = leg.settled_at
        transfer = self.transfers.get(leg.transfer_id) if leg.transfer_id else None
        rendered["latest_spot_transfer"] = (
            {
                "id": transfer.id,
                "transfer_status": transfer.status,
                "transfer_amount": transfer.amount,
                "transfer_asset": transfer.asset,
                "created_at": transfer.created_at,
                "updated_at": transfer.updated_at,
            }
            if transfer
            else {}
        )
        return rendered

    def batch_json(self, batch: Batch, *, with_trade_ids: bool = True) -> dict[str, Any]:
        """Batch object (§6.3); list items omit ``trade_ids``."""
        rendered: dict[str, Any] = {
            "id": batch.id,
            "attributes": {
                "status": batch.status,
                "confirmed": batch.confirmed,
                "created_at": batch.created_at,
                "updated_at": batch.updated_at,
                "trade_count": len(batch.trade_ids),
                "asset_kind": batch.asset_kind,
            },
            "legs": [self.leg_json(leg) for leg in batch.legs],
        }
        if with_trade_ids:
            rendered["trade_ids"] = list(batch.trade_ids)
        return rendered

    def transfer_json(self, transfer: Transfer) -> dict[str, Any]:
        """SettlePrimeSettlementBatchAsset ``transfer`` object."""
        batch = self.batches[transfer.batch_id]
        leg = batch.leg(transfer.asset)
        return {
            "id": transfer.id,
            "attributes": {
                "transfer_status": transfer.status,
                "transfer_amount": transfer.amount,
                "transfer_asset": transfer.asset,
            },
            "relationships": {"leg": self.leg_json(leg) if leg else {}},
        }

    @staticmethod
    def trade_json(trade: Trade) -> dict[str, Any]:
        """Trade as shown by the control API."""
        return asdict(trade)

    @staticmethod
    def control_transfer_json(transfer: Transfer) -> dict[str, Any]:
        """Transfer as shown by the control API."""
        return asdict(transfer)

    # ----------------------------------------------------------------- helpers

    @staticmethod
    def _unique_id(existing: dict[str, Any], *, prefix: str = "", length: int = 13) -> str:
        while True:
            candidate = prefix + new_id(length)
            if candidate not in existing:
                return candidate


def new_trade_id() -> str:
    """Trade ids are UUIDs, as in the docs' ``trade_ids`` examples."""
    return str(uuid.uuid4())
