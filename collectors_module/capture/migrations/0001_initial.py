"""The Capture and CollectorCounter models move here from `collectors` (state only: the tables
keep their names and data)."""

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("collectors", "0002_revision_and_pre_queue_pending"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    state_operations = [
        migrations.CreateModel(
            name="Capture",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, primary_key=True, serialize=False)),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("accepted", "Accepted"),
                            ("processing", "Processing"),
                            ("retry", "Retry"),
                            ("ingested", "Ingested"),
                            ("filtered", "Filtered"),
                            ("failed", "Failed"),
                            ("expired", "Expired"),
                            ("dropped", "Dropped"),
                        ],
                        default="accepted",
                        max_length=16,
                    ),
                ),
                ("reason", models.CharField(blank=True, max_length=512)),
                ("status_code", models.IntegerField(default=0)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("lease_until", models.DateTimeField(blank=True, null=True)),
                ("next_attempt_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("request_id", models.CharField(max_length=64)),
                ("input_index", models.PositiveIntegerField(default=0)),
                ("input_data", models.JSONField(default=dict)),
                ("payload", models.BinaryField(blank=True, null=True)),
                ("outputs", models.JSONField(blank=True, default=list)),
                ("destination_input_id", models.CharField(blank=True, max_length=128)),
                ("filtered_by", models.CharField(blank=True, max_length=128)),
                ("pre_queue_pending", models.BooleanField(default=False)),
                (
                    "caller",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "collector",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="captures",
                        to="collectors.collector",
                    ),
                ),
            ],
            options={
                "db_table": "collectors_capture",
                "indexes": [
                    models.Index(
                        fields=["state", "next_attempt_at"], name="collectors__state_a8e1c3_idx"
                    ),
                    models.Index(
                        fields=["collector", "-created_at"], name="collectors__collect_11e38a_idx"
                    ),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("collector", "request_id", "input_index"),
                        name="one_capture_per_request_input",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="CollectorCounter",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("metric", models.CharField(max_length=48)),
                ("bucket", models.DateTimeField()),
                ("count", models.PositiveBigIntegerField(default=0)),
                (
                    "collector",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="counters",
                        to="collectors.collector",
                    ),
                ),
            ],
            options={
                "db_table": "collectors_collectorcounter",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("collector", "metric", "bucket"), name="one_counter_per_bucket"
                    )
                ],
            },
        ),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=state_operations),
    ]
