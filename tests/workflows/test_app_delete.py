"""Deleting apps that hold workflows, or models that workflows use."""

from __future__ import annotations

import pytest

from collectors_module.applications.services import app_delete
from collectors_module.core.errors import ApiError
from collectors_module.workflows import selectors, services
from collectors_module.workflows.models import Workflow, WorkflowNode

from .conftest import node


def test_app_with_workflows_on_its_own_models_can_be_deleted(alice, make_operator, workflow_pb):
    make_operator(alice.app, "s", "random-sample", {"keep_fraction": 1})
    services.workflow_create(app=alice.app, workflow_pb=workflow_pb("wf", [node("a", "s")]))
    app_delete(app=alice.app)
    assert not Workflow.objects.filter(public_id="wf").exists()
    assert not WorkflowNode.objects.exists()


def test_models_used_by_another_apps_workflow_keep_their_app(
    alice, make_operator, workflow_pb, make_app
):
    other = make_app(alice.user, "other")
    make_operator(other, "s", "random-sample", {"keep_fraction": 1})
    services.workflow_create(
        app=alice.app, workflow_pb=workflow_pb("wf", [node("a", "s", model={"app_id": "other"})])
    )
    assert [w.public_id for w in selectors.workflows_using_models_of_app(other)] == ["wf"]
    assert not selectors.workflows_using_models_of_app(alice.app).exists()
    with pytest.raises(ApiError, match="used by workflows"):
        app_delete(app=other)
    services.workflow_delete(app=alice.app, workflow_id="wf")
    app_delete(app=other)
