"""Writers for workflows and concept relations (the only code that changes them).

A workflow graph is checked before anything is written: 1 to WORKFLOW_MAX_NODES nodes, unique
well-formed node ids, `node_inputs` naming other nodes of the workflow, no cycle, every model
version existing and visible to the app's owner (their own models, or public ones such as
builtin/main), models able to run (a runner, or an operator type with valid parameters).
A failure is `ApiError(WORKFLOW_INVALID_GRAPH, details, field=<node id>)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clarifai_grpc.grpc.api import resources_pb2
from django.db import IntegrityError, transaction
from django.db.models import Q
from google.protobuf import json_format

from collectors_module.core.errors import SC, ApiError, not_found
from collectors_module.core.ids import is_valid_id, new_hex_id, validate_id
from collectors_module.core.patching import (
    apply_to_dict,
    check_fields,
    check_metadata,
    patch_action,
)
from collectors_module.core.protojson import from_dict
from collectors_module.inference import selectors as models
from collectors_module.inference.models import Model
from collectors_module.inference.runners.builtin import BUILTIN_APP_ID, BUILTIN_USER_ID, CATALOG
from collectors_module.inference.runners.registry import is_runnable
from collectors_module.inference.services import model_create, models_delete

from . import conf, executor
from .models import Concept, ConceptRelation, Predicate, Workflow, WorkflowNode, WorkflowVersion
from .operators import registry
from .recipes import DEFAULT_SOURCE_MODEL, get_recipe
from .selectors import workflow_for_app

MAX_DESCRIPTION = 512
MAX_CONCEPT_ID = 256


def _graph_error(details: str, node_id: str = "") -> ApiError:
    return ApiError(SC.WORKFLOW_INVALID_GRAPH, details, field=node_id or "nodes")


@dataclass
class NodeSpec:
    """A validated node, ready to be stored."""

    node_id: str
    model_version: Any
    node_inputs: list[str]
    suppress_output: bool
    output_info_override: dict


def has_nul(value: Any) -> bool:
    """True when a JSON value holds a NUL character (PostgreSQL text and jsonb refuse it)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def _override_dict(node_pb: resources_pb2.WorkflowNode) -> dict:
    if not node_pb.HasField("output_info_override"):
        return {}
    info = json_format.MessageToDict(node_pb.output_info_override, preserving_proto_field_name=True)
    override = {k: info[k] for k in ("data", "params") if k in info}
    if has_nul(override):
        raise _graph_error(
            f"Node '{node_pb.id}': output_info_override holds a NUL character", node_pb.id
        )
    return override


def _resolve_model_version(app, node_id: str, model_pb: resources_pb2.Model):
    """The version a node names, as the app's owner may see it; else WORKFLOW_INVALID_GRAPH."""

    model_id, version_id = model_pb.id, model_pb.model_version.id
    if not model_id:
        raise _graph_error(f"Node '{node_id}' needs model.id", node_id)
    for value in (model_id, version_id, model_pb.user_id, model_pb.app_id):
        if value and not is_valid_id(value):
            raise _graph_error(
                f"Node '{node_id}': model {model_id[:64]!r} does not exist or is not visible "
                "to the app's owner",
                node_id,
            )
    owner = app.owner
    where = ""
    try:
        if model_pb.user_id or model_pb.app_id:
            user_id = model_pb.user_id or owner.username
            app_id = model_pb.app_id or app.public_id
            where = f" in app '{user_id}/{app_id}'"
            return models.model_version_for_user(
                owner,
                owner_user_id=user_id,
                app_id=app_id,
                model_id=model_id,
                version_id=version_id,
            )
        try:
            return models.model_version_for_user(
                owner,
                owner_user_id=owner.username,
                app_id=app.public_id,
                model_id=model_id,
                version_id=version_id,
            )
        except ApiError as exc:
            if exc.code != SC.CONN_DOES_NOT_EXIST:
                raise
            # Like Clarifai's own public models, built-in models may be named by id alone.
            return models.builtin_model_version(owner, model_id=model_id, version_id=version_id)
    except ApiError as exc:
        what = f"model '{model_id}'" + (f" version '{version_id}'" if version_id else "")
        raise _graph_error(
            f"Node '{node_id}': {what}{where} does not exist or is not visible to the app's owner",
            node_id,
        ) from exc


