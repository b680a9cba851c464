"""Datasets: PostDatasets, ListDatasets, GetDataset, PatchDatasets, DeleteDatasets; their inputs
(PostDatasetInputs, ListDatasetInputs, GetDatasetInput, DeleteDatasetInputs); versions
(PostDatasetVersions, ListDatasetVersions, GetDatasetVersion, DeleteDatasetVersions); exports
(PutDatasetVersionExports); and the collector's destination dataset (extension RPCs
GetCollectorDataset / PutCollectorDataset of collectors.ext.v1).

Like inputs, a dataset is visible only to its app's owner: every handler resolves the app with
`write=True`, so anybody else gets 11101.
"""

from __future__ import annotations

from clarifai_grpc.grpc.api import resources_pb2, service_pb2
from clarifai_grpc.grpc.api.status import status_pb2
from django.urls import reverse
from google.protobuf import json_format

from collectors_module.api.dispatch import rpc
from collectors_module.api.proto import collectors_ext_pb2 as ext
from collectors_module.collectors import selectors as collector_selectors
from collectors_module.core.errors import SC, ApiError, make_status
from collectors_module.core.pagination import paginate
from collectors_module.datasets import selectors, services
from collectors_module.datasets.models import EXPORT_IN_PROGRESS
from collectors_module.inputs import conf as inputs_conf
from collectors_module.inputs.convert import input_to_pb

from .convert import ts

EXPORT_FIELDS = {
    "CLARIFAI_DATA_PROTOBUF": "clarifai_data_protobuf",
    "CLARIFAI_DATA_JSON": "clarifai_data_json",
    "COCO": "coco",
}


def dataset_to_pb(row, app) -> resources_pb2.Dataset:
    pb = resources_pb2.Dataset(
        id=row.public_id,
        app_id=app.public_id,
        user_id=app.owner.username,
        description=row.description,
        notes=row.notes,
    )
    pb.visibility.gettable = resources_pb2.Visibility.PRIVATE
    if row.metadata:
        pb.metadata.update(row.metadata)
    ts(pb.created_at, row.created_at)
    ts(pb.modified_at, row.modified_at)
    return pb


def download_url(app, dataset, version, fmt: str) -> str:
    path = reverse(
        "datasets:download",
        args=[app.public_id, dataset.public_id, version.public_id, fmt.lower()],
    )
    return f"{inputs_conf.public_base_url()}{path}"


def export_to_pb(export, app, dataset, version) -> resources_pb2.DatasetVersionExport:
    pb = resources_pb2.DatasetVersionExport(
        format=resources_pb2.DatasetVersionExportFormat.Value(export.format)
    )
    details = export.status_details
    if export.status_code == EXPORT_IN_PROGRESS:
        details = f"{export.processed} of {export.total} done"
        if selectors.export_is_stale(export):
            details += "; its worker stopped, request the export again to restart it"
    pb.status.CopyFrom(make_status(export.status_code, details=details))
    if export.storage_name:
        pb.url = download_url(app, dataset, version, export.format)
        pb.size = export.size
    return pb


def version_to_pb(row, app, dataset, *, with_exports: bool = True) -> resources_pb2.DatasetVersion:
    pb = resources_pb2.DatasetVersion(
        id=row.public_id,
        app_id=app.public_id,
        user_id=app.owner.username,
        dataset_id=dataset.public_id,
        description=row.description,
    )
    pb.status.CopyFrom(make_status(row.status_code, details=row.status_details))
    pb.visibility.gettable = resources_pb2.Visibility.PRIVATE
    if row.metadata:
        pb.metadata.update(row.metadata)
    pb.metrics["/"].inputs_count.value = row.inputs_count
    pb.metrics["/"].regions_count.value = row.regions_count
    ts(pb.created_at, row.created_at)
    ts(pb.modified_at, row.modified_at)
    if with_exports:
        for fmt, export in selectors.exports_of_version(row).items():
            getattr(pb.export_info, EXPORT_FIELDS[fmt]).CopyFrom(
                export_to_pb(export, app, dataset, row)
            )
    return pb


def _dataset(ctx, dataset_id: str):
    app = ctx.app(write=True)
    return app, selectors.dataset_for_app(app, dataset_id)


@rpc("PostDatasets")
def post_datasets(ctx, req: service_pb2.PostDatasetsRequest):
    app = ctx.app(write=True)
    rows = services.datasets_create(app=app, dataset_pbs=list(req.datasets))
    return service_pb2.MultiDatasetResponse(datasets=[dataset_to_pb(r, app) for r in rows])


