"""The data migrations of this change on a database that already holds captured inputs and
workflows: collected outputs become annotation rows (the ids the runtime import would give), and
every workflow gets its current version."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from collectors_module.inputs.convert import collected_annotation_id

BEFORE = [
    ("inputs", "0001_initial"),
    ("workflows", "0002_node_model_version_restrict"),
    ("applications", "0001_initial"),
]


@pytest.mark.django_db(transaction=True)
def test_existing_collected_outputs_and_workflows_are_carried_over():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    try:
        User = old.get_model("accounts", "User")
        App = old.get_model("applications", "App")
        Input = old.get_model("inputs", "Input")
        Model = old.get_model("inference", "Model")
        Workflow = old.get_model("workflows", "Workflow")
        WorkflowNode = old.get_model("workflows", "WorkflowNode")
        owner = User.objects.create(username="legacy")
        app = App.objects.create(owner=owner, public_id="legacy-app")
        output = {
            "model_id": "sentiment",
            "model_version_id": "996e3c70d6372b1e7e3c10875ebd2b8b",
            "model_user_id": "builtin",
            "model_app_id": "main",
            "data": {"concepts": [{"id": "positive", "value": 0.9}]},
        }
        captured = Input.objects.create(app=app, public_id="cap", text="hi", annotations=[output])
        Input.objects.create(app=app, public_id="plain", text="x")
        sentiment = Model.objects.get(app__public_id="main", public_id="sentiment")
        workflow = Workflow.objects.create(app=app, public_id="wf", description="old")
        WorkflowNode.objects.create(
            workflow=workflow, node_id="n", model_version=sentiment.versions.get()
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)

    from collectors_module.inputs.models import Annotation, Input
    from collectors_module.workflows.models import WorkflowVersion

    (row,) = Annotation.objects.filter(app_id=app.pk)
    assert row.public_id == collected_annotation_id(captured.pk, 0)
    assert row.input_id == captured.pk
    assert row.model_version_id == output["model_version_id"]
    assert row.model_ref == {"user_id": "builtin", "app_id": "main", "id": "sentiment"}
    assert row.data["concepts"][0]["id"] == "positive"
    assert not Input.objects.filter(app_id=app.pk, annotations_pending=True).exists()
    (version,) = WorkflowVersion.objects.filter(workflow_id=workflow.pk)
    assert version.description == "old"
    assert version.nodes[0]["model"] == {
        "id": "sentiment",
        "user_id": "builtin",
        "app_id": "main",
        "model_version_id": "996e3c70d6372b1e7e3c10875ebd2b8b",
    }
