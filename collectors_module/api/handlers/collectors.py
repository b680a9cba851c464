"""Collectors: PostCollectors, PatchCollectors (overwrite), ListCollectors, GetCollector,
DeleteCollectors. Scopes are checked by dispatch from the descriptors.

Status: `Collector.status.code` is COLLECTOR_ACTIVE (52001) or COLLECTOR_INACTIVE (52002); a new
collector is active unless the request sets 52002; an overwrite keeps the status unless given.
`post_inputs_key_id` accepts a key's public id or its secret and always answers the public id.
The admission limits (not in the Clarifai message) are read and set through
`/api/v2/.../collectors/<id>/limits` (the CollectorExtensions service, handlers/collector_ext.py).
"""

from __future__ import annotations

from clarifai_grpc.grpc.api import resources_pb2, service_pb2

from collectors_module.api.descriptors import get_rpc
from collectors_module.api.dispatch import rpc
from collectors_module.collectors import selectors, services
from collectors_module.core.errors import SC, ApiError, make_status
from collectors_module.core.pagination import paginate

from .convert import ts


def collector_to_pb(c) -> resources_pb2.Collector:
    """A collector row as the Clarifai message (never a secret: the key's public id only)."""
    pb = resources_pb2.Collector(
        id=c.public_id,
        description=c.description,
        pre_queue_workflow_id=c.pre_queue_workflow.public_id if c.pre_queue_workflow_id else "",
        post_queue_workflow_id=c.post_queue_workflow.public_id if c.post_queue_workflow_id else "",
        pre_queue_random_sample=c.pre_queue_random_sample,
        collect_outputs=c.collect_outputs,
    )
    ts(pb.created_at, c.created_at)
    pb.status.CopyFrom(make_status(c.status))
    src = pb.collector_source.api_post_model_outputs_collector_source
    src.model_user_id = c.model_user_id
    src.model_app_id = c.model_app_id
    src.model_id = c.model_id
    src.model_version_id = c.model_version_id
    src.post_inputs_key_id = c.post_inputs_key.public_id if c.post_inputs_key_id else ""
    src.caller_user_id = c.caller.username if c.caller_id else ""
    return pb


def _reload(app, collectors) -> list:
    by_id = {
        c.public_id: c
        for c in selectors.collectors_of_app(app).filter(
            public_id__in=[c.public_id for c in collectors]
        )
    }
    return [by_id[c.public_id] for c in collectors if c.public_id in by_id]


@rpc("PostCollectors")
def post_collectors(ctx, req: service_pb2.PostCollectorsRequest):
    app = ctx.app(write=True)
    created = services.collectors_create(
        app=app, actor=ctx.user, collector_pbs=list(req.collectors), acting_key=ctx.key
    )
    return service_pb2.MultiCollectorResponse(
        collectors=[collector_to_pb(c) for c in _reload(app, created)]
    )


@rpc("PatchCollectors")
def patch_collectors(ctx, req: service_pb2.PatchCollectorsRequest):
    app = ctx.app(write=True)
    action = (req.action or "").strip().lower()
    if action != "overwrite":
        raise ApiError(
            SC.CONN_INVALID_REQUEST,
            f"action '{req.action[:32]}' is not supported for collectors: only 'overwrite' is"
            if req.action
            else "action is required: only 'overwrite' is supported for collectors",
            field="action",
        )
    changed = services.collectors_overwrite(
        app=app, actor=ctx.user, collector_pbs=list(req.collectors), acting_key=ctx.key
    )
    return service_pb2.MultiCollectorResponse(
        collectors=[collector_to_pb(c) for c in _reload(app, changed)]
    )


@rpc("ListCollectors")
def list_collectors(ctx, req: service_pb2.ListCollectorsRequest):
    app = ctx.app(write=True)
    page = paginate(selectors.collectors_of_app(app), req.page, req.per_page)
    return service_pb2.MultiCollectorResponse(collectors=[collector_to_pb(c) for c in page])


@rpc("GetCollector")
def get_collector(ctx, req: service_pb2.GetCollectorRequest):
    app = ctx.app(write=True)
    return service_pb2.SingleCollectorResponse(
        collector=collector_to_pb(selectors.collector_for_app(app, req.collector_id))
    )


@rpc("DeleteCollectors")
def delete_collectors(ctx, req: service_pb2.DeleteCollectorsRequest):
    app = ctx.app(write=True)
    services.collectors_delete(app=app, ids=list(req.ids), delete_all=req.delete_all)
    return get_rpc("DeleteCollectors").response_cls()
