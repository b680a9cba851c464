"""Give every workflow that exists before versions were introduced its current version."""

import uuid

from django.db import migrations


def snapshot_existing(apps, schema_editor):
    Workflow = apps.get_model("workflows", "Workflow")
    WorkflowNode = apps.get_model("workflows", "WorkflowNode")
    WorkflowVersion = apps.get_model("workflows", "WorkflowVersion")
    for workflow in Workflow.objects.filter(versions__isnull=True).iterator():
        nodes = []
        for node in (
            WorkflowNode.objects.filter(workflow=workflow)
            .select_related("model_version__model__app__owner")
            .order_by("position", "pk")
        ):
            version = node.model_version
            model = version.model
            nodes.append(
                {
                    "id": node.node_id,
                    "model": {
                        "id": model.public_id,
                        "user_id": model.app.owner.username,
                        "app_id": model.app.public_id,
                        "model_version_id": version.public_id,
                    },
                    "node_inputs": list(node.node_inputs or []),
                    "suppress_output": node.suppress_output,
                    "output_info_override": node.output_info_override or {},
                }
            )
        WorkflowVersion.objects.create(
            workflow=workflow,
            public_id=uuid.uuid4().hex,
            nodes=nodes,
            description=workflow.description,
            metadata=workflow.metadata or {},
            created_at=workflow.modified_at,
        )


class Migration(migrations.Migration):
    dependencies = [("workflows", "0003_concept_workflowversion")]

    operations = [migrations.RunPython(snapshot_existing, migrations.RunPython.noop)]