def _check_runnable(node_id: str, model_version, override: dict) -> None:

    if executor.is_operator_version(model_version):
        type_id = executor.operator_type_of(model_version)
        if type_id not in registry.SUPPORTED:
            raise _graph_error(f"Node '{node_id}': unknown operator type '{type_id}'", node_id)
        params, concepts = executor.effective_config(model_version, override)
        try:
            registry.compile_operator(type_id, params, concepts, ())
        except ApiError as exc:
            raise _graph_error(f"Node '{node_id}': {exc.details}", node_id) from exc
        return
    if not is_runnable(model_version.runner):
        raise _graph_error(
            f"Node '{node_id}': model '{model_version.model.public_id}' has no runner, so it "
            "cannot run in a workflow",
            node_id,
        )


def validate_graph(*, app, nodes: list[resources_pb2.WorkflowNode]) -> list[NodeSpec]:
    """Check a workflow's nodes (see the module docstring); returns them resolved, in order."""
    limit = conf.max_nodes()
    if not nodes:
        raise _graph_error("A workflow needs at least one node")
    if len(nodes) > limit:
        raise _graph_error(f"A workflow may have at most {limit} nodes, this one has {len(nodes)}")
    ids: list[str] = []
    for position, node in enumerate(nodes):
        node_id = node.id
        if not node_id:
            raise _graph_error(f"Node #{position + 1} needs an id", f"nodes[{position}]")
        if not is_valid_id(node_id):
            raise _graph_error(
                f"Node id '{node_id[:64]}' is invalid: use letters, digits, '_', '-' or '.'",
                node_id[:128],
            )
        if node_id in ids:
            raise _graph_error(f"Node id '{node_id}' is used twice", node_id)
        ids.append(node_id)
    parents: dict[str, list[str]] = {}
    for node in nodes:
        seen: list[str] = []
        for node_input in node.node_inputs:
            ref = node_input.node_id
            if ref == node.id:
                raise _graph_error(f"Node '{node.id}' cannot take its own output as input", node.id)
            if ref not in ids:
                raise _graph_error(
                    f"Node '{node.id}' takes input from '{ref[:64]}', which is not a node of "
                    "this workflow",
                    node.id,
                )
            if ref not in seen:
                seen.append(ref)
        parents[node.id] = seen
    try:
        executor.topological_order(ids, parents)
    except ValueError as exc:
        raise _graph_error(
            f"The workflow graph has a cycle through node '{exc.args[0]}'", exc.args[0]
        ) from None
    specs = []
    for node in nodes:
        override = _override_dict(node)
        version = _resolve_model_version(app, node.id, node.model)
        _check_runnable(node.id, version, override)
        specs.append(
            NodeSpec(
                node_id=node.id,
                model_version=version,
                node_inputs=parents[node.id],
                suppress_output=node.suppress_output,
                output_info_override=override,
            )
        )
    return specs


def _fields(workflow_pb: resources_pb2.Workflow) -> tuple[str, dict]:
    description = workflow_pb.description
    if len(description) > MAX_DESCRIPTION:
        raise ApiError(
            SC.WORKFLOW_INVALID_ARGUMENT,
            f"description may be at most {MAX_DESCRIPTION} characters",
            field="description",
        )
    if "\x00" in description:
        raise ApiError(
            SC.WORKFLOW_INVALID_ARGUMENT, "description holds a NUL character", field="description"
        )
    metadata = (
        json_format.MessageToDict(workflow_pb.metadata) if workflow_pb.metadata.fields else {}
    )
    if has_nul(metadata):
        raise ApiError(
            SC.WORKFLOW_INVALID_ARGUMENT, "metadata holds a NUL character", field="metadata"
        )
    return description, metadata


def _store_nodes(workflow: Workflow, specs: list[NodeSpec]) -> None:
    WorkflowNode.objects.bulk_create(
        WorkflowNode(
            workflow=workflow,
            node_id=s.node_id,
            position=i,
            model_version=s.model_version,
            node_inputs=s.node_inputs,
            suppress_output=s.suppress_output,
            output_info_override=s.output_info_override,
        )
        for i, s in enumerate(specs)
    )


def _duplicate(workflow_id: str) -> ApiError:
    return ApiError(
        SC.WORKFLOW_DUPLICATE,
        f"A workflow with id '{workflow_id}' already exists in this app; use PatchWorkflows with "
        "action 'overwrite' to change it",
        field="id",
    )


