"""The live fragment's version per batch, moved by triggers (issue 13).

`settlement_batchlive` holds one number per batch. Triggers give it a new value whenever
something the batch page's live fragment shows is written, by any writer: the batch row,
its legs, the change requests of kind `settlement_leg` on its legs and their votes, and
audit events about the batch, a leg or a change request (the timeline). Bulk `.update()`
calls and raw SQL are covered as well as model saves. A leg's audit id is
`<prime batch id>:<asset>`; the batch is the part before the last colon.

PostgreSQL: the batch's row here is created at once with the batch; every later change is
a constraint trigger `DEFERRABLE INITIALLY DEFERRED`, so the version row is locked only
while the writer commits, after every other lock that transaction takes (the batch, legs
and requests first, the audit chain head last: see portal/settlement/services/common.py).
A writer therefore never holds it while waiting for another lock, and two writers of one
batch cannot deadlock on it. Values come from one sequence, so a value is never given twice.

SQLite (development and tests) has no deferred triggers and needs none: one writer at a time.
"""

import django.db.models.deletion
from django.db import migrations, models

LEG_KIND = "settlement_leg"

POSTGRES_FORWARD = f"""
CREATE SEQUENCE settlement_live_seq;

INSERT INTO settlement_batchlive (batch_id, version)
SELECT id, nextval('settlement_live_seq') FROM settlement_batch;

-- The prime batch id in a leg's audit id: everything before the last colon.
CREATE FUNCTION settlement_live_leg_batch(leg_id text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT regexp_replace($1, ':[^:]*$', '') $$;

-- PL/pgSQL rather than SQL functions: their statements' plans are kept between calls.
CREATE FUNCTION settlement_live_touch(batch_pk bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE settlement_batchlive SET version = nextval('settlement_live_seq')
     WHERE batch_id = batch_pk;
END
$$;

CREATE FUNCTION settlement_live_touch_named(prime_id text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE settlement_batchlive SET version = nextval('settlement_live_seq')
     WHERE batch_id = (SELECT b.id FROM settlement_batch b WHERE b.prime_batch_id = prime_id);
END
$$;

CREATE FUNCTION settlement_live_on_batch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO settlement_batchlive (batch_id, version)
        VALUES (NEW.id, nextval('settlement_live_seq'))
        ON CONFLICT (batch_id) DO UPDATE SET version = EXCLUDED.version;
    ELSE
        PERFORM settlement_live_touch(NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION settlement_live_on_leg() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM settlement_live_touch(OLD.batch_id);
        RETURN NULL;
    END IF;
    PERFORM settlement_live_touch(NEW.batch_id);
    IF TG_OP = 'UPDATE' THEN
        IF OLD.batch_id <> NEW.batch_id THEN
            PERFORM settlement_live_touch(OLD.batch_id);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION settlement_live_on_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        IF NEW.kind = '{LEG_KIND}' THEN
            PERFORM settlement_live_touch_named(settlement_live_leg_batch(NEW.target_id));
        END IF;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        IF OLD.kind = '{LEG_KIND}' THEN
            PERFORM settlement_live_touch_named(settlement_live_leg_batch(OLD.target_id));
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION settlement_live_on_vote() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    voted_on bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        voted_on := OLD.change_id;
    ELSE
        voted_on := NEW.change_id;
    END IF;
    PERFORM settlement_live_touch_named(settlement_live_leg_batch(c.target_id))
       FROM approvals_changerequest c
      WHERE c.id = voted_on AND c.kind = '{LEG_KIND}';
    RETURN NULL;
END
$$;

CREATE FUNCTION settlement_live_on_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.target_type = 'batch' THEN
        PERFORM settlement_live_touch_named(NEW.target_id);
    ELSIF NEW.target_type = 'leg' THEN
        PERFORM settlement_live_touch_named(settlement_live_leg_batch(NEW.target_id));
    ELSIF NEW.target_type = 'change_request' AND NEW.target_id ~ '^[0-9]{{1,18}}$' THEN
        PERFORM settlement_live_touch_named(settlement_live_leg_batch(c.target_id))
           FROM approvals_changerequest c
          WHERE c.id = NEW.target_id::bigint AND c.kind = '{LEG_KIND}';
    END IF;
    RETURN NULL;
END
$$;

-- A new batch has its row at once (nobody else can hold it: the batch is new).
CREATE TRIGGER settlement_live_batch_insert
    AFTER INSERT ON settlement_batch
    FOR EACH ROW EXECUTE FUNCTION settlement_live_on_batch();

CREATE CONSTRAINT TRIGGER settlement_live_batch_update
    AFTER UPDATE ON settlement_batch DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION settlement_live_on_batch();

CREATE CONSTRAINT TRIGGER settlement_live_leg
    AFTER INSERT OR UPDATE OR DELETE ON settlement_leg DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION settlement_live_on_leg();

CREATE CONSTRAINT TRIGGER settlement_live_change
    AFTER INSERT OR UPDATE OR DELETE ON approvals_changerequest DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION settlement_live_on_change();

CREATE CONSTRAINT TRIGGER settlement_live_vote
    AFTER INSERT OR UPDATE OR DELETE ON approvals_vote DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION settlement_live_on_vote();

CREATE CONSTRAINT TRIGGER settlement_live_event
    AFTER INSERT ON audit_auditevent DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.target_type IN ('batch', 'leg', 'change_request'))
    EXECUTE FUNCTION settlement_live_on_event();
"""

