# The indexes retention reads (capture/retention.py). On PostgreSQL they are built with
# CREATE INDEX CONCURRENTLY, so a deployment with a large capture table keeps writing captures
# while the migration runs (a plain CREATE INDEX would block every INSERT until it ends);
# elsewhere (SQLite, the quick start) a plain CREATE INDEX.

from django.conf import settings
from django.db import migrations, models


class AddIndexOnline(migrations.AddIndex):
    """AddIndex, built concurrently on PostgreSQL (the migration is not atomic for that)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, concurrently=True)
        return None

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)
        return None


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("capture", "0002_capture_input_pb_output_pb"),
        ("collectors", "0004_deactivated_at_discarded_before"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexOnline(
            model_name="capture",
            index=models.Index(
                condition=models.Q(
                    ("state__in", ["ingested", "filtered", "failed", "expired", "dropped"])
                ),
                fields=["finished_at"],
                name="capture_terminal_finished_idx",
            ),
        ),
        AddIndexOnline(
            model_name="collectorcounter",
            index=models.Index(fields=["bucket"], name="collectorcounter_bucket_idx"),
        ),
    ]
