from django.db import migrations


def pass_intended_time(apps, schema_editor):
    from portal.worker.schedules import ensure_schedules

    ensure_schedules(apps.get_model("django_q", "Schedule"))


class Migration(migrations.Migration):
    """Schedules hand their jobs the intended run time; the ledger's slots come from it."""

    dependencies = [("worker", "0001_initial")]

    operations = [migrations.RunPython(pass_intended_time, migrations.RunPython.noop)]
