"""Settlement intents move onto the approvals engine: each becomes a change request.

Every SettlementIntent is copied to an approvals ChangeRequest of kind
``settlement_leg`` on the same leg (``leg:<batch>:<asset>``), with its requester,
times, state and note, and the payload it was bound to; then the table is dropped.
The audit events written about intents stay on their legs' audit targets as they were.
"""

import hashlib
import json

from django.db import migrations

STATES = {
    "requested": "pending",
    "approved": "approved",
    # A send that was under way when the portal stopped: its outcome must be checked.
    "submitting": "outcome_unknown",
    "submitted": "done",
    "settled": "done",
    "rejected": "rejected",
    "expired": "expired",
    "voided": "voided",
    "failed": "failed",
    "outcome_unknown": "outcome_unknown",
}


def _amount(value):
    text = format(value.normalize(), "f")
    return text


def intents_to_changes(apps, schema_editor):
    Intent = apps.get_model("settlement", "SettlementIntent")
    ChangeRequest = apps.get_model("approvals", "ChangeRequest")
    Vote = apps.get_model("approvals", "Vote")
    for intent in Intent.objects.select_related("batch").order_by("pk"):
        payload = {
            "amount": _amount(intent.amount),
            "amount_exact": _amount(intent.amount),
            "asset": intent.asset,
            "batch": intent.batch.prime_batch_id,
            "direction": intent.direction,
            "prior_transfer_id": intent.prior_transfer_id,
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        state = STATES.get(intent.state, "failed")
        change = ChangeRequest.objects.create(
            kind="settlement_leg",
            target_type="leg",
            target_id=f"{intent.batch.prime_batch_id}:{intent.asset}",
            summary=f"Settle {intent.direction} {payload['amount']} {intent.asset} "
            f"(batch {intent.batch.prime_batch_id}; was intent #{intent.pk})",
            payload=text,
            payload_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            target_fingerprint={"direction": intent.direction, "amount": payload["amount"]},
            requested_by_id=intent.requested_by_id,
            state=state,
            quorum=1,
            created_at=intent.requested_at,
            expires_at=intent.expires_at,
            decided_at=intent.approved_at or intent.rejected_at or intent.finished_at,
            executed_at=intent.submitting_at,
            executed_by_id=intent.approved_by_id,
            result={"transfer_id": intent.transfer_id} if intent.transfer_id else None,
            result_message=intent.note,
            void_reason=intent.note if state == "voided" else "",
        )
        if intent.approved_by_id:
            Vote.objects.create(
                change=change,
                voter_id=intent.approved_by_id,
                decision="approve",
                step_up="none",
                voted_at=intent.approved_at or intent.requested_at,
            )
        if intent.rejected_by_id:
            Vote.objects.create(
                change=change,
                voter_id=intent.rejected_by_id,
                decision="reject",
                step_up="none",
                comment=intent.reject_reason,
                voted_at=intent.rejected_at or intent.requested_at,
            )


class Migration(migrations.Migration):
    dependencies = [
        ("settlement", "0002_rename_settlementrequest_settlementintent"),
        ("approvals", "0003_one_open_leg_request_claimed_at"),
    ]

    operations = [
        migrations.RunPython(intents_to_changes, migrations.RunPython.noop),
        migrations.DeleteModel(name="SettlementIntent"),
    ]
