"""PostgreSQL only: the batch page's timeline read from an index alone.

The timeline (portal/settlement/page_sql.py) shows the newest events about a batch, its
legs and their requests: about a hundred rows scattered over as many table pages, which
PostgreSQL had to read one by one after finding them in `audit_target_idx`. This index
holds what the timeline shows beside the same key, so it answers from the index (the
table's visibility map is set: the trail is append-only).

Only events whose message fits (1,000 bytes): a B-tree entry must stay under ~2.7 kB, and
a longer message must never make an audit event fail to be written. The few longer ones
have an index of their own, and the timeline reads both.
"""

from django.db import migrations

# The limit is repeated in portal/settlement/page_sql.py (the query must state it, so that
# PostgreSQL sees these indexes apply).
INDEXES = """
CREATE INDEX IF NOT EXISTS audit_target_shown_idx
    ON audit_auditevent (target_type, target_id, seq DESC)
    INCLUDE (occurred_at, action, outcome, actor_label, message)
    WHERE octet_length(message) <= 1000;
CREATE INDEX IF NOT EXISTS audit_target_long_idx
    ON audit_auditevent (target_type, target_id, seq DESC)
    WHERE octet_length(message) > 1000;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INDEXES)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "DROP INDEX IF EXISTS audit_target_shown_idx; DROP INDEX IF EXISTS audit_target_long_idx;"
        )


class Migration(migrations.Migration):
    dependencies = [("audit", "0009_webhook_actions")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
