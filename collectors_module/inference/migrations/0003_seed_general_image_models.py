"""Data migration: general-image-recognition, general-image-embedding and
general-english-image-caption in builtin/main, and the alias
clarifai/main/models/general-image-recognition (version aa7f35c01e0642fda5cf400f543e7c40)."""

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
    dependencies = [("inference", "0002_seed_builtin_models")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
