"""Model / ModelVersion rows -> Clarifai protobuf messages (used by handlers and predict)."""

from __future__ import annotations

from clarifai_grpc.grpc.api import resources_pb2
from clarifai_grpc.grpc.api.status import status_code_pb2
from google.protobuf import json_format

from collectors_module.core.errors import make_status

from .signatures import method_signatures


def ts(message_field, dt) -> None:
    if dt is not None:
        message_field.FromDatetime(dt)


# runner_config keys shown to people other than the model's owner (never credentials).
_PUBLIC_CONFIG_KEYS = ("model",)
_SECRET_MARKERS = ("key", "token", "secret", "password", "authorization", "header")


CAPTURE_ALL_CALLERS = "capture_all_callers"


def capture_metadata(model) -> dict:
    """What every caller is told about capture on this model (Model.metadata)."""
    return {CAPTURE_ALL_CALLERS: bool(getattr(model, "capture_all_callers", False))}


def output_info_to_pb(info: dict) -> resources_pb2.OutputInfo:
    pb = resources_pb2.OutputInfo()
    if info:
        json_format.ParseDict(info, pb, ignore_unknown_fields=True)
    return pb


def version_metadata(version, *, for_owner: bool) -> dict:
    """What a version's metadata shows: the runner, and for the owner its non-secret config."""
    meta: dict = {"runner": version.runner}
    for key, value in (version.runner_config or {}).items():
        if any(m in key.lower() for m in _SECRET_MARKERS):
            continue
        if for_owner or key in _PUBLIC_CONFIG_KEYS:
            meta[key] = value
    return meta


def model_version_to_pb(version, *, viewer=None) -> resources_pb2.ModelVersion:
    model = version.model
    app = model.app
    pb = resources_pb2.ModelVersion(
        id=version.public_id,
        description=version.description,
        app_id=app.public_id,
        user_id=app.owner.username,
        status=make_status(status_code_pb2.MODEL_TRAINED, "Model is trained and ready"),
    )
    info = version.output_info or model.output_info or {}
    pb.output_info.CopyFrom(output_info_to_pb(info))
    pb.active_concept_count = len(pb.output_info.data.concepts)
    pb.visibility.gettable = model.visibility
    ts(pb.created_at, version.created_at)
    ts(pb.modified_at, version.created_at)
    ts(pb.completed_at, version.created_at)
    for_owner = viewer is not None and viewer.pk == app.owner_id
    pb.metadata.update(version_metadata(version, for_owner=for_owner))
    pb.method_signatures.extend(method_signatures(model.model_type_id, version.runner))
    return pb


def model_to_pb(model, *, version=None, viewer=None) -> resources_pb2.Model:
    app = model.app
    pb = resources_pb2.Model(
        id=model.public_id,
        name=model.name or model.public_id,
        app_id=app.public_id,
        user_id=app.owner.username,
        model_type_id=model.model_type_id,
        description=model.description,
    )
    pb.visibility.gettable = model.visibility
    ts(pb.created_at, model.created_at)
    ts(pb.modified_at, model.modified_at)
    pb.output_info.CopyFrom(output_info_to_pb(model.output_info or {}))
    pb.metadata.update(capture_metadata(model))
    if version is not None:
        pb.model_version.CopyFrom(model_version_to_pb(version, viewer=viewer))
    return pb


def model_ref_pb(version) -> resources_pb2.Model:
    """The compact model reference that every predict Output carries."""
    model = version.model
    app = model.app
    pb = resources_pb2.Model(
        id=model.public_id,
        name=model.name or model.public_id,
        app_id=app.public_id,
        user_id=app.owner.username,
        model_type_id=model.model_type_id,
    )
    pb.model_version.id = version.public_id
    pb.model_version.app_id = app.public_id
    pb.model_version.user_id = app.owner.username
    pb.metadata.update(capture_metadata(model))
    ts(pb.created_at, model.created_at)
    return pb
