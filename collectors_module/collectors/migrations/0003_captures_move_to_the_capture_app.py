"""Capture and CollectorCounter now belong to the capture engine's app (state only)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("collectors", "0002_revision_and_pre_queue_pending"),
        ("capture", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Capture"),
                migrations.DeleteModel(name="CollectorCounter"),
            ]
        ),
    ]