def workflows_create(*, app, workflow_pbs: list[resources_pb2.Workflow]) -> list[Workflow]:
    """Create workflows, all or none (one transaction). Raises WORKFLOW_INVALID_ARGUMENT (ids),
    WORKFLOW_DUPLICATE (an id that exists or repeats), WORKFLOW_INVALID_GRAPH (nodes)."""
    prepared = []
    seen: set[str] = set()
    for pb in workflow_pbs:
        workflow_id = validate_id(pb.id, "workflow id", SC.WORKFLOW_INVALID_ARGUMENT, field="id")
        if workflow_id in seen:
            raise _duplicate(workflow_id)
        seen.add(workflow_id)
        description, metadata = _fields(pb)
        specs = validate_graph(app=app, nodes=list(pb.nodes))
        prepared.append((workflow_id, description, metadata, specs))
    created = []
    try:
        with transaction.atomic():
            existing = set(
                Workflow.objects.filter(app=app, public_id__in=seen).values_list(
                    "public_id", flat=True
                )
            )
            if existing:
                raise _duplicate(sorted(existing)[0])
            for workflow_id, description, metadata, specs in prepared:
                workflow = Workflow.objects.create(
                    app=app, public_id=workflow_id, description=description, metadata=metadata
                )
                _store_nodes(workflow, specs)
                _record_version(workflow, specs)
                created.append(workflow)
    except IntegrityError as exc:  # a concurrent create of the same id
        raise _duplicate(", ".join(sorted(seen))) from exc
    return created


def workflow_create(*, app, workflow_pb: resources_pb2.Workflow) -> Workflow:
    """Create one workflow with its nodes (transactional); raises as `workflows_create`."""
    return workflows_create(app=app, workflow_pbs=[workflow_pb])[0]


def workflow_overwrite(*, app, workflow_pb: resources_pb2.Workflow) -> Workflow:
    """Replace a workflow's nodes (when given), description and metadata (when given).
    Transactional; 11101 for a missing workflow, WORKFLOW_INVALID_GRAPH for bad nodes."""
    return workflows_patch(app=app, workflow_pbs=[workflow_pb], action="overwrite")[0]


def workflows_overwrite(*, app, workflow_pbs: list[resources_pb2.Workflow]) -> list[Workflow]:
    """PatchWorkflows(action='overwrite') for several workflows, all or none."""
    return workflows_patch(app=app, workflow_pbs=workflow_pbs, action="overwrite")


# --- versions and patches -----------------------------------------------------------------------

WORKFLOW_ACTIONS = ("overwrite", "merge", "remove")
WORKFLOW_PATCHABLE = ("description", "metadata", "nodes", "visibility")


def snapshot_nodes(specs: list[NodeSpec]) -> list[dict]:
    """The JSON a WorkflowVersion keeps of a graph (model named by ids, so it outlives models)."""
    out = []
    for spec in specs:
        version = spec.model_version
        model = version.model
        out.append(
            {
                "id": spec.node_id,
                "model": {
                    "id": model.public_id,
                    "user_id": model.app.owner.username,
                    "app_id": model.app.public_id,
                    "model_version_id": version.public_id,
                },
                "node_inputs": list(spec.node_inputs),
                "suppress_output": spec.suppress_output,
                "output_info_override": spec.output_info_override,
            }
        )
    return out


def _record_version(workflow: Workflow, specs: list[NodeSpec]) -> WorkflowVersion:
    return WorkflowVersion.objects.create(
        workflow=workflow,
        public_id=new_hex_id(),
        nodes=snapshot_nodes(specs),
        description=workflow.description,
        metadata=workflow.metadata or {},
    )


def _stored_specs(workflow: Workflow) -> list[NodeSpec]:
    nodes = WorkflowNode.objects.filter(workflow=workflow).select_related(
        "model_version__model__app__owner"
    )
    return [
        NodeSpec(
            node_id=n.node_id,
            model_version=n.model_version,
            node_inputs=list(n.node_inputs or []),
            suppress_output=n.suppress_output,
            output_info_override=n.output_info_override or {},
        )
        for n in nodes.order_by("position", "pk")
    ]


def _node_pb(spec: NodeSpec) -> resources_pb2.WorkflowNode:
    """A stored node as the request message would have named it (for merge and remove)."""
    version = spec.model_version
    model = version.model
    pb = resources_pb2.WorkflowNode(id=spec.node_id, suppress_output=spec.suppress_output)
    pb.model.id = model.public_id
    pb.model.user_id = model.app.owner.username
    pb.model.app_id = model.app.public_id
    pb.model.model_version.id = version.public_id
    for parent in spec.node_inputs:
        pb.node_inputs.add(node_id=parent)
    if spec.output_info_override:
        json_format.ParseDict(
            spec.output_info_override, pb.output_info_override, ignore_unknown_fields=True
        )
    return pb


