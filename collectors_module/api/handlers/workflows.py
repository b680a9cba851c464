"""Workflows: PostWorkflows, ListWorkflows, GetWorkflow, PatchWorkflows (overwrite, merge,
remove), DeleteWorkflow, DeleteWorkflows, ListWorkflowVersions, GetWorkflowVersion,
PostWorkflowResults; and the model type catalogue (ListModelTypes, GetModelType).

Every create and patch records a version; the newest is the current one: it is `workflow.version`
in every workflow message, listed first by ListWorkflowVersions, and the only version that is
not `is_deprecated` (older ones are superseded). PostWorkflowResults runs the current version.
An app's workflows are visible only to the app's owner: every handler resolves the app with
`write=True`, so anybody else gets 11101.
"""

from __future__ import annotations

from clarifai_grpc.grpc.api import resources_pb2, service_pb2
from clarifai_grpc.grpc.api.status import status_pb2
from django.utils import timezone
from google.protobuf import struct_pb2

from collectors_module.api.dispatch import rpc
from collectors_module.core.errors import SC, ApiError, make_status, not_found
from collectors_module.core.ids import new_hex_id
from collectors_module.core.pagination import page_bounds, paginate
from collectors_module.inference.convert import model_ref_pb
from collectors_module.workflows import conf, executor, selectors, services
from collectors_module.workflows.model_types import MODEL_TYPES, get_model_type, model_type_to_pb

from .convert import ts

_ECHO_BASE64 = b"true"  # what Clarifai echoes in place of uploaded bytes


def _struct(value: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value or {})
    return s


def node_to_pb(node) -> resources_pb2.WorkflowNode:
    pb = resources_pb2.WorkflowNode(
        id=node.node_id,
        model=model_ref_pb(node.model_version),
        suppress_output=node.suppress_output,
    )
    for parent in node.node_inputs or []:
        pb.node_inputs.add(node_id=parent)
    override = node.output_info_override or {}
    if override.get("params"):
        pb.output_info_override.params.CopyFrom(_struct(override["params"]))
    for concept in (override.get("data") or {}).get("concepts") or []:
        pb.output_info_override.data.concepts.add(
            id=str(concept.get("id", "")),
            name=str(concept.get("name", concept.get("id", ""))),
            value=float(concept.get("value", 1.0)),
        )
    return pb


def workflow_to_pb(workflow) -> resources_pb2.Workflow:
    app = workflow.app
    pb = resources_pb2.Workflow(
        id=workflow.public_id,
        app_id=app.public_id,
        user_id=app.owner.username,
        description=workflow.description,
        nodes=[node_to_pb(n) for n in workflow.nodes.all()],
    )
    pb.visibility.gettable = resources_pb2.Visibility.PRIVATE
    if workflow.metadata:
        pb.metadata.CopyFrom(_struct(workflow.metadata))
    ts(pb.created_at, workflow.created_at)
    ts(pb.modified_at, workflow.modified_at)
    current = getattr(workflow, "current_version_id", None)
    if current:
        pb.version.id = current
        pb.version.workflow_id = workflow.public_id
        pb.version.app_id = app.public_id
        pb.version.user_id = app.owner.username
        pb.version.visibility.gettable = resources_pb2.Visibility.PRIVATE
        ts(pb.version.created_at, workflow.current_version_at)
        ts(pb.version.modified_at, workflow.current_version_at)
    return pb


def version_node_to_pb(node: dict) -> resources_pb2.WorkflowNode:
    """A node of a stored version (models named by ids, as they were then)."""
    model = node.get("model") or {}
    pb = resources_pb2.WorkflowNode(
        id=str(node.get("id", "")), suppress_output=bool(node.get("suppress_output"))
    )
    pb.model.id = str(model.get("id", ""))
    pb.model.user_id = str(model.get("user_id", ""))
    pb.model.app_id = str(model.get("app_id", ""))
    pb.model.model_version.id = str(model.get("model_version_id", ""))
    pb.model.model_version.user_id = pb.model.user_id
    pb.model.model_version.app_id = pb.model.app_id
    for parent in node.get("node_inputs") or []:
        pb.node_inputs.add(node_id=str(parent))
    override = node.get("output_info_override") or {}
    if override.get("params"):
        pb.output_info_override.params.CopyFrom(_struct(override["params"]))
    for concept in (override.get("data") or {}).get("concepts") or []:
        pb.output_info_override.data.concepts.add(
            id=str(concept.get("id", "")),
            name=str(concept.get("name", concept.get("id", ""))),
            value=float(concept.get("value", 1.0)),
        )
    return pb


