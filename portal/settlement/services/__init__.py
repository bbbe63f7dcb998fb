"""Settlement writes, by concern (re-exported here, so callers import `services` only).

- `mirror`     Kraken's batch state applied to the local mirror; reconciliation
- `batches`    create a batch at Kraken, refresh one from Kraken
- `four_eyes`  request an intent, approve or reject it, expire stale ones
- `send`       the exactly-once settle call and what came back

Every Prime call goes through `portal.connection.door`, with no database
transaction open; the mirror and the audit event of one outcome are written
together in one `transaction.atomic()`.
"""

from portal.settlement.messages import amount_text
from portal.settlement.services.batches import ACTIVE_STATUSES, batch_create, batch_refresh
from portal.settlement.services.common import (
    CREATE_BATCH,
    GET_BATCH,
    LIST_BATCHES,
    SETTLE,
    ActionResult,
    ActiveBatchExistsError,
    ApplySummary,
    NotAllowedError,
    SettlementError,
)
from portal.settlement.services.four_eyes import (
    intent_approve,
    intent_reject,
    intent_request,
    intents_expire_stale,
)
from portal.settlement.services.mirror import batch_apply
from portal.settlement.services.send import (
    describe_settle_refusal,
    intent_send,
    intents_send_left_behind,
)

__all__ = [
    "ACTIVE_STATUSES",
    "CREATE_BATCH",
    "GET_BATCH",
    "LIST_BATCHES",
    "SETTLE",
    "ActionResult",
    "ActiveBatchExistsError",
    "ApplySummary",
    "NotAllowedError",
    "SettlementError",
    "amount_text",
    "batch_apply",
    "batch_create",
    "batch_refresh",
    "describe_settle_refusal",
    "intent_approve",
    "intent_reject",
    "intent_request",
    "intent_send",
    "intents_expire_stale",
    "intents_send_left_behind",
]