def _patched_nodes(action: str, stored: list[NodeSpec], given: list) -> list:
    """The node messages after a merge (same id replaced in place, new ids appended) or a
    remove (given ids taken out; each must be a node of the workflow)."""
    current = [_node_pb(s) for s in stored]
    if action == "merge":
        by_id = {n.id: i for i, n in enumerate(current)}
        for node in given:
            if node.id in by_id:
                current[by_id[node.id]] = node
            else:
                by_id[node.id] = len(current)
                current.append(node)
        return current
    ids = [n.id for n in given]
    known = {n.id for n in current}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise _graph_error(f"Node '{unknown[0][:64]}' is not a node of this workflow", unknown[0])
    kept = [n for n in current if n.id not in set(ids)]
    if not kept:
        raise _graph_error("Removing these nodes would leave the workflow without nodes")
    still = {n.id for n in kept}
    for node in kept:
        for parent in node.node_inputs:
            if parent.node_id not in still:
                raise _graph_error(
                    f"Node '{node.id}' takes input from '{parent.node_id}', which this patch "
                    "removes; remove or change it too",
                    node.id,
                )
    return kept


def _plan_patch(app, workflow: Workflow, pb: resources_pb2.Workflow, action: str) -> dict:
    """Validate one workflow patch; returns the new values (nothing is written)."""

    given = check_fields(
        pb,
        code=SC.WORKFLOW_INVALID_ARGUMENT,
        what=f"workflow '{workflow.public_id}'",
        patchable=WORKFLOW_PATCHABLE,
        identity={"id": workflow.public_id, "app_id": app.public_id, "user_id": app.owner.username},
        ignored=("created_at", "modified_at", "version"),
    )
    if not given:
        raise ApiError(
            SC.WORKFLOW_INVALID_ARGUMENT,
            f"workflow '{workflow.public_id}': nothing to patch (patchable: "
            f"{', '.join(WORKFLOW_PATCHABLE)})",
        )
    if "visibility" in given and pb.visibility.gettable not in (
        resources_pb2.Visibility.PRIVATE,
        resources_pb2.Visibility.UNKNOWN_VISIBILITY,
    ):
        raise ApiError(
            SC.WORKFLOW_INVALID_ARGUMENT,
            "workflows are private on this server (visibility 10)",
            field="visibility",
        )
    description, metadata = _fields(pb)
    values: dict = {}
    if "description" in given:
        values["description"] = "" if action == "remove" else description
    if "metadata" in given:
        values["metadata"] = check_metadata(
            apply_to_dict(action, workflow.metadata or {}, metadata),
            code=SC.WORKFLOW_INVALID_ARGUMENT,
        )
    if "nodes" in given:
        nodes = list(pb.nodes)
        if action != "overwrite":
            nodes = _patched_nodes(action, _stored_specs(workflow), nodes)
        values["specs"] = validate_graph(app=app, nodes=nodes)
    return values


def workflows_patch(
    *, app, workflow_pbs: list[resources_pb2.Workflow], action: str
) -> list[Workflow]:
    """PatchWorkflows, all or none, each change recorded as a new current version.

    overwrite: given nodes replace all nodes, a given description or metadata replaces the
    stored one. merge: a given node replaces the node with its id (others are appended),
    metadata is merged key by key, a given description replaces the stored one. remove: the
    given nodes (by id) are taken out, the given metadata keys removed, a given description
    cleared. The resulting graph is validated as on create (WORKFLOW_INVALID_GRAPH); fields that
    cannot change (id, app_id, user_id, or unsupported ones) are refused by name."""

    action = patch_action(
        action, code=SC.WORKFLOW_INVALID_REQUEST, allowed=WORKFLOW_ACTIONS, what="workflows"
    )
    if not workflow_pbs:
        raise ApiError(SC.WORKFLOW_INVALID_REQUEST, "workflows must hold at least one workflow")
    ids = []
    for pb in workflow_pbs:
        if not pb.id:
            raise ApiError(SC.WORKFLOW_INVALID_ARGUMENT, "workflow id is required", field="id")
        ids.append(pb.id)
    if len(set(ids)) != len(ids):
        raise ApiError(SC.WORKFLOW_INVALID_ARGUMENT, "a workflow id appears twice in the request")
    for pb in workflow_pbs:
        workflow_for_app(app, pb.id)  # 11101 before any lock
    updated = []
    with transaction.atomic():
        for pb in workflow_pbs:
            locked = Workflow.objects.select_for_update().get(app=app, public_id=pb.id)
            values = _plan_patch(app, locked, pb, action)
            if "description" in values:
                locked.description = values["description"]
            if "metadata" in values:
                locked.metadata = values["metadata"]
            specs = values.get("specs")
            if specs is not None:
                locked.nodes.all().delete()
                _store_nodes(locked, specs)
            else:
                specs = _stored_specs(locked)
            locked.save()
            _record_version(locked, specs)
            updated.append(locked)
    for workflow in updated:
        executor.invalidate_workflow(workflow.pk)
    return updated


