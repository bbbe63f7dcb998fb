"""Sessions move to the portal's own table (`staff_session`, PortalSession): Django's
columns plus the person and two-factor device copied from each session's data. Sessions
still open are copied over, so nobody is signed out by the upgrade."""

from django.db import migrations, models
from django.utils import timezone

# As django-otp names a TOTP device in a session ("otp_totp.totpdevice/<pk>").
_DEVICE_LABEL = "otp_totp.totpdevice"


def _int(value):
    return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else None


def _device(value):
    if not isinstance(value, str) or "/" not in value:
        return None
    label, _, pk = value.rpartition("/")
    return _int(pk) if label.lower() == _DEVICE_LABEL else None


def copy_open_sessions(apps, schema_editor):
    from django.contrib.sessions.backends.db import SessionStore

    try:
        old = apps.get_model("sessions", "Session")
    except LookupError:  # django.contrib.sessions not migrated: nothing to copy
        return
    new = apps.get_model("staff", "PortalSession")
    decode = SessionStore().decode
    rows = []
    for session in old.objects.filter(expire_date__gt=timezone.now()).iterator():
        data = decode(session.session_data)
        rows.append(
            new(
                session_key=session.session_key,
                session_data=session.session_data,
                expire_date=session.expire_date,
                staff_id=_int(data.get("_auth_user_id")),
                otp_device_id=_device(data.get("otp_device_id")),
            )
        )
    new.objects.bulk_create(rows, batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("staff", "0002_portalsecurity"),
        ("sessions", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="PortalSession",
            fields=[
                (
                    "session_key",
                    models.CharField(
                        max_length=40, primary_key=True, serialize=False, verbose_name="session key"
                    ),
                ),
                ("session_data", models.TextField(verbose_name="session data")),
                ("expire_date", models.DateTimeField(db_index=True, verbose_name="expire date")),
                ("staff_id", models.BigIntegerField(blank=True, db_index=True, null=True)),
                ("otp_device_id", models.BigIntegerField(blank=True, null=True)),
            ],
            options={"verbose_name": "session", "db_table": "staff_session"},
        ),
        migrations.RunPython(copy_open_sessions, migrations.RunPython.noop),
    ]
