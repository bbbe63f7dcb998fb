from django.db import migrations, models


def add_schedules(apps, schema_editor):
    from portal.worker.schedules import ensure_schedules

    ensure_schedules(apps.get_model("django_q", "Schedule"))


class Migration(migrations.Migration):
    initial = True

    dependencies = [("django_q", "0018_task_success_index")]

    operations = [
        migrations.CreateModel(
            name="JobRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("job", models.CharField(max_length=64)),
                ("slot", models.CharField(max_length=40)),
                ("worker", models.CharField(max_length=120)),
                ("started_at", models.DateTimeField()),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("result", models.CharField(blank=True, max_length=200)),
            ],
            options={
                "indexes": [models.Index(fields=["job", "-started_at"], name="worker_job_recent")],
                "constraints": [models.UniqueConstraint(fields=("job", "slot"), name="worker_job_once")],
            },
        ),
        migrations.CreateModel(
            name="PollBudget",
            fields=[
                ("name", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("tokens", models.FloatField()),
                ("refilled_at", models.FloatField(help_text="Unix time of the last refill.")),
            ],
        ),
        migrations.CreateModel(
            name="Leadership",
            fields=[
                ("role", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("holder", models.CharField(max_length=120)),
                ("since", models.DateTimeField()),
                ("last_cycle_at", models.DateTimeField(blank=True, null=True)),
                ("cycles", models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(add_schedules, migrations.RunPython.noop),
    ]
