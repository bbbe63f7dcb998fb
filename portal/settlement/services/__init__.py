"""Settlement writes, by concern (re-exported here, so callers import `services` only).

- `mirror`   Kraken's batch state applied to the local mirror (voids changed leg requests)
- `batches`  create a batch at Kraken, refresh one from Kraken
- `legs`     leg requests on the approvals engine: request one or all, approve a
             selection, reject, send the ready ones, reconcile unknown outcomes

Four eyes and the exactly-once settle call are the approvals engine's, with the
leg kind registered in `portal.settlement.approvals`. Every Prime call goes
through `portal.connection.door`, with no database transaction open.
"""

from portal.settlement.approvals import describe_settle_refusal
from portal.settlement.messages import amount_text
from portal.settlement.services.batches import (
    ACTIVE_STATUSES,
    batch_create,
    batch_create_request,
    batch_refresh,
)
from portal.settlement.services.common import (
    CREATE_BATCH,
    GET_BATCH,
    LIST_BATCHES,
    SETTLE,
    ActiveBatchExistsError,
    ApplySummary,
    NotAllowedError,
    SettlementError,
    refuse,
)
from portal.settlement.services.legs import (
    LegOutcome,
    leg_reject,
    leg_request,
    legs_approve,
    legs_reconcile_unknown,
    legs_request_all,
    legs_send_ready,
    open_request,
    request_refusal,
)
from portal.settlement.services.mirror import batch_apply

__all__ = [
    "ACTIVE_STATUSES",
    "CREATE_BATCH",
    "GET_BATCH",
    "LIST_BATCHES",
    "SETTLE",
    "ActiveBatchExistsError",
    "ApplySummary",
    "LegOutcome",
    "NotAllowedError",
    "SettlementError",
    "amount_text",
    "batch_apply",
    "batch_create",
    "batch_create_request",
    "batch_refresh",
    "describe_settle_refusal",
    "leg_reject",
    "leg_request",
    "legs_approve",
    "legs_reconcile_unknown",
    "legs_request_all",
    "legs_send_ready",
    "open_request",
    "refuse",
    "request_refusal",
]
