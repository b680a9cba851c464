"""Concepts (PostConcepts, ListConcepts, GetConcept, PatchConcepts) and concept relations, the
app's knowledge graph (PostConceptRelations, ListConceptRelations, DeleteConceptRelations).

Relations are PATAuth in the descriptors (dispatch refuses app keys). Only the app's owner may
read or change its concepts and knowledge graph: the app is resolved with `write=True`, so anybody
else gets 11101.
"""

from __future__ import annotations

from clarifai_grpc.grpc.api import resources_pb2, service_pb2
from clarifai_grpc.grpc.api.status import status_pb2

from collectors_module.api.dispatch import rpc
from collectors_module.core.errors import SC, ApiError, not_found
from collectors_module.core.pagination import page_bounds, paginate
from collectors_module.workflows import selectors, services

from .convert import ts

MAX_RELATIONS_PER_REQUEST = 128


def concept_to_pb(row, app) -> resources_pb2.Concept:
    pb = resources_pb2.Concept(
        id=row.public_id,
        name=row.name or row.public_id,
        value=1.0,
        app_id=app.public_id,
        user_id=app.owner.username,
    )
    pb.visibility.gettable = app.visibility
    ts(pb.created_at, row.created_at)
    return pb


@rpc("PostConcepts")
def post_concepts(ctx, req: service_pb2.PostConceptsRequest):
    app = ctx.app(write=True)
    rows = services.concepts_create(app=app, concept_pbs=list(req.concepts))
    return service_pb2.MultiConceptResponse(concepts=[concept_to_pb(r, app) for r in rows])


@rpc("ListConcepts")
def list_concepts(ctx, req: service_pb2.ListConceptsRequest):
    app = ctx.app(write=True)
    rows = paginate(selectors.concepts_of_app(app, search=req.id), req.page, req.per_page)
    return service_pb2.MultiConceptResponse(concepts=[concept_to_pb(r, app) for r in rows])


@rpc("GetConcept")
def get_concept(ctx, req: service_pb2.GetConceptRequest):
    app = ctx.app(write=True)
    row = selectors.concept_for_app(app, req.concept_id)
    return service_pb2.SingleConceptResponse(concept=concept_to_pb(row, app))


@rpc("PatchConcepts")
def patch_concepts(ctx, req: service_pb2.PatchConceptsRequest):
    app = ctx.app(write=True)
    rows = services.concepts_patch(app=app, concept_pbs=list(req.concepts), action=req.action)
    return service_pb2.MultiConceptResponse(concepts=[concept_to_pb(r, app) for r in rows])


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


@rpc("DeleteConceptRelations")
def delete_concept_relations(ctx, req: service_pb2.DeleteConceptRelationsRequest):
    """Delete relations of a concept by id, all or none (11101 names a missing one); without
    ids, every relation the concept takes part in."""
    app = ctx.app(write=True)
    if not req.concept_id:
        raise ApiError(SC.CONCEPTS_INVALID_REQUEST, "concept_id is required", field="concept_id")
    views = selectors.relations_of_app(app, concept_id=req.concept_id)
    mine = {v.id for v in views}
    wanted = list(dict.fromkeys(i for i in req.ids if i)) or sorted(mine)
    if len(wanted) > 1000:
        raise ApiError(SC.CONCEPTS_INVALID_REQUEST, "at most 1000 ids per request", field="ids")
    missing = [i for i in wanted if i not in mine]
    if missing:
        raise not_found("Concept relation", missing[0][:128])
    services.relations_delete(app=app, ids=wanted)
    return status_pb2.BaseResponse()