@rpc("ListDatasets")
def list_datasets(ctx, req: service_pb2.ListDatasetsRequest):
    if ctx.app_id:
        rows = selectors.datasets_of_app(ctx.app(write=True))
    elif ctx.owner_user_id == ctx.user.username:
        rows = selectors.datasets_of_owner(ctx.user)  # every app of the caller's own
    else:  # datasets are private: another user's are "does not exist", as their apps' are
        raise ApiError(SC.CONN_DOES_NOT_EXIST, f"User '{ctx.owner_user_id[:128]}' has no datasets")
    if req.id:
        rows = rows.filter(public_id__icontains=req.id[:128])
    if req.search:
        rows = rows.filter(description__icontains=req.search[:128])
    if req.sort_ascending:
        rows = rows.order_by("created_at", "pk")
    return service_pb2.MultiDatasetResponse(
        datasets=[dataset_to_pb(r, r.app) for r in paginate(rows, req.page, req.per_page)]
    )


@rpc("GetDataset")
def get_dataset(ctx, req: service_pb2.GetDatasetRequest):
    app, row = _dataset(ctx, req.dataset_id)
    return service_pb2.SingleDatasetResponse(dataset=dataset_to_pb(row, app))


@rpc("PatchDatasets")
def patch_datasets(ctx, req: service_pb2.PatchDatasetsRequest):
    app = ctx.app(write=True)
    rows = services.datasets_patch(app=app, dataset_pbs=list(req.datasets), action=req.action)
    return service_pb2.MultiDatasetResponse(datasets=[dataset_to_pb(r, app) for r in rows])


@rpc("DeleteDatasets")
def delete_datasets(ctx, req: service_pb2.DeleteDatasetsRequest):
    services.datasets_delete(app=ctx.app(write=True), dataset_ids=list(req.dataset_ids))
    return status_pb2.BaseResponse()


def dataset_input_to_pb(member) -> resources_pb2.DatasetInput:
    pb = resources_pb2.DatasetInput()
    pb.input.CopyFrom(input_to_pb(member.input))
    pb.input.dataset_ids.append(member.dataset.public_id)
    ts(pb.created_at, member.created_at)
    return pb


@rpc("PostDatasetInputs")
def post_dataset_inputs(ctx, req: service_pb2.PostDatasetInputsRequest):
    app, dataset = _dataset(ctx, req.dataset_id)
    if req.HasField("search"):
        raise ApiError(
            SC.NOT_IMPLEMENTED,
            "adding the inputs of a search is not supported; name the inputs in dataset_inputs",
            field="search",
        )
    ids = [d.input.id for d in req.dataset_inputs]
    if any(not i for i in ids):
        raise ApiError(
            SC.INPUT_INVALID_REQUEST, "every dataset input needs input.id", field="dataset_inputs"
        )
    services.dataset_inputs_add(app=app, dataset=dataset, input_ids=ids)
    members = selectors.members_of_dataset(dataset).filter(input__public_id__in=ids)
    return service_pb2.MultiDatasetInputResponse(
        dataset_inputs=[dataset_input_to_pb(m) for m in members]
    )


@rpc("ListDatasetInputs")
def list_dataset_inputs(ctx, req: service_pb2.ListDatasetInputsRequest):
    _app, dataset = _dataset(ctx, req.dataset_id)
    rows = paginate(
        selectors.members_of_dataset(dataset).select_related("dataset"), req.page, req.per_page
    )
    return service_pb2.MultiDatasetInputResponse(
        dataset_inputs=[dataset_input_to_pb(m) for m in rows]
    )


@rpc("GetDatasetInput")
def get_dataset_input(ctx, req: service_pb2.GetDatasetInputRequest):
    _app, dataset = _dataset(ctx, req.dataset_id)
    member = selectors.member_of_dataset(dataset, req.input_id)
    return service_pb2.SingleDatasetInputResponse(dataset_input=dataset_input_to_pb(member))


@rpc("DeleteDatasetInputs")
def delete_dataset_inputs(ctx, req: service_pb2.DeleteDatasetInputsRequest):
    app, dataset = _dataset(ctx, req.dataset_id)
    services.dataset_inputs_remove(app=app, dataset=dataset, input_ids=list(req.input_ids))
    return status_pb2.BaseResponse()