POSTGRES_BACKWARD = """
DROP TRIGGER IF EXISTS settlement_live_event ON audit_auditevent;
DROP TRIGGER IF EXISTS settlement_live_vote ON approvals_vote;
DROP TRIGGER IF EXISTS settlement_live_change ON approvals_changerequest;
DROP TRIGGER IF EXISTS settlement_live_leg ON settlement_leg;
DROP TRIGGER IF EXISTS settlement_live_batch_update ON settlement_batch;
DROP TRIGGER IF EXISTS settlement_live_batch_insert ON settlement_batch;
DROP FUNCTION IF EXISTS settlement_live_on_event();
DROP FUNCTION IF EXISTS settlement_live_on_vote();
DROP FUNCTION IF EXISTS settlement_live_on_change();
DROP FUNCTION IF EXISTS settlement_live_on_leg();
DROP FUNCTION IF EXISTS settlement_live_on_batch();
DROP FUNCTION IF EXISTS settlement_live_touch_named(text);
DROP FUNCTION IF EXISTS settlement_live_touch(bigint);
DROP FUNCTION IF EXISTS settlement_live_leg_batch(text);
DROP SEQUENCE IF EXISTS settlement_live_seq;
"""


def _sqlite_leg_batch(leg_id: str) -> str:
    """SQL for the prime batch id in a leg's audit id (before the last colon), on SQLite."""
    # rtrim strips every character after the last colon (they are all in `leg_id`
    # with its colons removed); the colon itself goes with the final -1.
    return f"substr({leg_id}, 1, length(rtrim({leg_id}, replace({leg_id}, ':', ''))) - 1)"


_NEXT = "(SELECT COALESCE(MAX(version), 0) + 1 FROM settlement_batchlive)"


def _touch_named(names: str) -> str:
    return (
        f"UPDATE settlement_batchlive SET version = {_NEXT} WHERE batch_id IN "
        f"(SELECT id FROM settlement_batch WHERE prime_batch_id IN ({names}));"
    )


def _change_batch(change_id: str) -> str:
    return (
        f"SELECT {_sqlite_leg_batch('c.target_id')} FROM approvals_changerequest c "
        f"WHERE c.id = {change_id} AND c.kind = '{LEG_KIND}'"
    )


