"""Input rows -> protobuf `Input` messages (data restored, image as a hosted URL)."""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import quote

from clarifai_grpc.grpc.api import resources_pb2
from google.protobuf import json_format

from collectors_module.core.errors import make_status

from . import conf
from .models import Input

log = logging.getLogger("collectors.inputs")


def media_url(row: Input) -> str:
    """Where the web module serves the stored image bytes of this input."""
    return (
        f"{conf.public_base_url()}/apps/{quote(row.app.public_id, safe='')}"
        f"/inputs/{quote(row.public_id, safe='')}/media"
    )


def input_data_to_pb(row: Input) -> resources_pb2.Data:
    """The stored `Data` (concepts, regions, metadata, text) with the image as a URL."""
    data = resources_pb2.Data()
    try:
        json_format.ParseDict(row.data or {}, data, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError):
        log.warning("input %s has unreadable stored data", row.pk)
    if row.text:
        data.text.raw = row.text
    if row.image:
        data.image.url = media_url(row)
    elif row.image_url:
        data.image.url = row.image_url
    return data


def input_to_pb(input: Input) -> resources_pb2.Input:
    pb = resources_pb2.Input(id=input.public_id)
    pb.data.CopyFrom(input_data_to_pb(input))
    pb.created_at.FromDatetime(input.created_at)
    if input.modified_at is not None:
        pb.modified_at.FromDatetime(input.modified_at)
    pb.status.CopyFrom(make_status(input.status_code))
    return pb


# --- annotations ---------------------------------------------------------------------------------

# Parts of `Data` an annotation may carry (never media bytes: those belong to the input).
ANNOTATION_DATA_FIELDS = ("concepts", "regions", "text", "metadata", "colors", "embeddings")


def collected_annotation_id(input_pk: int, index: int) -> str:
    """The id of the `index`-th collected output of an input: the same on every import."""
    return hashlib.sha256(f"collected:{input_pk}:{index}".encode()).hexdigest()[:32]


def _collected_data(entry: dict) -> dict:
    raw = entry.get("data") if isinstance(entry.get("data"), dict) else entry
    data = resources_pb2.Data()
    kept = {k: raw[k] for k in ANNOTATION_DATA_FIELDS if k in raw}
    try:
        json_format.ParseDict(kept, data, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError):
        data = resources_pb2.Data()
        for name in ANNOTATION_DATA_FIELDS:  # keep whatever part is readable
            if name in raw:
                try:
                    json_format.ParseDict({name: raw[name]}, data, ignore_unknown_fields=True)
                except (json_format.ParseError, ValueError, TypeError):
                    continue
    return json_format.MessageToDict(data, preserving_proto_field_name=True)


def collected_annotations(entries, input_pk: int) -> list[dict]:
    """Field values of the Annotation rows for an input's collected outputs (`Input.annotations`
    as the capture pipeline wrote it: [{"model_id", "model_version_id", "model_user_id",
    "model_app_id", "data"}, ...]). Pure: no queries; unreadable parts are left out."""
    out = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict):
            continue
        version_id = str(entry.get("model_version_id") or "")[:32]
        model_ref = {
            key: str(entry.get(f"model_{key}") or "")[:128]
            for key in ("user_id", "app_id", "id")
            if entry.get(f"model_{key}")
        }
        out.append(
            {
                "public_id": collected_annotation_id(input_pk, index),
                "data": _collected_data(entry),
                "model_version_id": version_id,
                "model_ref": model_ref,
            }
        )
    return out


def annotation_to_pb(
    row, *, input_id: str = "", owner_user_id: str = ""
) -> resources_pb2.Annotation:
    """An Annotation row as Clarifai's message; `worker.model` names the model that made it."""
    pb = resources_pb2.Annotation(
        id=row.public_id,
        input_id=input_id or row.input.public_id,
        model_version_id=row.model_version_id,
        trusted=row.trusted,
    )
    if row.user_id is not None:
        pb.user_id = row.user.username
    else:
        pb.user_id = owner_user_id or row.app.owner.username
    try:
        json_format.ParseDict(row.data or {}, pb.data, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError):
        log.warning("annotation %s has unreadable stored data", row.pk)
    if row.annotation_info:
        pb.annotation_info.update(row.annotation_info)
    pb.input_level = not pb.data.regions
    pb.status.CopyFrom(make_status(row.status_code))
    pb.created_at.FromDatetime(row.created_at)
    if row.modified_at is not None:
        pb.modified_at.FromDatetime(row.modified_at)
    ref = row.model_ref or {}
    if ref.get("id") or row.model_version_id:
        model = pb.worker.model
        model.id = ref.get("id", "")
        model.user_id = ref.get("user_id", "")
        model.app_id = ref.get("app_id", "")
        model.model_version.id = row.model_version_id
    elif pb.user_id:
        pb.worker.user.id = pb.user_id
    return pb