@rpc("PostDatasetVersions")
def post_dataset_versions(ctx, req: service_pb2.PostDatasetVersionsRequest):
    app, dataset = _dataset(ctx, req.dataset_id)
    versions = list(req.dataset_versions) or [resources_pb2.DatasetVersion()]
    if len(versions) > 16:
        raise ApiError(SC.CONN_INVALID_REQUEST, "at most 16 dataset versions per request")
    rows = []
    for pb in versions:
        if pb.HasField("annotation_filter_config") or pb.HasField("model_predict_config"):
            raise ApiError(
                SC.NOT_IMPLEMENTED,
                "annotation filters and model predictions in dataset versions are not supported: "
                "a version holds the dataset's inputs and all their annotations",
            )
        rows.append(
            services.version_create(
                app=app,
                dataset=dataset,
                version_id=pb.id,
                description=pb.description,
                metadata=json_format.MessageToDict(pb.metadata) if pb.HasField("metadata") else {},
            )
        )
    return service_pb2.MultiDatasetVersionResponse(
        dataset_versions=[version_to_pb(r, app, dataset, with_exports=False) for r in rows]
    )


@rpc("ListDatasetVersions")
def list_dataset_versions(ctx, req: service_pb2.ListDatasetVersionsRequest):
    app, dataset = _dataset(ctx, req.dataset_id)
    rows = paginate(selectors.versions_of_dataset(dataset), req.page, req.per_page)
    return service_pb2.MultiDatasetVersionResponse(
        dataset_versions=[version_to_pb(r, app, dataset) for r in rows]
    )


@rpc("GetDatasetVersion")
def get_dataset_version(ctx, req: service_pb2.GetDatasetVersionRequest):
    app, dataset = _dataset(ctx, req.dataset_id)
    row = selectors.version_for_dataset(dataset, req.dataset_version_id)
    services.version_kick(row)
    return service_pb2.SingleDatasetVersionResponse(
        dataset_version=version_to_pb(row, app, dataset)
    )


@rpc("PatchDatasetVersions")
def patch_dataset_versions(ctx, req: service_pb2.PatchDatasetVersionsRequest):
    app, dataset = _dataset(ctx, req.dataset_id)
    rows = services.versions_patch(
        app=app, dataset=dataset, version_pbs=list(req.dataset_versions), action=req.action
    )
    return service_pb2.MultiDatasetVersionResponse(
        dataset_versions=[version_to_pb(r, app, dataset) for r in rows]
    )


@rpc("DeleteDatasetVersions")
def delete_dataset_versions(ctx, req: service_pb2.DeleteDatasetVersionsRequest):
    app, dataset = _dataset(ctx, req.dataset_id)
    services.versions_delete(app=app, dataset=dataset, version_ids=list(req.dataset_version_ids))
    return status_pb2.BaseResponse()


@rpc("PutDatasetVersionExports")
def put_dataset_version_exports(ctx, req: service_pb2.PutDatasetVersionExportsRequest):
    app, dataset = _dataset(ctx, req.dataset_id)
    version = selectors.version_for_dataset(dataset, req.dataset_version_id)
    for e in req.exports:
        if e.include_embeddings:
            raise ApiError(
                SC.NOT_IMPLEMENTED, "exports with embeddings are not supported", field="exports"
            )
    rows = services.exports_request(version=version, formats=[e.format for e in req.exports])
    return service_pb2.MultiDatasetVersionExportResponse(
        exports=[export_to_pb(r, app, dataset, version) for r in rows]
    )


# --- extension: a collector's destination dataset ------------------------------------------


def _collector_dataset_pb(collector, dataset) -> ext.SingleCollectorDatasetResponse:
    return ext.SingleCollectorDatasetResponse(
        collector_id=collector.public_id, dataset_id=dataset.public_id if dataset else ""
    )


@rpc("GetCollectorDataset")
def get_collector_dataset(ctx, req: ext.GetCollectorDatasetRequest):
    app = ctx.app(write=True)
    collector = collector_selectors.collector_for_app(app, req.collector_id)
    return _collector_dataset_pb(collector, selectors.dataset_of_collector(collector))


@rpc("PutCollectorDataset")
def put_collector_dataset(ctx, req: ext.PutCollectorDatasetRequest):
    app = ctx.app(write=True)
    collector = collector_selectors.collector_for_app(app, req.collector_id)
    dataset = services.collector_dataset_set(
        app=app, collector=collector, dataset_id=req.dataset_id
    )
    return _collector_dataset_pb(collector, dataset)
