"""Seed the module catalogue with the Collectors module."""

from django.db import migrations

COLLECTOR_SCOPES = [
    # What PostInputs depends on (the collector posts inputs to the app with its key).
    "Apps:Get",
    "Annotations:Add",
    "Annotations:Get",
    "Concepts:Get",
    "Inputs:Add",
    "Inputs:Get",
    "Models:Get",
    "Predict",
    "Workflows:Get",
    # What the module pages do: manage collectors, list keys for the picker.
    "Collectors:Add",
    "Collectors:Get",
    "Collectors:Delete",
    "Keys:Get",
]

DESCRIPTION = (
    "Capture the inputs that a chosen caller sends to a chosen model version for prediction, "
    "sample and filter them with a pre-queue workflow, enrich them with a post-queue workflow, "
    "and add them as inputs to this app. Pages: create a collector, Show All (status, counters, "
    "deactivate, reactivate, delete, update)."
)


def seed(apps, schema_editor):
    Module = apps.get_model("modules", "Module")
    Module.objects.update_or_create(
        slug="collector",
        defaults={
            "title": "Collectors",
            "description": DESCRIPTION,
            "required_scopes": COLLECTOR_SCOPES,
            "version": "1.0.0",
        },
    )


def unseed(apps, schema_editor):
    apps.get_model("modules", "Module").objects.filter(slug="collector").delete()


class Migration(migrations.Migration):
    dependencies = [("modules", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
