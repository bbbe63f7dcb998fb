"""One name for the intent: SettlementRequest becomes SettlementIntent.

A rename, not a recreation: the table (and its rows, constraint and index) is
renamed in place, and the reverse accessors become ``intents``.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("settlement", "0001_initial"),
    ]

    operations = [
        migrations.RenameModel(old_name="SettlementRequest", new_name="SettlementIntent"),
        migrations.AlterField(
            model_name="settlementintent",
            name="batch",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="intents",
                to="settlement.batch",
            ),
        ),
        migrations.AlterField(
            model_name="settlementintent",
            name="leg",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="intents",
                to="settlement.leg",
            ),
        ),
    ]