def _users_of(workflows) -> list[str]:
    # collectors.models imports workflows.models (a collector names its workflows): a cycle.
    from collectors_module.collectors.models import Collector

    return list(
        Collector.objects.filter(
            Q(pre_queue_workflow__in=workflows) | Q(post_queue_workflow__in=workflows)
        ).values_list("public_id", flat=True)[:5]
    )


def workflows_delete(*, app, ids: list[str] | None = None, delete_all: bool = False) -> int:
    """Delete the named workflows (or all of the app's), all or none. 11101 names a missing id;
    WORKFLOW_INVALID_REQUEST when a collector still uses one (so it never silently loses its
    sampling or filtering)."""
    if not delete_all and not ids:
        raise ApiError(SC.WORKFLOW_INVALID_REQUEST, "Give the ids to delete, or delete_all")
    with transaction.atomic():
        qs = Workflow.objects.select_for_update().filter(app=app)
        if not delete_all:
            wanted = list(dict.fromkeys(ids or []))
            qs = qs.filter(public_id__in=wanted)
            found = set(qs.values_list("public_id", flat=True))
            missing = [i for i in wanted if i not in found]
            if missing:
                raise ApiError(SC.CONN_DOES_NOT_EXIST, f"Workflow '{missing[0]}' does not exist")
        workflows = list(qs)
        users = _users_of(workflows)
        if users:
            raise ApiError(
                SC.WORKFLOW_INVALID_REQUEST,
                "Collector(s) " + ", ".join(f"'{u}'" for u in users) + " use this workflow; "
                "change or delete them first",
            )
        count = len(workflows)
        Workflow.objects.filter(pk__in=[w.pk for w in workflows]).delete()
    for workflow in workflows:
        executor.invalidate_workflow(workflow.pk)
    return count


def workflow_delete(*, app, workflow_id: str) -> None:
    """Delete one workflow (and its nodes). 11101 when missing; refused while a collector uses it."""
    workflows_delete(app=app, ids=[workflow_id])


# --- concept relations ------------------------------------------------------------------------


def _concept_id(value: str, field: str) -> str:
    if (
        not value
        or len(value) > MAX_CONCEPT_ID
        or any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in value)
    ):
        raise ApiError(
            SC.CONCEPTS_INVALID_REQUEST,
            f"{field} must be a concept id of 1-{MAX_CONCEPT_ID} printable characters",
            field=field,
        )
    return value


def _predicate(value: str) -> str:
    predicate = (value or "").strip().lower()
    if predicate not in Predicate.values:
        raise ApiError(
            SC.CONCEPTS_INVALID_REQUEST,
            f"predicate must be one of {', '.join(Predicate.values)}, got '{value[:40]}'",
            field="predicate",
        )
    return predicate


def relation_create(
    *,
    app,
    subject_concept_id: str,
    object_concept_id: str,
    predicate: str,
    knowledge_graph_id: str = "",
    object_app_id: str = "",
    relation_id: str = "",
) -> ConceptRelation:
    """Store 'subject predicate object' in the app's knowledge graph. Idempotent: the same
    relation again returns the stored one. Raises CONCEPTS_INVALID_REQUEST on bad values."""
    return relations_create(
        app=app,
        relations=[
            {
                "subject": subject_concept_id,
                "object": object_concept_id,
                "predicate": predicate,
                "knowledge_graph_id": knowledge_graph_id,
                "object_app_id": object_app_id,
                "id": relation_id,
            }
        ],
    )[0]