def workflow_version_to_pb(version, workflow, *, current_id: str) -> resources_pb2.WorkflowVersion:
    app = workflow.app
    pb = resources_pb2.WorkflowVersion(
        id=version.public_id,
        workflow_id=workflow.public_id,
        app_id=app.public_id,
        user_id=app.owner.username,
        description=version.description,
        nodes=[version_node_to_pb(n) for n in version.nodes or [] if isinstance(n, dict)],
        is_deprecated=version.public_id != current_id,
    )
    pb.visibility.gettable = resources_pb2.Visibility.PRIVATE
    if version.metadata:
        pb.metadata.CopyFrom(_struct(version.metadata))
    ts(pb.created_at, version.created_at)
    ts(pb.modified_at, version.created_at)
    return pb


def _reload(app, workflows):
    return [selectors.workflow_for_app(app, w.public_id) for w in workflows]


@rpc("PostWorkflows")
def post_workflows(ctx, req: service_pb2.PostWorkflowsRequest):
    app = ctx.app(write=True)
    if not req.workflows:
        raise ApiError(SC.WORKFLOW_INVALID_REQUEST, "workflows must hold at least one workflow")
    created = services.workflows_create(app=app, workflow_pbs=list(req.workflows))
    return service_pb2.MultiWorkflowResponse(
        workflows=[workflow_to_pb(w) for w in _reload(app, created)]
    )


_SORT_FIELDS = {
    "sort_by_id": "public_id",
    "sort_by_created_at": "created_at",
    "sort_by_modified_at": "modified_at",
}


@rpc("ListWorkflows")
def list_workflows(ctx, req: service_pb2.ListWorkflowsRequest):
    sort = req.WhichOneof("sort_by")
    field = _SORT_FIELDS.get(sort or "", "modified_at")
    order = field if req.sort_ascending else f"-{field}"
    if ctx.app_id:
        qs = selectors.workflows_of_app(ctx.app(write=True), order=order)
    else:
        if ctx.owner_user_id != ctx.user.username:
            raise not_found("User", ctx.owner_user_id)
        qs = selectors.workflows_of_user(ctx.user, order=order)
    search = (req.search or req.query or req.search_term or req.id).strip().replace("\x00", "")
    if search:
        qs = qs.filter(public_id__icontains=search)
    workflows = paginate(qs, req.page, req.per_page)
    return service_pb2.MultiWorkflowResponse(workflows=[workflow_to_pb(w) for w in workflows])


@rpc("GetWorkflow")
def get_workflow(ctx, req: service_pb2.GetWorkflowRequest):
    workflow = selectors.workflow_for_app(ctx.app(write=True), req.workflow_id)
    return service_pb2.SingleWorkflowResponse(workflow=workflow_to_pb(workflow))


@rpc("PatchWorkflows")
def patch_workflows(ctx, req: service_pb2.PatchWorkflowsRequest):
    app = ctx.app(write=True)
    updated = services.workflows_patch(app=app, workflow_pbs=list(req.workflows), action=req.action)
    return service_pb2.MultiWorkflowResponse(
        workflows=[workflow_to_pb(w) for w in _reload(app, updated)]
    )


@rpc("ListWorkflowVersions")
def list_workflow_versions(ctx, req: service_pb2.ListWorkflowVersionsRequest):
    workflow = selectors.workflow_for_app(ctx.app(write=True), req.workflow_id)
    versions = paginate(selectors.versions_of_workflow(workflow), req.page, req.per_page)
    current = workflow.current_version_id or ""
    return service_pb2.MultiWorkflowVersionResponse(
        workflow_versions=[
            workflow_version_to_pb(v, workflow, current_id=current) for v in versions
        ]
    )


@rpc("GetWorkflowVersion")
def get_workflow_version(ctx, req: service_pb2.GetWorkflowVersionRequest):
    workflow = selectors.workflow_for_app(ctx.app(write=True), req.workflow_id)
    version = selectors.workflow_version_for(workflow, req.workflow_version_id)
    return service_pb2.SingleWorkflowVersionResponse(
        workflow_version=workflow_version_to_pb(
            version, workflow, current_id=workflow.current_version_id or ""
        )
    )


@rpc("DeleteWorkflow")
def delete_workflow(ctx, req: service_pb2.DeleteWorkflowRequest):
    services.workflow_delete(app=ctx.app(write=True), workflow_id=req.workflow_id)
    return status_pb2.BaseResponse()


@rpc("DeleteWorkflows")
def delete_workflows(ctx, req: service_pb2.DeleteWorkflowsRequest):
    services.workflows_delete(app=ctx.app(write=True), ids=list(req.ids), delete_all=req.delete_all)
    return status_pb2.BaseResponse()


# --- PostWorkflowResults ----------------------------------------------------------------------


def _echo_input(inp: resources_pb2.Input, input_id: str) -> resources_pb2.Input:
    echo = resources_pb2.Input(id=input_id)
    echo.data.CopyFrom(inp.data)
    if echo.data.image.base64:
        echo.data.image.base64 = _ECHO_BASE64
    return echo