SQLITE_FORWARD = [
    "CREATE INDEX settlement_batchlive_version ON settlement_batchlive (version)",
    "INSERT INTO settlement_batchlive (batch_id, version) SELECT id, id FROM settlement_batch",
    f"""CREATE TRIGGER settlement_live_batch_insert AFTER INSERT ON settlement_batch BEGIN
        INSERT OR REPLACE INTO settlement_batchlive (batch_id, version) VALUES (NEW.id, {_NEXT});
    END""",
    f"""CREATE TRIGGER settlement_live_batch_update AFTER UPDATE ON settlement_batch BEGIN
        UPDATE settlement_batchlive SET version = {_NEXT} WHERE batch_id = NEW.id;
    END""",
    f"""CREATE TRIGGER settlement_live_leg_insert AFTER INSERT ON settlement_leg BEGIN
        UPDATE settlement_batchlive SET version = {_NEXT} WHERE batch_id = NEW.batch_id;
    END""",
    f"""CREATE TRIGGER settlement_live_leg_update AFTER UPDATE ON settlement_leg BEGIN
        UPDATE settlement_batchlive SET version = {_NEXT}
         WHERE batch_id IN (NEW.batch_id, OLD.batch_id);
    END""",
    f"""CREATE TRIGGER settlement_live_leg_delete AFTER DELETE ON settlement_leg BEGIN
        UPDATE settlement_batchlive SET version = {_NEXT} WHERE batch_id = OLD.batch_id;
    END""",
    f"""CREATE TRIGGER settlement_live_change_insert AFTER INSERT ON approvals_changerequest
    WHEN NEW.kind = '{LEG_KIND}' BEGIN
        {_touch_named(_sqlite_leg_batch("NEW.target_id"))}
    END""",
    f"""CREATE TRIGGER settlement_live_change_update AFTER UPDATE ON approvals_changerequest
    WHEN NEW.kind = '{LEG_KIND}' OR OLD.kind = '{LEG_KIND}' BEGIN
        {_touch_named(f"{_sqlite_leg_batch('NEW.target_id')}, {_sqlite_leg_batch('OLD.target_id')}")}
    END""",
    f"""CREATE TRIGGER settlement_live_change_delete AFTER DELETE ON approvals_changerequest
    WHEN OLD.kind = '{LEG_KIND}' BEGIN
        {_touch_named(_sqlite_leg_batch("OLD.target_id"))}
    END""",
    f"""CREATE TRIGGER settlement_live_vote_insert AFTER INSERT ON approvals_vote BEGIN
        {_touch_named(_change_batch("NEW.change_id"))}
    END""",
    f"""CREATE TRIGGER settlement_live_vote_update AFTER UPDATE ON approvals_vote BEGIN
        {_touch_named(_change_batch("NEW.change_id"))}
    END""",
    f"""CREATE TRIGGER settlement_live_vote_delete AFTER DELETE ON approvals_vote BEGIN
        {_touch_named(_change_batch("OLD.change_id"))}
    END""",
    f"""CREATE TRIGGER settlement_live_event AFTER INSERT ON audit_auditevent
    WHEN NEW.target_type IN ('batch', 'leg', 'change_request') BEGIN
        {
        _touch_named(
            "SELECT NEW.target_id WHERE NEW.target_type = 'batch' "
            f"UNION ALL SELECT {_sqlite_leg_batch('NEW.target_id')} "
            "WHERE NEW.target_type = 'leg' "
            f"UNION ALL {_change_batch('CAST(NEW.target_id AS INTEGER)')} "
            "AND NEW.target_type = 'change_request' AND CAST(c.id AS TEXT) = NEW.target_id"
        )
    }
    END""",
]

SQLITE_BACKWARD = [
    *(
        f"DROP TRIGGER IF EXISTS settlement_live_{name}"
        for name in (
            "event",
            "vote_delete",
            "vote_update",
            "vote_insert",
            "change_delete",
            "change_update",
            "change_insert",
            "leg_delete",
            "leg_update",
            "leg_insert",
            "batch_update",
            "batch_insert",
        )
    ),
    "DROP INDEX IF EXISTS settlement_batchlive_version",
]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(POSTGRES_FORWARD)
        elif vendor == "sqlite":
            for statement in SQLITE_FORWARD:
                cursor.execute(statement)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(POSTGRES_BACKWARD)
        elif vendor == "sqlite":
            for statement in SQLITE_BACKWARD:
                cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("settlement", "0003_intents_to_change_requests"),
        ("approvals", "0003_one_open_leg_request_claimed_at"),
        ("audit", "0008_change_reviewed_action"),
    ]

    operations = [
        migrations.CreateModel(
            name="BatchLive",
            fields=[
                (
                    "batch",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="settlement.batch",
                    ),
                ),
                ("version", models.BigIntegerField()),
            ],
        ),
        migrations.RunPython(forward, backward, elidable=False),
    ]
