"""Workflows (graphs of model versions and operators) and the knowledge graph."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Workflow(models.Model):
    app = models.ForeignKey("applications.App", on_delete=models.CASCADE, related_name="workflows")
    public_id = models.CharField(max_length=128)
    description = models.CharField(max_length=512, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "public_id"], name="workflow_id_unique_per_app")
        ]

    def __str__(self) -> str:
        return f"{self.app}/{self.public_id}"


class WorkflowNode(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="nodes")
    node_id = models.CharField(max_length=128)
    position = models.PositiveIntegerField(default=0)
    # RESTRICT: deleting an app deletes its workflows and models together; a model version that
    # a workflow of ANOTHER app uses cannot be deleted (RestrictedError) until that workflow goes.
    model_version = models.ForeignKey(
        "inference.ModelVersion", on_delete=models.RESTRICT, related_name="workflow_nodes"
    )
    node_inputs = models.JSONField(default=list, blank=True)  # ids of upstream nodes
    suppress_output = models.BooleanField(default=False)
    output_info_override = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "node_id"], name="node_id_unique_per_workflow"
            )
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id}:{self.node_id}"


class WorkflowVersion(models.Model):
    """A snapshot of a workflow's graph, description and metadata: one per create and per patch
    that changes it. The newest is the current version (the one the workflow runs)."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    public_id = models.CharField(max_length=32)  # 32 hex characters
    # The nodes as they were: [{"id", "model": {"id", "user_id", "app_id", "model_version_id"},
    # "node_inputs": [...], "suppress_output", "output_info_override"}, ...]
    nodes = models.JSONField(default=list)
    description = models.CharField(max_length=512, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "public_id"], name="workflow_version_id_unique"
            )
        ]
        indexes = [models.Index(fields=["workflow", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.workflow}@{self.public_id}"


class Concept(models.Model):
    """A concept of an app (PostConcepts); the knowledge graph relates concepts by id."""

    app = models.ForeignKey("applications.App", on_delete=models.CASCADE, related_name="concepts")
    public_id = models.CharField(max_length=256)
    name = models.CharField(max_length=256, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "public_id"], name="concept_id_unique_per_app")
        ]

    def __str__(self) -> str:
        return f"{self.app}/{self.public_id}"


class Predicate(models.TextChoices):
    SYNONYM = "synonym"
    HYPERNYM = "hypernym"
    HYPONYM = "hyponym"


class ConceptRelation(models.Model):
    """`subject predicate object`, e.g. 'honey hyponym food' = honey is a kind of food."""

    app = models.ForeignKey(
        "applications.App", on_delete=models.CASCADE, related_name="concept_relations"
    )
    public_id = models.CharField(max_length=32)
    subject_concept_id = models.CharField(max_length=256)
    object_concept_id = models.CharField(max_length=256)
    # The app the object concept comes from, when it is another app's (e.g. builtin/main).
    object_app_id = models.CharField(max_length=128, blank=True)
    predicate = models.CharField(max_length=16, choices=Predicate.choices)
    knowledge_graph_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "public_id"], name="relation_id_unique_per_app"),
            models.UniqueConstraint(
                fields=[
                    "app",
                    "subject_concept_id",
                    "object_concept_id",
                    "predicate",
                    "knowledge_graph_id",
                ],
                name="relation_unique_per_app",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject_concept_id} {self.predicate} {self.object_concept_id}"
