"""Tenant-scoped reads of workflows and concept relations.

Callers pass an App they already resolved for the acting user (`ctx.app()`), so every query here
is scoped to that app; a workflow of another app is "does not exist" (11101).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import OuterRef, Prefetch, Q, QuerySet, Subquery

from collectors_module.core.errors import not_found
from collectors_module.core.ids import is_valid_id

from .models import Concept, ConceptRelation, Predicate, Workflow, WorkflowNode, WorkflowVersion

_NODES = Prefetch(
    "nodes",
    queryset=WorkflowNode.objects.select_related("model_version__model__app__owner").order_by(
        "position", "pk"
    ),
)


def _current_version(field: str) -> Subquery:
    return Subquery(
        WorkflowVersion.objects.filter(workflow=OuterRef("pk"))
        .order_by("-created_at", "-pk")
        .values(field)[:1]
    )


def _workflows() -> QuerySet:
    """Workflows with app, owner and nodes loaded, and their current version's id and time
    (`current_version_id`, `current_version_at`)."""
    return (
        Workflow.objects.select_related("app__owner")
        .prefetch_related(_NODES)
        .annotate(
            current_version_id=_current_version("public_id"),
            current_version_at=_current_version("created_at"),
        )
    )


def workflow_for_app(app, workflow_id: str) -> Workflow:
    """The workflow `workflow_id` of `app` with its nodes (and their models) loaded, else 11101."""
    if not is_valid_id(workflow_id):  # also keeps NUL characters away from PostgreSQL
        raise not_found("Workflow", workflow_id[:128])
    workflow = _workflows().filter(app=app, public_id=workflow_id).first()
    if workflow is None:
        raise not_found("Workflow", workflow_id)
    return workflow


def versions_of_workflow(workflow) -> QuerySet:
    """The workflow's versions, newest (the current one) first."""
    return WorkflowVersion.objects.filter(workflow=workflow).order_by("-created_at", "-pk")


def workflow_version_for(workflow, version_id: str) -> WorkflowVersion:
    """One version of the workflow by id, else 11101."""
    row = (
        versions_of_workflow(workflow).filter(public_id=version_id).first()
        if is_valid_id(version_id)
        else None
    )
    if row is None:
        raise not_found("Workflow version", f"{workflow.public_id}/{version_id[:64]}")
    return row


def workflow_by_pk(pk: int) -> Workflow | None:
    """For workers that hold a workflow pk (a collector's pre/post-queue workflow)."""
    return _workflows().filter(pk=pk).first()


def workflows_of_app(app, *, order: str = "-modified_at") -> QuerySet:
    return _workflows().filter(app=app).order_by(order, "pk")


def workflows_of_user(user, *, order: str = "-modified_at") -> QuerySet:
    """Workflows across the apps `user` owns (ListWorkflows without an app)."""
    return _workflows().filter(app__owner=user).order_by(order, "pk")


def workflows_using_model_version(model_version) -> QuerySet:
    return Workflow.objects.filter(nodes__model_version=model_version).distinct()


# --- concept relations ------------------------------------------------------------------------

INVERSE = {Predicate.HYPONYM: Predicate.HYPERNYM, Predicate.HYPERNYM: Predicate.HYPONYM}


@dataclass(frozen=True)
class RelationView:
    """A relation as seen from its subject. Inverse views ('food hypernym honey' for a stored
    'honey hyponym food') carry the stored row's id and `inverse=True`."""

    id: str
    subject: str
    predicate: str
    object: str
    knowledge_graph_id: str
    object_app_id: str = ""
    inverse: bool = False
    created_at: object = None


def _view(row: ConceptRelation, *, inverse: bool = False) -> RelationView:
    if not inverse:
        return RelationView(
            id=row.public_id,
            subject=row.subject_concept_id,
            predicate=row.predicate,
            object=row.object_concept_id,
            knowledge_graph_id=row.knowledge_graph_id,
            object_app_id=row.object_app_id,
            created_at=row.created_at,
        )
    return RelationView(
        id=row.public_id,
        subject=row.object_concept_id,
        predicate=INVERSE.get(row.predicate, row.predicate),
        object=row.subject_concept_id,
        knowledge_graph_id=row.knowledge_graph_id,
        inverse=True,
        created_at=row.created_at,
    )


def relations_of_app(
    app,
    concept_id: str | None = None,
    predicate: str | None = None,
    knowledge_graph_id: str | None = None,
) -> list[RelationView]:
    """Relations of `app`, oldest first. With `concept_id`, every relation that concept takes
    part in, seen from it (the inverse of hyponym/hypernym and both sides of a synonym appear);
    `predicate` and `knowledge_graph_id` then filter what is seen."""
    if any("\x00" in (v or "") for v in (concept_id, predicate, knowledge_graph_id)):
        return []
    qs = ConceptRelation.objects.filter(app=app)
    if knowledge_graph_id:
        qs = qs.filter(knowledge_graph_id=knowledge_graph_id)
    if not concept_id:
        if predicate:
            qs = qs.filter(predicate=predicate)
        return [_view(r) for r in qs.order_by("created_at", "pk")]
    rows = qs.filter(Q(subject_concept_id=concept_id) | Q(object_concept_id=concept_id))
    views = []
    for row in rows.order_by("created_at", "pk"):
        if row.subject_concept_id == concept_id:
            views.append(_view(row))
        if row.object_concept_id == concept_id and row.subject_concept_id != concept_id:
            views.append(_view(row, inverse=True))
    if predicate:
        views = [v for v in views if v.predicate == predicate]
    return views


def relation_tuples_of_app(
    app_id: int, knowledge_graph_id: str = ""
) -> list[tuple[str, str, str, str]]:
    """(subject, predicate, object, knowledge_graph_id) of an app's relations, for the mappers."""
    qs = ConceptRelation.objects.filter(app_id=app_id)
    if knowledge_graph_id:
        qs = qs.filter(knowledge_graph_id=knowledge_graph_id)
    return list(
        qs.order_by("created_at", "pk").values_list(
            "subject_concept_id", "predicate", "object_concept_id", "knowledge_graph_id"
        )
    )


def workflows_using_models_of_app(app) -> QuerySet:
    """Workflows of OTHER apps whose nodes use a model of `app`: they keep `app` (and those
    models) from being deleted (RestrictedError) until they are changed or deleted."""
    return (
        Workflow.objects.select_related("app__owner")
        .filter(nodes__model_version__model__app=app)
        .exclude(app=app)
        .distinct()
        .order_by("app_id", "public_id")
    )


# --- concepts -----------------------------------------------------------------------------------


def concepts_of_app(app, *, search: str = "") -> QuerySet:
    """The app's concepts by id; `search` keeps ids or names containing it."""
    qs = Concept.objects.filter(app=app)
    search = (search or "").replace("\x00", "").strip()
    if search:
        qs = qs.filter(Q(public_id__icontains=search) | Q(name__icontains=search))
    return qs.order_by("public_id", "pk")


def concept_for_app(app, concept_id: str) -> Concept:
    row = (
        Concept.objects.filter(app=app, public_id=concept_id).first()
        if concept_id and "\x00" not in concept_id
        else None
    )
    if row is None:
        raise not_found("Concept", concept_id[:128])
    return row