def relations_create(*, app, relations: list[dict]) -> list[ConceptRelation]:
    """Several relations ({subject, object, predicate, knowledge_graph_id, object_app_id, id}),
    all or none; each idempotent like `relation_create`."""
    cleaned = []
    for rel in relations:
        subject = _concept_id(rel.get("subject", ""), "subject_concept.id")
        obj = _concept_id(rel.get("object", ""), "object_concept.id")
        if subject == obj:
            raise ApiError(
                SC.CONCEPTS_INVALID_REQUEST,
                f"A concept cannot be related to itself ('{subject}')",
                field="object_concept.id",
            )
        kg = rel.get("knowledge_graph_id", "") or ""
        if kg:
            validate_id(kg, "knowledge_graph_id", SC.CONCEPTS_INVALID_REQUEST)
        rid = rel.get("id") or ""
        if rid:
            validate_id(rid, "relation id", SC.CONCEPTS_INVALID_REQUEST, field="id")
        object_app_id = rel.get("object_app_id", "") or ""
        if object_app_id:
            validate_id(object_app_id, "object_concept.app_id", SC.CONCEPTS_INVALID_REQUEST)
        cleaned.append((subject, obj, _predicate(rel.get("predicate", "")), kg, object_app_id, rid))
    out = []
    try:
        with transaction.atomic():
            for subject, obj, predicate, kg, object_app_id, rid in cleaned:
                existing = ConceptRelation.objects.filter(
                    app=app,
                    subject_concept_id=subject,
                    object_concept_id=obj,
                    predicate=predicate,
                    knowledge_graph_id=kg,
                ).first()
                if existing is not None:
                    out.append(existing)
                    continue
                if rid and ConceptRelation.objects.filter(app=app, public_id=rid).exists():
                    raise ApiError(
                        SC.DATABASE_DUPLICATE_KEY,
                        f"A concept relation with id '{rid}' already exists",
                        field="id",
                    )
                out.append(
                    ConceptRelation.objects.create(
                        app=app,
                        public_id=rid or new_hex_id(),
                        subject_concept_id=subject,
                        object_concept_id=obj,
                        object_app_id=object_app_id,
                        predicate=predicate,
                        knowledge_graph_id=kg,
                    )
                )
            transaction.on_commit(lambda: executor.invalidate_app(app.pk))
    except IntegrityError as exc:
        raise ApiError(SC.DATABASE_DUPLICATE_KEY, "This concept relation already exists") from exc
    return out


def relations_delete(*, app, ids: list[str]) -> int:
    """Delete relations of the app by id; returns how many were deleted (missing ids ignored)."""
    if not ids:
        return 0
    with transaction.atomic():
        count, _ = ConceptRelation.objects.filter(app=app, public_id__in=list(ids)).delete()
        transaction.on_commit(lambda: executor.invalidate_app(app.pk))
    return count


# --- concepts -----------------------------------------------------------------------------------

MAX_CONCEPTS_PER_REQUEST = 128
CONCEPT_PATCHABLE = ("name",)
# Concept fields a client sends that mean nothing for an app's concept list (a concept's `value`
# is a score in predictions and annotations; the SDK always sends 1.0).
CONCEPT_IGNORED = ("value", "created_at")


def _concept_name(value: str, concept_id: str, field: str) -> str:
    name = value or concept_id
    if len(name) > MAX_CONCEPT_ID or any(ord(ch) < 32 for ch in name):
        raise ApiError(
            SC.CONCEPTS_INVALID_REQUEST,
            f"{field} must be at most {MAX_CONCEPT_ID} printable characters",
            field=field,
        )
    return name


def _concept_batch(concept_pbs) -> None:
    if not concept_pbs:
        raise ApiError(
            SC.CONCEPTS_INVALID_REQUEST, "concepts must hold at least one concept", field="concepts"
        )
    if len(concept_pbs) > MAX_CONCEPTS_PER_REQUEST:
        raise ApiError(
            SC.CONCEPTS_INVALID_REQUEST,
            f"{len(concept_pbs)} concepts in one request; at most {MAX_CONCEPTS_PER_REQUEST}",
            field="concepts",
        )
    ids = [c.id for c in concept_pbs]
    if len(set(ids)) != len(ids):
        raise ApiError(
            SC.CONCEPTS_INVALID_REQUEST, "a concept id appears twice in the request", field="id"
        )


def concepts_create(*, app, concept_pbs: list[resources_pb2.Concept]) -> list[Concept]:
    """PostConcepts: all or none. DATABASE_DUPLICATE_KEY for an id the app already has."""

    _concept_batch(concept_pbs)
    rows = []
    for i, pb in enumerate(concept_pbs):
        concept_id = _concept_id(pb.id, f"concepts[{i}].id")
        check_fields(
            pb,
            code=SC.CONCEPTS_INVALID_REQUEST,
            what=f"concept '{concept_id[:64]}'",
            patchable=("name",),
            identity={"id": concept_id, "app_id": app.public_id, "user_id": app.owner.username},
            ignored=CONCEPT_IGNORED,
            creating=True,
        )
        rows.append(
            Concept(
                app=app,
                public_id=concept_id,
                name=_concept_name(pb.name, concept_id, f"concepts[{i}].name"),
            )
        )
    try:
        with transaction.atomic():
            taken = set(
                Concept.objects.filter(
                    app=app, public_id__in=[r.public_id for r in rows]
                ).values_list("public_id", flat=True)
            )
            if taken:
                raise ApiError(
                    SC.DATABASE_DUPLICATE_KEY,
                    f"Concept '{sorted(taken)[0]}' already exists in app '{app.public_id}'",
                    field="id",
                )
            Concept.objects.bulk_create(rows)
    except IntegrityError as exc:  # a concurrent create of the same id
        raise ApiError(SC.DATABASE_DUPLICATE_KEY, "One of these concepts already exists") from exc
    return rows


