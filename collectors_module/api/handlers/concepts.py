"""Concept relations (the app's knowledge graph): PostConceptRelations, ListConceptRelations.

Both are PATAuth in the descriptors (dispatch refuses app keys). Only the app's owner may read or
change its knowledge graph: the app is resolved with `write=True`, so anybody else gets 11101.
"""

from __future__ import annotations

from clarifai_grpc.grpc.api import resources_pb2, service_pb2

from collectors_module.api.dispatch import rpc
from collectors_module.core.errors import SC, ApiError
from collectors_module.core.pagination import page_bounds
from collectors_module.workflows import selectors, services

MAX_RELATIONS_PER_REQUEST = 128


def relation_to_pb(view, app) -> resources_pb2.ConceptRelation:
    pb = resources_pb2.ConceptRelation(
        id=view.id, predicate=view.predicate, knowledge_graph_id=view.knowledge_graph_id
    )
    pb.subject_concept.id = view.subject
    pb.subject_concept.name = view.subject
    pb.subject_concept.app_id = app.public_id
    pb.subject_concept.user_id = app.owner.username
    pb.object_concept.id = view.object
    pb.object_concept.name = view.object
    pb.object_concept.app_id = view.object_app_id or app.public_id
    if not view.object_app_id:
        pb.object_concept.user_id = app.owner.username
    pb.visibility.gettable = resources_pb2.Visibility.PRIVATE
    return pb


@rpc("PostConceptRelations")
def post_concept_relations(ctx, req: service_pb2.PostConceptRelationsRequest):
    app = ctx.app(write=True)
    if not req.concept_relations:
        raise ApiError(
            SC.CONCEPTS_INVALID_REQUEST, "concept_relations must hold at least one relation"
        )
    if len(req.concept_relations) > MAX_RELATIONS_PER_REQUEST:
        raise ApiError(
            SC.CONCEPTS_INVALID_REQUEST,
            f"At most {MAX_RELATIONS_PER_REQUEST} concept relations per request",
        )
    relations = []
    for rel in req.concept_relations:
        subject = req.concept_id or rel.subject_concept.id
        if rel.subject_concept.id and req.concept_id and rel.subject_concept.id != req.concept_id:
            raise ApiError(
                SC.CONCEPTS_INVALID_REQUEST,
                f"subject_concept.id '{rel.subject_concept.id[:64]}' differs from the concept in the "
                f"path '{req.concept_id[:64]}'",
                field="subject_concept.id",
            )
        object_app = rel.object_concept.app_id
        if object_app == app.public_id:
            object_app = ""
        relations.append(
            {
                "subject": subject,
                "object": rel.object_concept.id,
                "predicate": rel.predicate,
                "knowledge_graph_id": rel.knowledge_graph_id,
                "object_app_id": object_app,
                "id": rel.id,
            }
        )
    rows = services.relations_create(app=app, relations=relations)
    views = [
        selectors.RelationView(
            id=r.public_id,
            subject=r.subject_concept_id,
            predicate=r.predicate,
            object=r.object_concept_id,
            knowledge_graph_id=r.knowledge_graph_id,
            object_app_id=r.object_app_id,
        )
        for r in rows
    ]
    return service_pb2.MultiConceptRelationResponse(
        concept_relations=[relation_to_pb(v, app) for v in views]
    )


@rpc("ListConceptRelations")
def list_concept_relations(ctx, req: service_pb2.ListConceptRelationsRequest):
    app = ctx.app(write=True)
    predicate = req.predicate.strip().lower()
    if predicate and predicate not in ("synonym", "hypernym", "hyponym"):
        raise ApiError(
            SC.CONCEPTS_INVALID_REQUEST,
            f"predicate must be synonym, hypernym or hyponym, got '{req.predicate[:40]}'",
            field="predicate",
        )
    views = selectors.relations_of_app(
        app,
        concept_id=req.concept_id or None,
        predicate=predicate or None,
        knowledge_graph_id=req.knowledge_graph_id or None,
    )
    offset, limit = page_bounds(req.page, req.per_page)
    return service_pb2.MultiConceptRelationResponse(
        concept_relations=[relation_to_pb(v, app) for v in views[offset : offset + limit]]
    )
