"""Data migration: the system user `builtin`, its public app `main` and the built-in models."""

from django.db import migrations


def seed(apps, schema_editor):
    from collectors_module.inference.seed import seed_builtin_models

    seed_builtin_models(
        apps.get_model("accounts", "User"),
        apps.get_model("applications", "App"),
        apps.get_model("inference", "Model"),
        apps.get_model("inference", "ModelVersion"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("applications", "0001_initial"),
        ("inference", "0001_initial"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
