"""Turn the collected outputs already stored with inputs into Annotation rows (the same rows,
with the same ids, that `inputs.services.annotations_import_pending` would create later)."""

from django.db import migrations

from collectors_module.inputs.convert import collected_annotations


def import_existing(apps, schema_editor):
    Input = apps.get_model("inputs", "Input")
    Annotation = apps.get_model("inputs", "Annotation")
    Input.objects.filter(annotations_pending=True, annotations=[]).update(annotations_pending=False)
    while True:
        rows = list(
            Input.objects.filter(annotations_pending=True)
            .only("pk", "app_id", "annotations")
            .order_by("pk")[:500]
        )
        if not rows:
            return
        Annotation.objects.bulk_create(
            [
                Annotation(app_id=row.app_id, input_id=row.pk, **fields)
                for row in rows
                for fields in collected_annotations(row.annotations, row.pk)
            ],
            ignore_conflicts=True,
        )
        Input.objects.filter(pk__in=[r.pk for r in rows]).update(annotations_pending=False)


class Migration(migrations.Migration):
    dependencies = [("inputs", "0002_annotation_input_annotations_pending_and_more")]

    operations = [migrations.RunPython(import_existing, migrations.RunPython.noop)]