def _output_data(data: resources_pb2.Data) -> resources_pb2.Data:
    """A node's output without raw image bytes (operators pass the input image through)."""
    if not data.image.base64:
        return data
    out = resources_pb2.Data()
    out.CopyFrom(data)
    out.image.ClearField("base64")
    if not out.image.ListFields():
        out.ClearField("image")
    return out


def _results_status(codes: list[int], errors: list[ApiError]):
    failed = [c for c in codes if c != SC.SUCCESS]
    if not failed:
        return make_status(SC.SUCCESS)
    if len(failed) < len(codes):
        return make_status(SC.MIXED_STATUS, details=f"{len(failed)} of {len(codes)} inputs failed")
    first = errors[0]
    details = (
        first.details if len(codes) == 1 else f"all {len(codes)} inputs failed: {first.details}"
    )
    return make_status(first.code, first.description, details)


@rpc("PostWorkflowResults")
def post_workflow_results(ctx, req: service_pb2.PostWorkflowResultsRequest):
    app = ctx.app(write=True)
    workflow = selectors.workflow_for_app(app, req.workflow_id)
    if req.version_id and req.version_id != workflow.current_version_id:
        old = selectors.workflow_version_for(workflow, req.version_id)  # 11101 if unknown
        raise ApiError(
            SC.WORKFLOW_INVALID_REQUEST,
            f"Workflow version '{old.public_id}' of '{workflow.public_id}' is superseded; only "
            f"the current version ('{workflow.current_version_id}') runs. Restore an older "
            "graph with PatchWorkflows (action 'overwrite' and that version's nodes).",
            field="version_id",
        )
    limit = conf.max_result_inputs()
    if not req.inputs:
        raise ApiError(
            SC.WORKFLOW_INVALID_REQUEST, "inputs must hold at least one input", field="inputs"
        )
    if len(req.inputs) > limit:
        raise ApiError(
            SC.WORKFLOW_INVALID_REQUEST,
            f"A workflow runs on at most {limit} inputs at once; this request has {len(req.inputs)}",
            field="inputs",
        )
    inputs = list(req.inputs)
    input_ids = [inp.id or new_hex_id() for inp in inputs]
    for inp, input_id in zip(inputs, input_ids, strict=True):
        inp.id = input_id  # the random-sample draw of an input derives from its id
    outcomes = executor.run_on_inputs(workflow, inputs)
    now = timezone.now()
    nodes = list(workflow.nodes.all())
    response = service_pb2.PostWorkflowResultsResponse(workflow=workflow_to_pb(workflow))
    codes: list[int] = []
    errors: list[ApiError] = []
    for i, inp in enumerate(inputs):
        result = response.results.add(id=new_hex_id(), input=_echo_input(inp, input_ids[i]))
        ts(result.created_at, now)
        run = outcomes[i]
        if isinstance(run, ApiError):
            err = run
            result.status.CopyFrom(err.to_status())
            codes.append(err.code)
            errors.append(err)
            continue
        by_node = {r.node_id: r for r in run.outputs}
        for node in nodes:
            node_run = by_node[node.node_id]
            out = result.outputs.add(id=new_hex_id(), model=model_ref_pb(node.model_version))
            ts(out.created_at, now)
            out.input.id = input_ids[i]
            details = node_run.details
            if node_run.ok:
                details = f"{details}; " if details else ""
                details += f"{node_run.duration_ms:.3f} ms" if not node_run.reused else "reused"
            out.status.CopyFrom(make_status(node_run.status_code, details=details))
            if not node.suppress_output:
                out.data.CopyFrom(_output_data(node_run.data))
        if run.status_code == SC.SUCCESS:
            result.status.CopyFrom(make_status(SC.SUCCESS))
            codes.append(SC.SUCCESS)
        else:
            err = ApiError(run.status_code, f"node '{run.failed_node}': {run.details}")
            result.status.CopyFrom(err.to_status())
            codes.append(err.code)
            errors.append(err)
    response.status.CopyFrom(_results_status(codes, errors))
    return response


# --- model types ------------------------------------------------------------------------------


@rpc("ListModelTypes")
def list_model_types(ctx, req: service_pb2.ListModelTypesRequest):
    if ctx.app_id:
        ctx.app()  # a named app must exist and be visible
    offset, limit = page_bounds(req.page, req.per_page)
    return service_pb2.MultiModelTypeResponse(
        model_types=[model_type_to_pb(spec) for spec in MODEL_TYPES[offset : offset + limit]]
    )


@rpc("GetModelType")
def get_model_type_handler(ctx, req: service_pb2.GetModelTypeRequest):
    if ctx.app_id:
        ctx.app()
    spec = get_model_type(req.model_type_id)
    if spec is None:
        raise not_found("Model type", req.model_type_id)
    return service_pb2.SingleModelTypeResponse(model_type=model_type_to_pb(spec))
