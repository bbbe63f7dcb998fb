"""PostgreSQL only: trigram indexes for the audit page's free-text search.

The search is `target_id ILIKE %q% OR actor_label ILIKE %q%`, which Django writes
as `UPPER(col::text) LIKE UPPER(%q%)`; these GIN indexes on exactly those
expressions let PostgreSQL answer it without reading the table. `pg_trgm` is a
trusted extension (PostgreSQL 13+), so a role with CREATE on the database may
install it; if it cannot be installed the migration carries on without these
indexes (search still works, only slower) and says so.
"""

import sys

from django.db import migrations, transaction

INDEXES = """
CREATE INDEX IF NOT EXISTS audit_target_id_trgm
    ON audit_auditevent USING gin ((UPPER(target_id::text)) gin_trgm_ops);
CREATE INDEX IF NOT EXISTS audit_actor_label_trgm
    ON audit_auditevent USING gin ((UPPER(actor_label::text)) gin_trgm_ops);
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception as exc:  # noqa: BLE001 - the indexes are an optimisation
        sys.stderr.write(f"audit: pg_trgm unavailable ({exc}); free-text search unindexed\n")
        return
    schema_editor.execute(INDEXES)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "DROP INDEX IF EXISTS audit_target_id_trgm; DROP INDEX IF EXISTS audit_actor_label_trgm;"
        )


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_append_only_triggers")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