def concepts_patch(*, app, concept_pbs: list[resources_pb2.Concept], action: str) -> list[Concept]:
    """PatchConcepts with action 'overwrite' (Clarifai's only action here): a concept's name
    changes; its id, app and user cannot. All or none; 11101 names a missing concept."""

    patch_action(action, code=SC.CONCEPTS_INVALID_REQUEST, allowed=("overwrite",), what="concepts")
    _concept_batch(concept_pbs)
    with transaction.atomic():
        rows = {
            r.public_id: r
            for r in Concept.objects.select_for_update().filter(
                app=app, public_id__in=[c.id for c in concept_pbs]
            )
        }
        out = []
        for i, pb in enumerate(concept_pbs):
            if not pb.id:
                raise ApiError(
                    SC.CONCEPTS_INVALID_REQUEST, f"concepts[{i}].id is required", field="id"
                )
            row = rows.get(pb.id)
            if row is None:
                raise ApiError(SC.CONN_DOES_NOT_EXIST, f"Concept '{pb.id[:128]}' does not exist")
            given = check_fields(
                pb,
                code=SC.CONCEPTS_INVALID_REQUEST,
                what=f"concept '{row.public_id[:64]}'",
                patchable=CONCEPT_PATCHABLE,
                identity={
                    "id": row.public_id,
                    "app_id": app.public_id,
                    "user_id": app.owner.username,
                },
                ignored=(*CONCEPT_IGNORED, "modified_at"),
            )
            if "name" in given:
                row.name = _concept_name(pb.name, row.public_id, f"concepts[{i}].name")
            row.save()
            out.append(row)
    return out


# --- recipes (the builder's templates) --------------------------------------------------------


def _recipe_model_ref(app, workflow_id: str, rn, source_model_version) -> dict:

    if rn.model_type_id:
        base = f"{workflow_id}-{rn.node_id}"[:120]
        model_id, n = base, 1
        while Model.objects.filter(app=app, public_id=model_id).exists():
            n += 1
            model_id = f"{base}-{n}"
        pb = resources_pb2.Model(id=model_id, model_type_id=rn.model_type_id)
        if rn.params:
            pb.output_info.params.update(rn.params)
        for concept in rn.concepts:
            pb.output_info.data.concepts.add(id=concept["id"], value=concept.get("value", 1.0))
        version = model_create(app=app, model_pb=pb).latest_version()
        return {"id": version.model.public_id, "model_version": {"id": version.public_id}}
    if rn.source and source_model_version is not None:
        model = source_model_version.model
        return {
            "id": model.public_id,
            "user_id": model.app.owner.username,
            "app_id": model.app.public_id,
            "model_version": {"id": source_model_version.public_id},
        }
    model_id = rn.builtin_model_id or DEFAULT_SOURCE_MODEL
    spec = next(s for s in CATALOG if s.model_id == model_id)
    return {
        "id": spec.model_id,
        "user_id": BUILTIN_USER_ID,
        "app_id": BUILTIN_APP_ID,
        "model_version": {"id": spec.version_id},
    }


def workflow_create_from_recipe(
    *,
    app,
    recipe_id: str,
    workflow_id: str,
    source_model_version=None,
    description: str = "",
    key_value=None,
) -> Workflow:
    """Create a recipe's operator models ("<workflow id>-<node id>", "-2" ... when taken) and its
    workflow, all or none.
    `source_model_version` fills the recipe's source node (default: a built-in classifier);
    `key_value` (a JSON value) replaces the recipe's key parameter (`Recipe.key_param`).
    Raises 11101 for an unknown recipe, else like `workflow_create` / `model_create`."""

    recipe = get_recipe(recipe_id)
    if recipe is None:
        raise not_found("Workflow template", recipe_id)
    if key_value is not None and recipe.key_param:
        recipe = recipe.with_key_value(key_value)
    validate_id(workflow_id, "workflow id", SC.WORKFLOW_INVALID_ARGUMENT, field="id")
    with transaction.atomic():
        if Workflow.objects.filter(app=app, public_id=workflow_id).exists():
            raise _duplicate(workflow_id)
        nodes = []
        for rn in recipe.nodes:
            node: dict = {
                "id": rn.node_id,
                "model": _recipe_model_ref(app, workflow_id, rn, source_model_version),
            }
            if rn.inputs:
                node["node_inputs"] = [{"node_id": i} for i in rn.inputs]
            nodes.append(node)
        pb = from_dict(
            {"id": workflow_id, "description": description or recipe.title, "nodes": nodes},
            resources_pb2.Workflow,
        )
        return workflow_create(app=app, workflow_pb=pb)


