"""What settlement says to a person, in one place (the services and the tests share these).

Fixed sentences are constants; sentences that carry values are format strings,
filled with ``.format(...)`` by the one service that says them.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# Decimal places shown per asset (its own precision). An asset not listed keeps every
# significant digit it has; every amount is shown with digit grouping.
ASSET_PRECISION: dict[str, int] = {
    "BTC": 8,
    "XBT": 8,
    "ETH": 8,  # 18 on chain; 8 are shown
    "SOL": 8,
    "LTC": 8,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "CAD": 2,
    "AUD": 2,
    "JPY": 0,
    "USDT": 2,
    "USDC": 2,
}


def amount_text(amount: Decimal | int | str, asset: str = "") -> str:
    """An amount as a person reads it: digit grouping, the asset's own precision.

    ``amount_text(Decimal("45000"), "USD")`` is ``45,000.00``; an asset without a
    listed precision (or none given) keeps every significant digit: ``1,234.5678``.
    """
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        return str(amount)
    if not value.is_finite():
        return str(value)
    places = ASSET_PRECISION.get(asset.upper()) if asset else None
    if places is not None:
        value = value.quantize(Decimal(1).scaleb(-places))
        return f"{value:,.{places}f}"
    text = f"{value:,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("", "-0"):
        return "0"
    return text


def what_text(direction: str, amount: Decimal | str, asset: str) -> str:
    """What a leg settles, in words: ``outgoing 45,000.00 USD``."""
    return f"{direction} {amount_text(amount, asset)} {asset}"


# --- refusals before anything is written ----------------------------------------------------

NEED_OPERATOR_TO_CREATE = "You need the Operator role to create a batch."
NEED_OPERATOR_TO_REQUEST = "You need the Operator role to request settlement."
OWN_INTENT = "You requested this settlement, so you cannot {verb} it; another Approver must."
REASON_REQUIRED = "Give a reason for the rejection."
BATCH_FINAL = "This batch is completed; there is nothing left to settle."
LEG_HAS_OPEN_INTENT = "This leg already has an open request ({state}). Deal with that one first."
LEG_HAS_OPEN_INTENT_RACE = "This leg already has an open request. Deal with that one first."
LEG_NOT_UNSETTLED = "Kraken shows this leg as {status}; it cannot be requested."
LEG_CANNOT_SETTLE = "Kraken says this leg cannot be settled now (can_settle is false)."

# --- what a leg request's notes say -------------------------------------------------------------

VOID = "Void: the request was for {what}; {found}. Request it again if it should still be settled."
VOID_LEG_GONE = "Kraken no longer lists this leg"
VOID_LEG_NOW = "Kraken now shows {direction} {amount} {asset}"
TRANSFER_STARTED = "Kraken started transfer {transfer_id}."
STALE_SUBMITTING = (
    "The portal stopped while sending this leg to Kraken, so the outcome is unknown. "
    "Nothing will be sent again until Kraken's records are checked."
)
RECONCILED_FOUND = "Kraken has transfer {transfer_id} ({status}) for this leg"
RECONCILED_RUNNING = (
    "Checked with Kraken: {found}. The settle went through; nothing was "
    "sent again. The transfer is running."
)
RECONCILE_WAITING = (
    "Checked with Kraken: no transfer for this leg yet. The call may still be on "
    "its way, so the portal will check again shortly; nothing will be sent meanwhile."
)
RECONCILED_NOT_SENT = (
    "Checked with Kraken: no transfer was started for this leg (leg {status}). "
    "The settle call did not go through; the leg can be requested again."
)

WAITS_FOR_CONFIRMATION = "Kraken confirms the batch"
WAITING_NOTE = "Approved, will be sent when Kraken confirms the batch."

# --- Kraken's refusal of a settle call ------------------------------------------------------

SETTLE_NOT_CONFIRMED = (
    "Kraken refused: the batch is not confirmed yet. Nothing was sent. Request the "
    "leg again once Kraken has confirmed the batch."
)
SETTLE_CANNOT_SETTLE = (
    "Kraken refused: this leg cannot be settled now (can_settle is false at Kraken). "
    "Nothing was sent. Request it again when Kraken allows it."
)
SETTLE_ALREADY = (
    "Kraken refused: this leg is already being settled or settled. Nothing new was "
    "sent; check with Kraken to see its transfer."
)
SETTLE_UNKNOWN_THING = "Kraken refused: it does not know this {thing}. Nothing was sent."
SETTLE_REQUEST_AGAIN = " The leg can be requested again."

# --- results of an action -------------------------------------------------------------------

REQUESTED_FOR_APPROVAL = (
    "Settlement of {what} requested. Another person with the Approver role must approve it."
)
INTENT_REJECTED = "Request to settle {asset} rejected."

# --- batches --------------------------------------------------------------------------------

CHECK_FAILED = "Could not check with Kraken: "
CHECKED = "Checked with Kraken: {changes} change(s), {reconciled} unknown outcome(s) resolved."
FIRST_SEEN = "First seen at Kraken (created outside the portal)."
ACTIVE_BATCH_EXISTS = (
    "Kraken already has an active {kind} batch{known}. "
    "Settle it first; a new batch can be made once it is completed."
)
NO_UNSETTLED_TRADES = (
    "Kraken has no unsettled {kind} trades to put in a batch. Nothing was created."
)
CREATE_UNANSWERED = (
    "Kraken did not answer in time, so the portal does not know whether the batch "
    "was made. The poller will pick it up if it was; check the list in a minute "
    "before trying again."
)
BATCH_CREATED = "Batch {batch_id} created with {trades} trades."
NEED_OPERATOR_OR_APPROVER = (
    "You need the Operator or Approver role for this. Ask an Admin if you need it."
)
NOTHING_TO_REQUEST = "No leg of this batch can be requested now."
CHOOSE_LEGS = "Choose the requests to approve."
REQUESTED_ONE = "Requested; another person with the Approver role must approve it."