# --- the Workflow Builder's save --------------------------------------------------------------


def _free_model_id(app, base: str) -> str:
    """`base`, or `base-2`, `base-3`... when the app already has a model of that id."""

    base = base[:120]
    model_id, n = base, 1
    while Model.objects.filter(app=app, public_id=model_id).exists():
        n += 1
        model_id = f"{base}-{n}"
    return model_id


def workflow_save_from_builder(*, app, workflow_id: str, nodes: list[dict], new: bool) -> Workflow:
    """Store a Workflow Builder draft, all or none: make the operator model of every new operator
    node ("<workflow id>-<node id>" with the entered output_info), then create the workflow
    (`new`) or overwrite it.

    `nodes` are the draft's node dicts: `id`, `kind` ("operator": `type` and `output_info`;
    "version": `ref` to an existing model version), `inputs` and `override`. A node whose
    operator model cannot be made fails with `ApiError(field=<node id>)`; otherwise errors are
    those of `workflow_create` / `workflow_overwrite`.
    """

    node_ids = {n["id"] for n in nodes}
    with transaction.atomic():
        before = _builder_operator_models(app, workflow_id) if not new else []
        node_dicts = []
        for n in nodes:
            ref = n.get("ref")
            if n["kind"] == "operator":
                model_id = _free_model_id(app, f"{workflow_id}-{n['id']}")
                try:
                    pb = from_dict(
                        {
                            "id": model_id,
                            "model_type_id": n["type"],
                            "output_info": n["output_info"],
                        },
                        resources_pb2.Model,
                    )
                    model = model_create(app=app, model_pb=pb)
                except ApiError as exc:
                    raise ApiError(
                        exc.code, f"Node '{n['id']}': {exc.details}", field=n["id"]
                    ) from exc
                version = model.latest_version()
                ref = {
                    "id": model.public_id,
                    "user_id": app.owner.username,
                    "app_id": app.public_id,
                    "version_id": version.public_id,
                }
            node = {
                "id": n["id"],
                "model": {
                    "id": ref["id"],
                    "user_id": ref["user_id"],
                    "app_id": ref["app_id"],
                    "model_version": {"id": ref["version_id"]},
                },
            }
            if n["inputs"]:
                node["node_inputs"] = [{"node_id": i} for i in n["inputs"] if i in node_ids]
            if n.get("override"):
                node["output_info_override"] = n["override"]
            node_dicts.append(node)
        body: dict = {"id": workflow_id, "nodes": node_dicts}
        if new:
            body["description"] = "Made in the Workflow Builder"
        pb = from_dict(body, resources_pb2.Workflow)
        if new:
            return workflow_create(app=app, workflow_pb=pb)
        workflow = workflow_overwrite(app=app, workflow_pb=pb)
        _delete_unused_operator_models(app, before)
        return workflow


def _builder_operator_models(app, workflow_id: str) -> list[str]:
    """Operator models of `app` that the builder or a template made for this workflow's nodes
    ("<workflow id>-<node id>"), as its nodes use them now."""
    prefix = f"{workflow_id}-"
    return sorted(
        {
            n.model_version.model.public_id
            for n in WorkflowNode.objects.filter(
                workflow__app=app, workflow__public_id=workflow_id
            ).select_related("model_version__model")
            if n.model_version.model.app_id == app.pk
            and n.model_version.model.public_id.startswith(prefix)
            and executor.is_operator_version(n.model_version)
        }
    )


def _delete_unused_operator_models(app, model_ids: list[str]) -> list[str]:
    """Delete those of `model_ids` that no workflow node uses any more (models_delete refuses
    the ones a workflow or collector still uses: they stay). Returns the deleted ids."""
    used = set(
        WorkflowNode.objects.filter(
            model_version__model__app=app, model_version__model__public_id__in=model_ids
        ).values_list("model_version__model__public_id", flat=True)
    )
    deleted = []
    for model_id in model_ids:
        if model_id in used:
            continue
        try:
            models_delete(app=app, ids=[model_id])
        except ApiError:
            continue  # used elsewhere (another user's workflow, a collector): kept
        deleted.append(model_id)
    return deleted
